import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

extension PeerServer {
    /// How the daemon serves HTTP/1.1 connections; `run` and the tests over real sockets use the same.
    static var http1: HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [CloseAfterResponse()]))
    }
}

/// Closes a connection after a response that says `Connection: close`, as RFC 9112 §9.6 asks of the server
/// that sends it. Hummingbird closes only when the request said so, and otherwise reads the rest of the
/// request's body before the next request: a 413 sent before a 64 MiB body arrived would wait for all of it.
///
/// In two steps, as §9.6 also says: the sending side at once (the client sees the end of the response), the
/// whole connection when the client closes or `linger` later. Closing both at once while the client still
/// sends its body makes the kernel answer with a reset, which can destroy the response before it is read.
final class CloseAfterResponse: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    static let linger = TimeAmount.seconds(10)
    private var closing = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head):
            self.closing = head.headerFields[.connection]?.lowercased() == "close"
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard self.closing else { return context.write(data, promise: promise) }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.futureResult.whenComplete { _ in
                bound.value.close(mode: .output, promise: nil)
                bound.value.eventLoop.scheduleTask(in: Self.linger) { bound.value.close(promise: nil) }
            }
            context.writeAndFlush(data, promise: written)
        }
    }
}
