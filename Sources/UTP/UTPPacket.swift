// BEP 29: the uTorrent transport protocol's packet (header, extensions, payload).

/// The kinds of uTP packet (BEP 29 "type").
public enum UTPPacketType: UInt8, Sendable, CustomStringConvertible {
    case data = 0, fin = 1, state = 2, reset = 3, syn = 4

    public var description: String {
        switch self {
        case .data: "ST_DATA"
        case .fin: "ST_FIN"
        case .state: "ST_STATE"
        case .reset: "ST_RESET"
        case .syn: "ST_SYN"
        }
    }
}

/// The limits a packet is held to, worked out from BEP 29 and from what clients send.
public enum UTPLimits {
    /// The fixed header.
    public static let headerLength = 20
    /// The largest datagram taken: the largest UDP payload over IPv4. A bigger one is not uTP.
    public static let maxDatagram = 65_507
    /// Extensions in one packet: a chain longer than this is an attack (each costs 2 bytes at least). A path MTU
    /// probe from a jumbo-frame link carries about 35 padding extensions.
    public static let maxExtensions = 64
    /// The extension type that pads a path MTU probe: unknown to every client, so skipped by its length.
    public static let paddingExtension: UInt8 = 0x50
    /// Bytes of a selective ACK's bitmask kept (libtorrent sends `ceil(window / 8)`, not BEP 29's multiple of 4,
    /// so any length is taken; bits beyond this many bytes are ignored).
    public static let maxSelectiveAckBytes = 128
}

/// One uTP packet (BEP 29), as sent or as read from a datagram.
///
/// Decoding checks the length before anything is read, takes any selective-ACK length, skips unknown extensions by
/// their length, and throws `UTPError` for anything else wrong; it never traps.
public struct UTPPacket: Equatable, Sendable {
    public var type: UTPPacketType
    public var connectionID: UInt16
    /// The sender's clock in microseconds (wraps), and its last one-way delay measurement of our packets.
    public var timestamp: UInt32
    public var timestampDifference: UInt32
    /// The sender's receive window: bytes it can take beyond what it has acknowledged.
    public var windowSize: UInt32
    public var seq: UInt16
    public var ack: UInt16
    /// Selective ACK (extension 1): bit i of byte j acknowledges `ack + 2 + 8j + i`. Empty: none.
    public var selectiveAck: [UInt8]
    /// Bytes of extensions that carry nothing (each extension's 2-byte header included): what pads a path MTU
    /// probe when sent, what unknown extensions took when read.
    public var padding: Int
    public var payload: [UInt8]

    public init(type: UTPPacketType, connectionID: UInt16, timestamp: UInt32 = 0, timestampDifference: UInt32 = 0,
        windowSize: UInt32 = 0, seq: UInt16, ack: UInt16, selectiveAck: [UInt8] = [], padding: Int = 0,
        payload: [UInt8] = [])
    {
        self.type = type
        self.connectionID = connectionID
        self.timestamp = timestamp
        self.timestampDifference = timestampDifference
        self.windowSize = windowSize
        self.seq = seq
        self.ack = ack
        self.selectiveAck = selectiveAck
        self.padding = padding
        self.payload = payload
    }

    /// Whether a datagram looks like uTP at all (BEP 29 version 1 and a known type), before it is decoded: how one
    /// UDP port tells uTP from the DHT (`d…e`) and UDP trackers, as libtorrent does.
    public static func looksLikeUTP(_ bytes: some Collection<UInt8>) -> Bool {
        guard bytes.count >= UTPLimits.headerLength, let first = bytes.first else { return false }
        return first & 0x0F == 1 && first >> 4 <= UTPPacketType.syn.rawValue
    }

    /// Reads a packet from one datagram.
    public init(bytes: [UInt8]) throws(UTPError) {
        guard bytes.count <= UTPLimits.maxDatagram else { throw .tooLong(bytes.count) }
        guard bytes.count >= UTPLimits.headerLength else { throw .truncated(bytes.count) }
        let version = bytes[0] & 0x0F
        guard version == 1 else { throw .version(version) }
        guard let type = UTPPacketType(rawValue: bytes[0] >> 4) else { throw .type(bytes[0] >> 4) }
        func u16(_ i: Int) -> UInt16 { UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        self.type = type
        self.connectionID = u16(2)
        self.timestamp = u32(4)
        self.timestampDifference = u32(8)
        self.windowSize = u32(12)
        self.seq = u16(16)
        self.ack = u16(18)
        self.selectiveAck = []
        self.padding = 0
        var next = bytes[1]
        var at = UTPLimits.headerLength
        var count = 0
        while next != 0 {
            count += 1
            guard count <= UTPLimits.maxExtensions else { throw .tooManyExtensions }
            guard at + 2 <= bytes.count else { throw .truncatedExtension(at: at) }
            let kind = next
            next = bytes[at]
            let length = Int(bytes[at + 1])
            at += 2
            guard at + length <= bytes.count else { throw .truncatedExtension(at: at) }
            if kind == 1 && self.selectiveAck.isEmpty {
                self.selectiveAck = Array(bytes[at..<at + min(length, UTPLimits.maxSelectiveAckBytes)])
            } else if kind != 1 {
                self.padding += 2 + length
            }
            at += length  // unknown extensions (libtorrent's close_reason, 3) are skipped by their length
        }
        self.payload = Array(bytes[at...])
    }

    /// The datagram's bytes. The selective ACK goes out padded to BEP 29's multiple of 4; `padding` goes out as a
    /// chain of `UTPLimits.paddingExtension` extensions of at most 255 bytes each (a remainder under 2 is dropped).
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        let pads = self.padding < 2 ? 0 : (self.padding + 256) / 257
        out.reserveCapacity(UTPLimits.headerLength + self.payload.count + self.selectiveAck.count + 6 + self.padding)
        out.append(self.type.rawValue << 4 | 1)
        out.append(!self.selectiveAck.isEmpty ? 1 : pads > 0 ? UTPLimits.paddingExtension : 0)
        func put16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
        func put32(_ v: UInt32) { put16(UInt16(v >> 16)); put16(UInt16(v & 0xFFFF)) }
        put16(self.connectionID)
        put32(self.timestamp)
        put32(self.timestampDifference)
        put32(self.windowSize)
        put16(self.seq)
        put16(self.ack)
        if !self.selectiveAck.isEmpty {
            let padded = self.selectiveAckLength - 2
            out.append(pads > 0 ? UTPLimits.paddingExtension : 0)
            out.append(UInt8(padded))
            out.append(contentsOf: self.selectiveAck.prefix(252))
            out.append(contentsOf: repeatElement(0, count: padded - min(self.selectiveAck.count, 252)))
        }
        // Spread over the extensions so that none is shorter than 0 bytes: pads * 2 <= padding.
        var left = self.padding
        for i in 0..<pads {
            let length = min(255, left - 2 * (pads - i))
            out.append(i == pads - 1 ? 0 : UTPLimits.paddingExtension)
            out.append(UInt8(length))
            out.append(contentsOf: repeatElement(0, count: length))
            left -= 2 + length
        }
        out.append(contentsOf: self.payload)
        return out
    }

    /// Bytes the selective ACK takes in the datagram: its extension header and the mask padded to BEP 29's
    /// multiple of 4 (at most 252); 0 without one.
    public var selectiveAckLength: Int {
        self.selectiveAck.isEmpty ? 0 : 2 + min((self.selectiveAck.count + 3) / 4 * 4, 252)
    }

    /// Whether `seq` is acknowledged by this packet's selective ACK.
    public func selectivelyAcks(_ seq: UInt16) -> Bool {
        let offset = Int(seq &- self.ack &- 2)
        guard offset < self.selectiveAck.count * 8 else { return false }
        return self.selectiveAck[offset / 8] & (1 << UInt8(offset % 8)) != 0
    }
}

/// Why a datagram is not a uTP packet.
public enum UTPError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(Int)
    case tooLong(Int)
    case version(UInt8)
    case type(UInt8)
    case truncatedExtension(at: Int)
    case tooManyExtensions

    public var description: String {
        switch self {
        case .truncated(let n): "a uTP packet needs 20 bytes; this datagram has \(n)"
        case .tooLong(let n): "a datagram of \(n) bytes is longer than any UDP payload"
        case .version(let v): "uTP version \(v) (only 1 exists)"
        case .type(let t): "unknown uTP packet type \(t)"
        case .truncatedExtension(let at): "a uTP extension header runs past the datagram's end (at byte \(at))"
        case .tooManyExtensions: "more than \(UTPLimits.maxExtensions) uTP extensions in one packet"
        }
    }
}

/// uTP's 16-bit sequence numbers, compared across the wrap.
enum Seq {
    /// Whether a comes before b (within half the number space).
    static func less(_ a: UInt16, _ b: UInt16) -> Bool { Int16(bitPattern: a &- b) < 0 }
    /// How far b is after a (negative when before).
    static func distance(_ a: UInt16, to b: UInt16) -> Int { Int(Int16(bitPattern: b &- a)) }
}
