import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

extension PeerServer {
    /// How long a connection may be idle: from its start (or its last response) to a whole request head, or
    /// between the parts of a request's body. Slowloris connections, which send half a head and then
    /// nothing, held their socket for ever; a browser reopens a closed keep-alive connection by itself.
    /// A request being answered (a stream, the events) is never idle.
    static let idleTimeout = TimeAmount.seconds(15)

    /// The API connections open at once; further ones wait in the kernel's backlog until one closes. Each
    /// is a file descriptor and buffers: 19 990 idle ones used up the process's open files (the torrents'
    /// too) and took its memory from 37 to 211 MiB. The web UI needs a handful.
    static let maxConnections = 256

    /// How the daemon serves HTTP/1.1 connections; `run` and the tests over real sockets use the same.
    static var http1: HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [CloseAfterResponse(), MalformedRequestAnswer()],
            idleTimeout: Self.idleTimeout))
    }

    static func configuration(host: String, port: Int) -> ApplicationConfiguration {
        .init(address: .hostname(host, port: port), serverName: "Peer",
            availableConnectionsDelegate: MaximumAvailableConnections(Self.maxConnections))
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

/// Answers a request NIO cannot parse (a malformed request line or header) with the API's JSON 400 and
/// `Connection: close`, where Hummingbird would send an empty 400. Placed after `CloseAfterResponse`, which
/// then closes the connection. When a response is already on its way, the parse error can only close it.
final class MalformedRequestAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private var requestsAnswering = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = self.unwrapInboundIn(data) { self.requestsAnswering += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.requestsAnswering -= 1 }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else { return context.fireErrorCaught(error) }
        guard self.requestsAnswering == 0 else { return context.close(promise: nil) }
        let answer = APIError.badRequest("the request is not HTTP/1.1: \(error)")
        let body = answer.body
        let head = HTTPResponse(status: .badRequest, headerFields: [.contentType: "application/json; charset=utf-8",
            .contentLength: "\(body.readableBytes)", .connection: "close"])
        self.requestsAnswering += 1
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}
