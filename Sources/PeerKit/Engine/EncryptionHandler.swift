import NIOCore
import PeerWire

/// Runs a message stream encryption handshake (`MSEResponder` or `MSEInitiator`) at the front of a connection's
/// pipeline, then hands the stream on: when plaintext was selected it leaves the pipeline, so the wire
/// costs nothing more; when RC4 was, it stays and en/decrypts every byte.
///
/// Writes from the handlers behind it wait until the handshake is over. A handshake that fails or takes
/// longer than `timeout` closes the connection.
final class EncryptionHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Handshake {
        case responder(MSEResponder)
        case initiator(MSEInitiator)
    }

    static let timeout = TimeAmount.seconds(30)

    private var handshake: Handshake?
    private var decryptor: RC4?
    private var encryptor: RC4?
    private var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var deadline: Scheduled<Void>?

    init(_ handshake: Handshake) {
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        self.deadline = context.eventLoop.scheduleTask(in: Self.timeout) { channel.close(promise: nil) }
        if context.channel.isActive { self.begin(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.begin(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
    }

    /// The initiator speaks first.
    private func begin(context: ChannelHandlerContext) {
        guard case .initiator(let a)? = self.handshake else { return }
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: a.start())), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        guard let handshake = self.handshake else {
            if self.decryptor != nil {
                bytes.withUnsafeMutableReadableBytes { self.decryptor!.apply($0) }
            }
            context.fireChannelRead(self.wrapInboundOut(bytes))
            return
        }
        let result: (send: [UInt8], established: MSE.Established?)
        do {
            switch handshake {
            case .responder(var b):
                result = try b.receive(bytes.readableBytesView)
                self.handshake = .responder(b)
            case .initiator(var a):
                result = try a.receive(bytes.readableBytesView)
                self.handshake = .initiator(a)
            }
        } catch {
            self.handshake = nil
            context.close(promise: nil)
            return
        }
        if !result.send.isEmpty { context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: result.send)), promise: nil) }
        guard let done = result.established else { return }
        self.handshake = nil
        self.deadline?.cancel()
        self.decryptor = done.decryptor
        self.encryptor = done.encryptor
        for (buffer, promise) in self.held { self.write(context: context, data: NIOAny(buffer), promise: promise) }
        if !self.held.isEmpty { context.flush() }
        self.held = []
        if !done.payload.isEmpty { context.fireChannelRead(self.wrapInboundOut(ByteBuffer(bytes: done.payload))) }
        if self.encryptor == nil { context.pipeline.syncOperations.removeHandler(context: context, promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard self.handshake == nil else {
            self.held.append((self.unwrapOutboundIn(data), promise))
            return
        }
        guard self.encryptor != nil else {
            context.write(data, promise: promise)
            return
        }
        // A copy: the bytes may be a slice of a piece that other peers are sent too.
        let plain = self.unwrapOutboundIn(data)
        var sealed = context.channel.allocator.buffer(capacity: plain.readableBytes)
        sealed.writeImmutableBuffer(plain)
        sealed.withUnsafeMutableReadableBytes { self.encryptor!.apply($0) }
        context.write(self.wrapOutboundOut(sealed), promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if self.handshake == nil { context.flush() }
    }
}

/// How a node uses message stream encryption (MSE/PE), as `peer get|share --encryption` sets it.
public enum EncryptionMode: String, Sendable, CaseIterable, Codable {
    /// Incoming connections may start with either handshake; an encrypted one gets plaintext selected when the
    /// peer offers it (as libtorrent does), so only the handshake is obfuscated. Outgoing ones are plaintext,
    /// and encrypted when the peer hung up on a plaintext one.
    case enabled
    /// Encrypted handshakes only, both ways, and RC4 over the whole stream; plaintext peers are refused.
    case required
    /// Plaintext only: encrypted handshakes are refused.
    case disabled
}
