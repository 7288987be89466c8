import Metainfo
import NIOCore

/// A 20-byte peer id.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        precondition(bytes.count == 20, "a peer id has 20 bytes")
        self.bytes = bytes
    }

    /// A fresh Azureus-style id (`-PE0100-` then 12 random characters) from an injected generator.
    public static func random(using rng: inout some RandomNumberGenerator) -> PeerID {
        let prefix = Array("-PE0100-".utf8)
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        return PeerID(prefix + (0..<12).map { _ in alphabet.randomElement(using: &rng)! })
    }

    public var description: String {
        String(decoding: self.bytes.map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
    }
}

/// The BitTorrent handshake: `19 "BitTorrent protocol" reserved[8] info_hash[20] peer_id[20]`.
public struct Handshake: Hashable, Sendable {
    public static let protocolName = Array("BitTorrent protocol".utf8)
    public static let length = 68

    /// Capability bits of the reserved bytes.
    public struct Reserved: OptionSet, Hashable, Sendable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        /// BEP 10: reserved[5] & 0x10.
        public static let extensionProtocol = Reserved(rawValue: 0x10 << 16)
        /// BEP 6: reserved[7] & 0x04.
        public static let fast = Reserved(rawValue: 0x04)
        /// BEP 5: reserved[7] & 0x01.
        public static let dht = Reserved(rawValue: 0x01)
        /// BEP 52: reserved[7] & 0x10, the peer also speaks v2 for this hybrid torrent.
        public static let v2Upgrade = Reserved(rawValue: 0x10)

        /// What Peer announces.
        public static let peerDefault: Reserved = [.extensionProtocol, .fast, .dht, .v2Upgrade]
    }

    public var reserved: Reserved
    /// 20 bytes: a v1 info-hash, or the truncated v2 hash.
    public var infoHash: [UInt8]
    public var peerID: PeerID

    public init(reserved: Reserved, infoHash: [UInt8], peerID: PeerID) {
        precondition(infoHash.count == 20, "the handshake carries a 20-byte info-hash")
        self.reserved = reserved
        self.infoHash = infoHash
        self.peerID = peerID
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(19))
        buffer.writeBytes(Self.protocolName)
        buffer.writeInteger(self.reserved.rawValue)
        buffer.writeBytes(self.infoHash)
        buffer.writeBytes(self.peerID.bytes)
    }

    /// Reads the protocol header and reserved bytes (the first 28 bytes), which come before the info-hash
    /// so that a receiving side can choose the torrent before the rest arrives.
    /// - Returns: nil when fewer than 28 bytes are buffered.
    public static func decodeHeader(_ buffer: inout ByteBuffer) throws(PeerWireError) -> Reserved? {
        guard buffer.readableBytes >= 28 else {
            if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first != 19 {
                throw .badHandshake("protocol name length \(first), expected 19")
            }
            return nil
        }
        let nameLength = buffer.readInteger(as: UInt8.self)!
        let name = buffer.readBytes(length: 19)!
        guard nameLength == 19, name == Self.protocolName else {
            throw .badHandshake("not the BitTorrent protocol")
        }
        return Reserved(rawValue: buffer.readInteger(as: UInt64.self)!)
    }

    /// Reads a whole handshake. - Returns: nil when fewer than 68 bytes are buffered (nothing is consumed).
    public static func decode(_ buffer: inout ByteBuffer) throws(PeerWireError) -> Handshake? {
        guard buffer.readableBytes >= Self.length else {
            var peek = buffer
            _ = try Self.decodeHeader(&peek)
            return nil
        }
        let reserved = try Self.decodeHeader(&buffer)!
        let hash = buffer.readBytes(length: 20)!
        let id = buffer.readBytes(length: 20)!
        return Handshake(reserved: reserved, infoHash: hash, peerID: PeerID(id))
    }
}
