#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Synchronization
import UTP

/// One uTP connection as a NIO `Channel`, so that the peer wire's pipeline (MSE, the handshake router, the
/// message codec) runs over uTP exactly as over TCP. A child of the UDP channel its `UTPSocket` sits on, confined
/// to that channel's event loop; the socket carries its writes and close to the `UTPEndpoint` and its events back.
///
/// Reads: bytes wait in `pendingReads` until the pipeline asks (`read()`, or auto-read); only then are they
/// reported consumed, so a pipeline that stops reading closes the uTP receive window. Writes go to the endpoint's
/// send buffer on flush; the channel is not writable while that buffer is full.
final class UTPStreamChannel: Channel, ChannelCore, @unchecked Sendable {
    // @unchecked Sendable: every mutable field is touched on `eventLoop` only, but `flags`, which has a lock.
    typealias Key = UTPEndpoint<SocketAddress>.ConnectionKey

    let key: Key
    private unowned let socket: UTPSocket
    private var _pipeline: ChannelPipeline!
    let allocator: ByteBufferAllocator
    let eventLoop: any EventLoop
    let localAddress: SocketAddress?
    let remoteAddress: SocketAddress?
    let parent: (any Channel)?
    private let closePromise: EventLoopPromise<Void>
    private let flags = Mutex<(active: Bool, writable: Bool)>((false, true))
    /// The datagram size its packets have grown (or shrunk) to by path MTU probing; for the API.
    let packetSize = Atomic<Int>(UTPConnection.Configuration().packetSize)
    private var closed = false
    private var autoRead = true
    private var unsatisfiedRead = false
    private var delivering = false
    private var pendingReads: CircularBuffer<ByteBuffer> = []
    private var pendingWrites: CircularBuffer<(ByteBuffer, EventLoopPromise<Void>?)> = []

    init(socket: UTPSocket, key: Key, parent: any Channel) {
        self.socket = socket
        self.key = key
        self.parent = parent
        self.allocator = parent.allocator
        self.eventLoop = parent.eventLoop
        self.localAddress = parent.localAddress
        self.remoteAddress = key.address
        self.closePromise = parent.eventLoop.makePromise()
        self._pipeline = ChannelPipeline(channel: self)
    }

    var pipeline: ChannelPipeline { self._pipeline }
    var closeFuture: EventLoopFuture<Void> { self.closePromise.futureResult }
    var _channelCore: any ChannelCore { self }
    var isActive: Bool { self.flags.withLock { $0.active } }
    var isWritable: Bool { self.flags.withLock { $0.writable } }

    // MARK: options

    func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
        self.eventLoop.submit { try self.setOption0(option, value: value) }
    }

    func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
        self.eventLoop.submit { try self.getOption0(option) }
    }

    private func setOption0<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
        self.eventLoop.preconditionInEventLoop()
        switch option {
        case is ChannelOptions.Types.AutoReadOption:
            self.autoRead = value as! Bool
            if self.autoRead { self.read0() }
        default:
            // TCP's options (nodelay, water marks, allocators) mean nothing here; a driver sets them for both.
            break
        }
    }

    private func getOption0<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
        self.eventLoop.preconditionInEventLoop()
        switch option {
        case is ChannelOptions.Types.AutoReadOption: return self.autoRead as! Option.Value
        default: throw ChannelError.operationUnsupported
        }
    }

    // MARK: ChannelCore

    func localAddress0() throws -> SocketAddress {
        guard let a = self.localAddress else { throw ChannelError.operationUnsupported }
        return a
    }

    func remoteAddress0() throws -> SocketAddress {
        guard let a = self.remoteAddress else { throw ChannelError.operationUnsupported }
        return a
    }

    func register0(promise: EventLoopPromise<Void>?) { promise?.succeed() }
    func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        self.pendingWrites.append((self.unwrapData(data, as: ByteBuffer.self), promise))
    }

    func flush0() {
        guard self.isActive else { return }
        while let (buffer, promise) = self.pendingWrites.popFirst() {
            self.socket.write(buffer, for: self.key)
            promise?.succeed()
        }
        self.socket.flush()
        if !self.socket.isWritable(self.key) { self.setWritable(false) }
    }

    func read0() {
        guard !self.closed else { return }
        self.unsatisfiedRead = true
        self.deliverReads()
    }

    func close0(error: any Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard !self.closed else {
            promise?.fail(ChannelError.alreadyClosed)
            return
        }
        guard mode == .all else {
            promise?.fail(ChannelError.operationUnsupported)
            return
        }
        // What was flushed still goes out, then FIN (as a TCP socket's close sends what the kernel holds).
        self.socket.close(self.key)
        self.finish(error: nil)
        promise?.succeed()
    }

    func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    func channelRead0(_ data: NIOAny) {}
    func errorCaught0(error: any Error) {}

    // MARK: from the socket

    /// The connection is open (an incoming one at once, an outgoing one once its STATE came).
    func activate() {
        guard !self.closed else { return }
        self.flags.withLock { $0.active = true }
        self.pipeline.fireChannelActive()
        self.flush0()
        if self.autoRead { self.pipeline.read() }
    }

    /// Bytes in order from the other side.
    func received(_ bytes: [UInt8]) {
        guard !self.closed else { return }
        var buffer = self.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        self.pendingReads.append(buffer)
        self.deliverReads()
    }

    /// The send buffer has room again.
    func becameWritable() { self.setWritable(true) }

    /// The connection ended on the other side's account, or timed out.
    func ended(_ reason: UTPConnection.CloseReason) {
        guard !self.closed else { return }
        // Bytes already here are the pipeline's: hand them over before the end, as TCP would.
        if self.isActive {
            self.unsatisfiedRead = true
            self.deliverReads(force: true)
        }
        switch reason {
        case .finished, .local: self.finish(error: nil)
        // As a TCP socket reports a reset (NIO's pipeline takes no `ChannelError.eof` as an error).
        case .reset: self.finish(error: IOError(errnoCode: ECONNRESET, reason: "uTP reset"))
        case .timedOut: self.finish(error: ChannelError.connectTimeout(.seconds(0)))
        }
    }

    /// Hands what waits to the pipeline while it wants to read. Reentrant calls (a read handler's write reaches
    /// the socket, whose pump delivers more) only add to `pendingReads`: the outer call's loop delivers them, so
    /// no bytes stay behind with nobody to ask for them.
    private func deliverReads(force: Bool = false) {
        guard !self.delivering else { return }
        self.delivering = true
        defer { self.delivering = false }
        var force = force
        while self.isActive, self.unsatisfiedRead || force, !self.pendingReads.isEmpty {
            force = false
            self.unsatisfiedRead = false
            var consumed = 0
            while let buffer = self.pendingReads.popFirst() {
                consumed += buffer.readableBytes
                self.pipeline.fireChannelRead(buffer)
            }
            self.pipeline.fireChannelReadComplete()
            self.socket.consumed(consumed, for: self.key)
            if self.autoRead && !self.closed { self.unsatisfiedRead = true }
        }
    }

    private func setWritable(_ writable: Bool) {
        let changed = self.flags.withLock { f in
            defer { f.writable = writable }
            return f.writable != writable
        }
        if changed && !self.closed { self.pipeline.fireChannelWritabilityChanged() }
    }

    private func finish(error: (any Error)?) {
        self.closed = true
        let wasActive = self.flags.withLock { f in
            defer { f.active = false }
            return f.active
        }
        self.pendingReads.removeAll()
        while let (_, promise) = self.pendingWrites.popFirst() { promise?.fail(ChannelError.ioOnClosedChannel) }
        if let error { self.pipeline.fireErrorCaught(error) }
        if wasActive { self.pipeline.fireChannelInactive() }
        self.socket.forget(self.key)
        self.eventLoop.execute {
            self.removeHandlers(pipeline: self.pipeline)
            self.closePromise.succeed()
        }
    }
}
