// BEP 42: DHT security extension. A node ID's first 21 bits are tied to the node's external IP by CRC32C.

extension NodeID {
    /// An ID that satisfies BEP 42 for `ip`: the first 21 bits come from CRC32C of the masked address and the
    /// random number `r` (0...7), the last byte is a random byte whose low three bits are `r`, everything else
    /// is random.
    public static func secure(for ip: DHTEndpoint.IP, using rng: inout some RandomNumberGenerator) -> NodeID {
        let last = UInt8(truncatingIfNeeded: rng.next() as UInt64)
        return Self.secure(for: ip, lastByte: last, using: &rng)
    }

    /// An ID that satisfies BEP 42 for `ip` whose last byte is `lastByte` (its low three bits are `r`).
    public static func secure(for ip: DHTEndpoint.IP, lastByte: UInt8, using rng: inout some RandomNumberGenerator)
        -> NodeID
    {
        let crc = BEP42.prefix(for: ip, r: lastByte & 7)
        var bytes = NodeID.random(using: &rng).bytes
        bytes[0] = UInt8(truncatingIfNeeded: crc >> 24)
        bytes[1] = UInt8(truncatingIfNeeded: crc >> 16)
        bytes[2] = UInt8(truncatingIfNeeded: crc >> 8) & 0xf8 | bytes[2] & 0x07
        bytes[19] = lastByte
        return NodeID(bytes: bytes)!
    }

    /// True when this ID's first 21 bits match what BEP 42 derives from `ip` and the `r` in its last byte.
    /// Local addresses (`DHTEndpoint.IP.isLocal`) are exempt and always pass.
    public func isSecure(for ip: DHTEndpoint.IP) -> Bool {
        if ip.isLocal { return true }
        let crc = BEP42.prefix(for: ip, r: self[byte: 19] & 7)
        return UInt32(truncatingIfNeeded: self.high >> 32) & 0xFFFF_F800 == crc & 0xFFFF_F800
    }
}

/// The arithmetic of BEP 42.
enum BEP42 {
    /// CRC32C of the masked address with `r` in its top three bits: 4 bytes for IPv4, the first 8 bytes
    /// (high 64 bits) for IPv6, as the BEP's example code and test vectors do.
    static func prefix(for ip: DHTEndpoint.IP, r: UInt8) -> UInt32 {
        switch ip {
        case .v4(let v):
            let masked = v & 0x030f_3fff | UInt32(r & 7) << 29
            return CRC32C.checksum((0..<4).map { UInt8(truncatingIfNeeded: masked >> (24 - 8 * $0)) })
        case .v6(let high, _):
            let masked = high & 0x0103_070f_1f3f_7fff | UInt64(r & 7) << 61
            return CRC32C.checksum((0..<8).map { UInt8(truncatingIfNeeded: masked >> (56 - 8 * $0)) })
        }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as BEP 42 specifies.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes` (initial value and final XOR 0xFFFFFFFF; "123456789" gives 0xE3069283).
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = Self.table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
