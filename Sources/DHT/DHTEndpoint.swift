// A UDP (node) or TCP (peer) endpoint as the DHT carries it: an IPv4 or IPv6 address and a port.
// Defined here rather than shared with Tracker's PeerAddress so that DHT does not depend on Tracker (and NIOCore).

/// An IPv4 or IPv6 address and a port, as carried in compact node and peer info (BEP 5, BEP 32).
///
/// The driver builds one from the socket address a datagram came from and turns `pollTransmit()`'s
/// destination back into a socket address. Prints as `1.2.3.4:6881` or `[2001:db8::1]:6881`.
public struct DHTEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// The address family: BEP 32 keeps the IPv4 and IPv6 DHTs apart.
    public enum Family: Hashable, Sendable, CaseIterable, CustomStringConvertible {
        case ipv4, ipv6

        /// Length of an address of this family.
        public var addressLength: Int { self == .ipv4 ? 4 : 16 }
        /// Length of compact peer info (address + port): 6 or 18.
        public var compactPeerLength: Int { self.addressLength + 2 }
        /// Length of compact node info (ID + address + port): 26 or 38.
        public var compactNodeLength: Int { 20 + self.compactPeerLength }

        public var description: String { self == .ipv4 ? "IPv4" : "IPv6" }
    }

    /// An IP address, stored in place.
    public enum IP: Hashable, Sendable, CustomStringConvertible {
        /// An IPv4 address; the first octet is the most significant byte.
        case v4(UInt32)
        /// An IPv6 address as two big-endian halves.
        case v6(high: UInt64, low: UInt64)

        /// Builds an address from 4 (IPv4) or 16 (IPv6) bytes in network order; nil for other lengths.
        public init?(bytes: some Collection<UInt8>) {
            switch bytes.count {
            case 4: self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
            case 16:
                let b = Array(bytes)
                self = .v6(
                    high: b[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: b[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
            default: return nil
            }
        }

        /// An IPv4 address from its four octets.
        public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IP {
            .v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
        }

        public var family: Family {
            if case .v4 = self { .ipv4 } else { .ipv6 }
        }

        /// The address bytes in network order: 4 or 16.
        public var bytes: [UInt8] {
            var out: [UInt8] = []
            self.append(to: &out)
            return out
        }

        func append(to out: inout [UInt8]) {
            switch self {
            case .v4(let v):
                for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (24 - 8 * i))) }
            case .v6(let high, let low):
                for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: high >> (56 - 8 * i))) }
                for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: low >> (56 - 8 * i))) }
            }
        }

        /// True for addresses BEP 42 exempts from node-ID checks: private, link-local and loopback IPv4
        /// (10/8, 172.16/12, 192.168/16, 169.254/16, 127/8) and, by the same reasoning, IPv6 loopback (::1),
        /// unique-local (fc00::/7) and link-local (fe80::/10) addresses.
        public var isLocal: Bool {
            switch self {
            case .v4(let v):
                return v >> 24 == 10 || v >> 20 == 0xAC1 || v >> 16 == 0xC0A8 || v >> 16 == 0xA9FE || v >> 24 == 127
            case .v6(let high, let low):
                if high == 0 && low == 1 { return true }
                return high >> 57 == 0x7E || high >> 54 == 0x3FA
            }
        }

        /// Dotted-quad for IPv4; for IPv6 lower-case groups with the longest run of zero groups shortened to `::`.
        public var description: String {
            switch self {
            case .v4(let v): return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
            case .v6(let high, let low):
                let groups = (0..<8).map { i -> UInt16 in
                    UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> (48 - 16 * UInt64(i % 4)))
                }
                var best = (start: -1, length: 1)
                var i = 0
                while i < 8 {
                    var j = i
                    while j < 8 && groups[j] == 0 { j += 1 }
                    if j - i > best.length { best = (i, j - i) }
                    i = max(j, i + 1)
                }
                let hex = groups.map { String($0, radix: 16) }
                guard best.start >= 0 else { return hex.joined(separator: ":") }
                return hex[0..<best.start].joined(separator: ":") + "::"
                    + hex[(best.start + best.length)...].joined(separator: ":")
            }
        }
    }

    public var ip: IP
    public var port: UInt16

    public init(ip: IP, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Reads compact peer info: 6 bytes (IPv4) or 18 bytes (IPv6), port last, big-endian. Nil for other lengths.
    public init?(compact bytes: some Collection<UInt8>) {
        let n = bytes.count
        guard n == 6 || n == 18 else { return nil }
        let b = Array(bytes)
        guard let ip = IP(bytes: b[0..<(n - 2)]) else { return nil }
        self.init(ip: ip, port: UInt16(b[n - 2]) << 8 | UInt16(b[n - 1]))
    }

    public var family: Family { self.ip.family }

    /// Compact peer info: address bytes then the port, big-endian (6 or 18 bytes).
    public var compact: [UInt8] {
        var out: [UInt8] = []
        self.appendCompact(to: &out)
        return out
    }

    func appendCompact(to out: inout [UInt8]) {
        self.ip.append(to: &out)
        out.append(UInt8(self.port >> 8))
        out.append(UInt8(self.port & 0xff))
    }

    public var description: String {
        self.family == .ipv4 ? "\(self.ip):\(self.port)" : "[\(self.ip)]:\(self.port)"
    }
}
