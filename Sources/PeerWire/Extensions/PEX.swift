// BEP 11: peer exchange (ut_pex).
import Bencode
import NIOCore

/// One peer in a PEX message: its address (4 or 16 bytes), port and flags.
public struct PEXPeer: Hashable, Sendable, CustomStringConvertible {
    public var ip: [UInt8]
    public var port: UInt16
    public var flags: Flags

    /// BEP 11 flags, one byte per peer in `added.f`.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let prefersEncryption = Flags(rawValue: 0x01)
        /// A seed, or upload only.
        public static let seed = Flags(rawValue: 0x02)
        public static let utp = Flags(rawValue: 0x04)
        public static let holepunch = Flags(rawValue: 0x08)
        /// The sender connected to it (so it accepts incoming connections).
        public static let reachable = Flags(rawValue: 0x10)
    }

    public init(ip: [UInt8], port: UInt16, flags: Flags = []) {
        precondition(ip.count == 4 || ip.count == 16, "IPv4 or IPv6")
        self.ip = ip
        self.port = port
        self.flags = flags
    }

    /// "a.b.c.d:port" or "[v6]:port".
    public var description: String {
        if self.ip.count == 4 { return self.ip.map(String.init).joined(separator: ".") + ":\(self.port)" }
        let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(self.ip[$0]) << 8 | UInt16(self.ip[$0 + 1]), radix: 16) }
        return "[\(groups.joined(separator: ":"))]:\(self.port)"
    }
}

/// A ut_pex message: peers the sender connected to since its last message, and peers it dropped.
public struct PEXMessage: Equatable, Sendable {
    public var added: [PEXPeer]
    public var dropped: [PEXPeer]

    /// The extension name in the `m` dictionary.
    public static let name = "ut_pex"
    /// At most this many peers in each list of one message (as libtorrent sends).
    public static let maxPeers = 50
    /// At most this many peers read from each list of a received message; the rest are ignored.
    public static let maxAccepted = 200

    public init(added: [PEXPeer], dropped: [PEXPeer]) {
        self.added = added
        self.dropped = dropped
    }

    /// Parses a ut_pex payload (after the extended message id). Malformed lists are errors; over-long ones are
    /// cut to `maxAccepted`.
    public init(decoding payload: ByteBuffer) throws(PeerWireError) {
        let node: BencodeNode
        do { node = try BencodeDecoder(limits: .message).decode(Array(payload.readableBytesView)) } catch {
            throw .badExtension("ut_pex: \(error)")
        }
        guard node.value.dictionary != nil else { throw .badExtension("ut_pex: not a dictionary") }
        let d = node.value
        func peers(_ key: String, width: Int, flagsKey: String?) throws(PeerWireError) -> [PEXPeer] {
            guard let value = d[key] else { return [] }
            guard let bytes = value.bytes, bytes.count % (width + 2) == 0 else {
                throw .badExtension("ut_pex: \(key) is not a list of \(width + 2)-byte entries")
            }
            let flags = flagsKey.flatMap { d[$0]?.bytes } ?? []
            var out: [PEXPeer] = []
            for (i, start) in stride(from: 0, to: bytes.count, by: width + 2).enumerated().prefix(Self.maxAccepted) {
                let port = UInt16(bytes[start + width]) << 8 | UInt16(bytes[start + width + 1])
                guard port > 0 else { continue }
                out.append(PEXPeer(ip: Array(bytes[start..<start + width]), port: port,
                    flags: PEXPeer.Flags(rawValue: i < flags.count ? flags[i] : 0)))
            }
            return out
        }
        self.added = try peers("added", width: 4, flagsKey: "added.f") + peers("added6", width: 16, flagsKey: "added6.f")
        self.dropped = try peers("dropped", width: 4, flagsKey: nil) + peers("dropped6", width: 16, flagsKey: nil)
    }

    /// The payload to send (after the extended message id).
    public func encoded() -> ByteBuffer {
        var d = BencodeDictionary()
        for (suffix, width) in [("", 4), ("6", 16)] {
            let added = self.added.filter { $0.ip.count == width }
            let dropped = self.dropped.filter { $0.ip.count == width }
            d["added" + suffix] = .string(added.flatMap { $0.ip + [UInt8($0.port >> 8), UInt8($0.port & 0xFF)] })
            d["added\(suffix).f"] = .string(added.map(\.flags.rawValue))
            d["dropped" + suffix] = .string(dropped.flatMap { $0.ip + [UInt8($0.port >> 8), UInt8($0.port & 0xFF)] })
        }
        return ByteBuffer(bytes: BencodeEncoder.encode(.dictionary(d)))
    }
}
