import DequeModule
import Metainfo
import NIOCore
import PeerBase

/// One peer connection's protocol state, sans I/O (DESIGN.md §4).
///
/// The driver feeds received bytes with `receive(_:at:)`, commands with `handle(_:at:)` and timer ticks with
/// `handleTimeout(at:)`; after each call it drains `pollTransmit()` (bytes to write: one buffer, plus one per piece payload)
/// and `pollEvent()` (what the peer said), and re-arms its timer at `nextTimeout`. A peer's protocol violation
/// never throws: it becomes `.closed(reason)` and the session ignores input from then on.
public struct PeerWireSession: Sendable {
    public enum Role: Sendable { case outgoing, incoming }

    public struct Configuration: Sendable {
        /// 20-byte info-hashes this side serves (v1 hashes and truncated v2 hashes). An outgoing session uses the first.
        public var infoHashes: [[UInt8]]
        public var localID: PeerID
        public var reserved: Handshake.Reserved = .peerDefault
        /// The torrent's piece count when known (nil while a magnet link's metadata is missing).
        public var pieceCount: Int?
        /// What we have, sent right after the handshake: a bitfield, or have-all / have-none (BEP 6).
        /// Sent before the extended handshake, since some clients want the bitfield first.
        public var openingMessage: PeerMessage?
        /// Our extended handshake, sent after the opening message when both sides speak BEP 10.
        public var extendedHandshake: ExtendedHandshake?
        /// Send a keep-alive after this long without sending.
        public var keepAliveInterval: Duration = .seconds(120)
        /// Close after this long without receiving anything.
        public var idleTimeout: Duration = .seconds(180)

        public init(infoHashes: [[UInt8]], localID: PeerID, pieceCount: Int?) {
            self.infoHashes = infoHashes
            self.localID = localID
            self.pieceCount = pieceCount
        }
    }

    public enum Command: Sendable {
        case send(PeerMessage)
        /// Sets the piece count once metadata arrives (checks a bitfield received before).
        case setPieceCount(Int)
        case close
    }

    public enum Event: Equatable, Sendable {
        /// The peer's handshake (for an incoming session, after this side chose to accept its info-hash).
        case handshake(Handshake)
        case extendedHandshake(ExtendedHandshake)
        case message(PeerMessage)
        /// The session is over; `nil` reason means this side closed it.
        case closed(PeerWireError?)
    }

    private enum State: Sendable { case handshaking, open, closed }

    public let role: Role
    public private(set) var configuration: Configuration
    private var state = State.handshaking
    private var inbound = ByteBuffer()
    private var outbound = ByteBuffer()
    /// Buffers ready to write, in order, before `outbound`: a piece payload goes out as the slice it came as,
    /// after the buffer holding its header, instead of being copied into `outbound`.
    private var ready: [ByteBuffer] = []
    private var readyHead = 0
    private var events = Deque<Event>()
    private var decoder: PeerMessageDecoder
    private var lastReceived: Instant
    private var lastSent: Instant
    private var sawPieceState = false
    private var bitfieldFromMessage = false

    /// The peer's handshake once received.
    public private(set) var remote: Handshake?
    /// The peer's extended handshake once received.
    public private(set) var remoteExtensions: ExtendedHandshake?
    /// The info-hash this connection is about (the one we sent, or the one the peer asked for).
    public private(set) var infoHash: [UInt8]?
    public private(set) var amChoking = true
    public private(set) var amInterested = false
    public private(set) var peerChoking = true
    public private(set) var peerInterested = false
    /// Raw bytes of the peer's bitfield (or all ones after have-all), updated by `have`.
    public private(set) var peerBitfield: [UInt8]?
    /// The peer said have-all (BEP 6); kept so that the bitfield can be filled once the piece count is known.
    public private(set) var peerHasAll = false

    public init(role: Role, configuration: Configuration, at now: Instant) {
        precondition(!configuration.infoHashes.isEmpty && configuration.infoHashes.allSatisfy { $0.count == 20 })
        self.role = role
        self.configuration = configuration
        self.decoder = PeerMessageDecoder(
            maxMessageLength: WireLimits.maxMessageLength(pieceCount: configuration.pieceCount ?? 1 << 22))
        self.lastReceived = now
        self.lastSent = now
        if role == .outgoing {
            self.infoHash = configuration.infoHashes[0]
            self.sendHandshake(now)
        }
    }

    public var isClosed: Bool { self.state == .closed }
    /// Both sides set the BEP 6 bit.
    public var fastExtension: Bool { self.both(.fast) }
    /// Both sides set the BEP 10 bit.
    public var extensionProtocol: Bool { self.both(.extensionProtocol) }

    private func both(_ bit: Handshake.Reserved) -> Bool {
        self.configuration.reserved.contains(bit) && (self.remote?.reserved.contains(bit) ?? false)
    }

    // MARK: inputs

    /// Feeds bytes received from the peer. Call `pollEvent` and `pollTransmit` afterwards.
    public mutating func receive(_ bytes: ByteBuffer, at now: Instant) {
        guard self.state != .closed else { return }
        self.lastReceived = now
        var rest = bytes
        do throws(PeerWireError) {
            // Messages are decoded in place from the received buffer (piece payloads are slices of it, not
            // copies); only a message split across reads is put together, from just the bytes it lacks.
            while true {
                if self.inbound.readableBytes == 0 {
                    self.inbound = rest
                    rest.moveReaderIndex(to: rest.writerIndex)
                } else if rest.readableBytes > 0 {
                    var head = rest.readSlice(length: min(self.bytesLacking, rest.readableBytes))!
                    self.inbound.writeBuffer(&head)
                }
                if self.state == .handshaking, try !self.readHandshake(now) {
                    if rest.readableBytes == 0 { break } else { continue }
                }
                while self.state == .open, let message = try self.decoder.decode(&self.inbound) {
                    try self.accept(message, now)
                }
                if rest.readableBytes == 0 || self.state == .closed { break }
            }
            if self.inbound.readableBytes == 0 {
                // Hold nothing of the received buffer, so the channel can read into it again.
                self.inbound = ByteBuffer()
            } else {
                // Keep the partial message alone in a buffer of its full size, so the next read appends to it
                // without growing it and the received buffer is not kept alive for it.
                let total = self.inbound.readableBytes + self.bytesLacking
                if self.inbound.capacity > 2 * total {
                    var own = ByteBufferAllocator().buffer(capacity: total)
                    own.writeBuffer(&self.inbound)
                    self.inbound = own
                } else {
                    self.inbound.discardReadBytes()
                }
            }
        } catch {
            self.close(error)
        }
    }

    /// How many more bytes the partial handshake or message held in `inbound` needs (at least 1).
    private var bytesLacking: Int {
        let have = self.inbound.readableBytes
        if self.state == .handshaking { return max(1, Handshake.length - have) }
        guard have >= 4, let length = self.inbound.getInteger(at: self.inbound.readerIndex, as: UInt32.self) else {
            return 4 - have
        }
        return max(1, 4 + Int(min(length, UInt32(Int32.max))) - have)
    }

    /// Carries out a command from the engine.
    public mutating func handle(_ command: Command, at now: Instant) {
        guard self.state != .closed else { return }
        switch command {
        case .send(let message):
            guard self.state == .open else { return }
            switch message {
            case .choke: self.amChoking = true
            case .unchoke: self.amChoking = false
            case .interested: self.amInterested = true
            case .notInterested: self.amInterested = false
            default: break
            }
            if case .piece(let piece, let offset, let data) = message, data.readableBytes >= Self.sliceThreshold {
                PeerMessageEncoder.encodePieceHeader(piece: piece, offset: offset, length: data.readableBytes,
                    into: &self.outbound)
                self.ready.append(self.outbound)
                self.ready.append(data)
                self.outbound = ByteBuffer()
            } else {
                PeerMessageEncoder.encode(message, into: &self.outbound)
            }
            self.lastSent = now
        case .setPieceCount(let n):
            self.configuration.pieceCount = n
            self.decoder.maxMessageLength = WireLimits.maxMessageLength(pieceCount: n)
            if self.peerHasAll { self.peerBitfield = Self.allSet(n) }
            if var bits = self.peerBitfield, !self.bitfieldFromMessage, bits.count < (n + 7) / 8 {
                bits.append(contentsOf: repeatElement(0, count: (n + 7) / 8 - bits.count))  // built from haves
                self.peerBitfield = bits
            }
            if let bits = self.peerBitfield, !bits.isEmpty, !Self.bitfieldFits(bits, pieceCount: n) {
                self.close(.outOfRange("bitfield of \(bits.count) bytes for \(n) pieces"))
            }
        case .close:
            self.close(nil)
        }
    }

    /// Sends keep-alives and closes a silent connection. Spurious calls are no-ops.
    public mutating func handleTimeout(at now: Instant) {
        guard self.state != .closed else { return }
        if now - self.lastReceived >= self.configuration.idleTimeout {
            self.close(.timeout)
            return
        }
        if self.state == .open && now - self.lastSent >= self.configuration.keepAliveInterval {
            PeerMessageEncoder.encode(.keepAlive, into: &self.outbound)
            self.lastSent = now
        }
    }

    // MARK: outputs

    /// Payloads at least this long are sent as their own buffer rather than copied.
    static let sliceThreshold = 1024

    /// The next bytes to write to the peer: pending messages in as few buffers as there are piece payloads
    /// (each payload is its own buffer). Call after every input until it returns nil, and write the buffers in
    /// order (one flush after them all lets the channel gather them into one `writev`).
    public mutating func pollTransmit() -> ByteBuffer? {
        if self.readyHead < self.ready.count {
            defer {
                self.readyHead += 1
                if self.readyHead == self.ready.count {
                    self.ready.removeAll(keepingCapacity: true)
                    self.readyHead = 0
                }
            }
            return self.ready[self.readyHead]
        }
        guard self.outbound.readableBytes > 0 else { return nil }
        defer { self.outbound = ByteBuffer() }
        return self.outbound
    }

    /// The next event for the engine. Call after every input until it returns nil.
    public mutating func pollEvent() -> Event? { self.events.popFirst() }

    /// When `handleTimeout` is next due; nil once closed.
    public var nextTimeout: Instant? {
        guard self.state != .closed else { return nil }
        let idle = self.lastReceived + self.configuration.idleTimeout
        guard self.state == .open else { return idle }
        return min(idle, self.lastSent + self.configuration.keepAliveInterval)
    }

    // MARK: internals

    private mutating func sendHandshake(_ now: Instant) {
        Handshake(reserved: self.configuration.reserved, infoHash: self.infoHash!, peerID: self.configuration.localID)
            .encode(into: &self.outbound)
        self.lastSent = now
    }

    /// Returns true once the handshake is through and the session is open.
    private mutating func readHandshake(_ now: Instant) throws(PeerWireError) -> Bool {
        guard let hs = try Handshake.decode(&self.inbound) else { return false }
        switch self.role {
        case .outgoing:
            // A hybrid's peer may answer a v1 hash with the v2 one (BEP 52 upgrade): either of ours is fine.
            guard self.configuration.infoHashes.contains(hs.infoHash) else { throw .wrongInfoHash }
            self.infoHash = hs.infoHash
        case .incoming:
            guard self.configuration.infoHashes.contains(hs.infoHash) else { throw .wrongInfoHash }
            self.infoHash = hs.infoHash
            self.sendHandshake(now)
        }
        if hs.peerID == self.configuration.localID { throw .connectedToSelf }
        self.remote = hs
        self.state = .open
        self.events.append(.handshake(hs))
        if let opening = self.configuration.openingMessage {
            switch opening {
            case .haveAll where !self.fastExtension:
                // Without BEP 6 a seed says so with a full bitfield.
                if let n = self.configuration.pieceCount {
                    PeerMessageEncoder.encode(.bitfield(ByteBuffer(bytes: Self.allSet(n))), into: &self.outbound)
                }
            case .haveNone where !self.fastExtension:
                break  // having nothing, a peer without BEP 6 may simply send no bitfield
            default:
                PeerMessageEncoder.encode(opening, into: &self.outbound)
            }
        }
        if self.extensionProtocol, let ext = self.configuration.extendedHandshake {
            PeerMessageEncoder.encode(.extended(id: 0, payload: ext.encoded()), into: &self.outbound)
        }
        return true
    }

    private mutating func accept(_ message: PeerMessage, _ now: Instant) throws(PeerWireError) {
        if case .keepAlive = message { return }
        // A bitfield (or have-all/none) must come before any other statement of what the peer has; an
        // extended handshake may come before it (libtorrent and others send them in either order).
        let first = !self.sawPieceState
        switch message {
        case .have, .bitfield, .haveAll, .haveNone: self.sawPieceState = true
        default: break
        }
        let count = self.configuration.pieceCount
        func checkIndex(_ i: UInt32) throws(PeerWireError) {
            let limit = count ?? WireLimits.maxPieces  // before metadata: bounded so `have` cannot grow memory
            if Int(i) >= limit { throw .outOfRange("piece \(i) of \(limit)") }
        }
        switch message {
        case .choke: self.peerChoking = true
        case .unchoke: self.peerChoking = false
        case .interested: self.peerInterested = true
        case .notInterested: self.peerInterested = false
        case .have(let i):
            try checkIndex(i)
            if self.peerBitfield == nil { self.peerBitfield = count.map { [UInt8](repeating: 0, count: ($0 + 7) / 8) } ?? [] }
            let byte = Int(i / 8)
            if self.peerBitfield!.count <= byte {
                self.peerBitfield!.append(contentsOf: repeatElement(0, count: byte + 1 - self.peerBitfield!.count))
            }
            self.peerBitfield![byte] |= 0x80 >> UInt8(i % 8)
        case .bitfield(let bits):
            let raw = Array(bits.readableBytesView)
            if let count, !Self.bitfieldFits(raw, pieceCount: count) {
                throw .outOfRange("bitfield of \(raw.count) bytes for \(count) pieces")
            }
            // BEP 3 sends it first only, but aria2 sends a whole bitfield later instead of several haves when
            // that is shorter: a later one adds pieces (a peer never loses any).
            if !first, let old = self.peerBitfield, old.count == raw.count {
                self.peerBitfield = zip(old, raw).map { $0 | $1 }
            } else {
                self.peerBitfield = raw
            }
            self.bitfieldFromMessage = true
        case .haveAll, .haveNone:
            guard self.fastExtension else { throw .unexpected("have all/none without the fast extension") }
            if !first {
                // As with a late bitfield: have-all adds every piece, have-none adds nothing.
                if case .haveAll = message { self.peerHasAll = true; self.peerBitfield = count.map(Self.allSet) }
                break
            }
            if case .haveAll = message {
                self.peerHasAll = true
                self.peerBitfield = count.map(Self.allSet)
            } else {
                self.peerBitfield = []
            }
        case .suggest(let i), .allowedFast(let i):
            guard self.fastExtension else { throw .unexpected("fast extension message without the fast bit") }
            try checkIndex(i)
        case .reject(let b):
            guard self.fastExtension else { throw .unexpected("reject without the fast extension") }
            try checkIndex(b.piece)
        case .request(let b), .cancel(let b):
            try checkIndex(b.piece)
        case .piece(let i, _, let data):
            try checkIndex(i)
            guard data.readableBytes <= PieceMap.blockSize else {
                throw .badLength(id: 7, length: data.readableBytes + 8, expected: "at most 16 KiB of data")
            }
        case .extended(let id, let payload):
            guard self.extensionProtocol else { throw .unexpected("extension message without the extension bit") }
            if id == 0 {
                let ext = try ExtendedHandshake(decoding: payload)
                self.remoteExtensions = ext
                self.events.append(.extendedHandshake(ext))
                return
            }
        case .keepAlive, .port, .hashRequest, .hashes, .hashReject, .unknown:
            break
        }
        self.events.append(.message(message))
    }

    static func allSet(_ n: Int) -> [UInt8] {
        var all = [UInt8](repeating: 0xff, count: (n + 7) / 8)
        if n % 8 != 0 { all[all.count - 1] = 0xff << UInt8(8 - n % 8) }
        return all
    }

    static func bitfieldFits(_ bits: [UInt8], pieceCount: Int) -> Bool {
        guard bits.count == (pieceCount + 7) / 8 else { return false }
        let spare = bits.count * 8 - pieceCount
        guard spare > 0, let last = bits.last else { return true }
        return last & UInt8((1 << spare) - 1) == 0
    }

    private mutating func close(_ reason: PeerWireError?) {
        guard self.state != .closed else { return }
        self.state = .closed
        self.events.append(.closed(reason))
    }
}
