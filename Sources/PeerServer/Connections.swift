import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

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
        HTTPServerBuilder { responder in
            HTTP1WithClose(inner: HTTP1Channel(responder: responder, configuration: .init(
                additionalChannelHandlers: [CloseAfterResponse(), MalformedRequestAnswer()], idleTimeout: Self.idleTimeout)))
        }
    }

    static func configuration(host: String, port: Int) -> ApplicationConfiguration {
        .init(address: .hostname(host, port: port), serverName: "Peer",
            availableConnectionsDelegate: MaximumAvailableConnections(Self.maxConnections))
    }
}

/// Hummingbird's HTTP/1 channel with `CloseWhenNotKeptAlive` in front of its codec, where a request's
/// version is still known (Hummingbird's own handlers come after the codec, which drops it).
struct HTTP1WithClose: ServerChildChannel {
    let inner: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        self.inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)
            try channel.pipeline.syncOperations.addHandler(CloseWhenNotKeptAlive(), position: .before(codec))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

/// Marks a request after which the connection must close with `Connection: close`, the one form Hummingbird
/// acts on: HTTP/1.0 without keep-alive (its default), and `Connection: Close` or `close, te` in 1.1. An
/// HTTP/1.0 client waited for the close after its answer until the idle timeout.
final class CloseWhenNotKeptAlive: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = self.unwrapInboundIn(data), !head.isKeepAlive else {
            return context.fireChannelRead(data)
        }
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        context.fireChannelRead(self.wrapInboundOut(.head(head)))
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
