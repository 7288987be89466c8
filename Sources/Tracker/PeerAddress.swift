// The address of a peer as trackers, PEX and the DHT hand them out: an IPv4 or IPv6 address and a port.
// Dependency-free on purpose, so that it can move to PeerBase when other targets need it.

/// The IP address and TCP (or uTP) port of a peer.
///
/// Prints as `1.2.3.4:6881` or `[2001:db8::1]:6881` (RFC 5952 text for IPv6) and parses the same forms.
/// The compact form is 4 or 16 address bytes followed by the port, big-endian (BEP 23, BEP 7).
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// An IPv4 or IPv6 address, stored in place (no heap allocation per peer).
    public enum IP: Hashable, Sendable, CustomStringConvertible {
        /// An IPv4 address; the first octet is the most significant byte.
        case v4(UInt32)
        /// An IPv6 address as two big-endian halves.
        case v6(high: UInt64, low: UInt64)

        /// Builds an IPv4 address from 4 bytes in network order.
        /// - Precondition: `bytes.count == 4`.
        public init(ipv4 bytes: some Collection<UInt8>) {
            precondition(bytes.count == 4, "an IPv4 address has 4 bytes")
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        }

        /// Builds an IPv6 address from 16 bytes in network order.
        /// - Precondition: `bytes.count == 16`.
        public init(ipv6 bytes: some Collection<UInt8>) {
            precondition(bytes.count == 16, "an IPv6 address has 16 bytes")
            let high = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high: high, low: low)
        }

        /// Parses a dotted-quad IPv4 address (`192.0.2.1`, no leading zeros) or IPv6 text without
        /// brackets (`2001:db8::1`, `::ffff:192.0.2.1`). Zone identifiers (`%eth0`) are refused.
        /// - Throws: `PeerAddress.ParseError` saying what is wrong.
        public init(parsing text: some StringProtocol) throws(PeerAddress.ParseError) {
            let utf8 = Array(text.utf8)
            let input = String(text)
            if utf8.contains(UInt8(ascii: ":")) {
                switch Self.parseIPv6(utf8) {
                case .success(let groups): self = Self.fromGroups(groups)
                case .failure(let reason): throw PeerAddress.ParseError(input: input, reason: reason.text)
                }
            } else {
                switch Self.parseIPv4(utf8[...]) {
                case .success(let v): self = .v4(v)
                case .failure(let reason): throw PeerAddress.ParseError(input: input, reason: reason.text)
                }
            }
        }

        /// True for an IPv4 address.
        public var isIPv4: Bool { if case .v4 = self { true } else { false } }

        /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
        public var bytes: [UInt8] {
            switch self {
            case .v4(let v): return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
            case .v6(let high, let low):
                return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                    + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
            }
        }

        /// Dotted-quad for IPv4; RFC 5952 text for IPv6 (lower case, longest zero run shortened to `::`,
        /// IPv4-mapped addresses as `::ffff:a.b.c.d`).
        public var description: String {
            switch self {
            case .v4(let v): return Self.dotted(v)
            case .v6(let high, let low):
                let groups = (0..<8).map { i -> UInt16 in
                    let half = i < 4 ? high : low
                    return UInt16(truncatingIfNeeded: half >> (48 - 16 * UInt64(i % 4)))
                }
                if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xffff {
                    return "::ffff:" + Self.dotted(UInt32(truncatingIfNeeded: low))
                }
                return Self.formatGroups(groups)
            }
        }

        // MARK: Text helpers

        private static func dotted(_ v: UInt32) -> String {
            "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
        }

        private static func formatGroups(_ groups: [UInt16]) -> String {
            // The longest run of two or more zero groups (the first one on a tie) becomes "::".
            var bestStart = -1
            var bestLength = 1
            var i = 0
            while i < groups.count {
                guard groups[i] == 0 else {
                    i += 1
                    continue
                }
                var j = i
                while j < groups.count && groups[j] == 0 { j += 1 }
                if j - i > bestLength {
                    bestStart = i
                    bestLength = j - i
                }
                i = j
            }
            let hex = groups.map { String($0, radix: 16) }
            guard bestStart >= 0 else { return hex.joined(separator: ":") }
            let head = hex[0..<bestStart].joined(separator: ":")
            let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
            return head + "::" + tail
        }

        private static func fromGroups(_ groups: [UInt16]) -> IP {
            let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            return .v6(high: high, low: low)
        }

        private static func parseIPv4(_ s: ArraySlice<UInt8>) -> Result<UInt32, PeerAddress.Reason> {
            guard s.allSatisfy({ Self.isDigit($0) || $0 == UInt8(ascii: ".") }) else {
                let text = String(decoding: s, as: UTF8.self)
                return .failure(.init("\"\(text)\" is not an IP address (host names are not resolved here)"))
            }
            let parts = s.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            guard parts.count == 4 else { return .failure(.init("an IPv4 address has four dot-separated numbers")) }
            var value: UInt32 = 0
            for part in parts {
                guard !part.isEmpty, part.count <= 3, part.allSatisfy(Self.isDigit) else {
                    return .failure(.init("\"\(String(decoding: part, as: UTF8.self))\" is not a number 0-255"))
                }
                guard part.count == 1 || part.first != UInt8(ascii: "0") else {
                    return .failure(.init("leading zero in \"\(String(decoding: part, as: UTF8.self))\""))
                }
                let n = part.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
                guard n <= 255 else { return .failure(.init("\(n) is larger than 255")) }
                value = value << 8 | UInt32(n)
            }
            return .success(value)
        }

        private static func parseIPv6(_ s: [UInt8]) -> Result<[UInt16], PeerAddress.Reason> {
            if s.contains(UInt8(ascii: "%")) { return .failure(.init("zone identifiers are not supported")) }
            // Split at the one "::" allowed, if any.
            var gap: Int? = nil
            var i = 0
            while i + 1 < s.count {
                if s[i] == UInt8(ascii: ":") && s[i + 1] == UInt8(ascii: ":") {
                    if gap != nil { return .failure(.init("\"::\" appears more than once")) }
                    gap = i
                    i += 2
                } else {
                    i += 1
                }
            }
            let head: ArraySlice<UInt8>
            let tail: ArraySlice<UInt8>
            if let g = gap {
                head = s[0..<g]
                tail = s[(g + 2)...]
            } else {
                head = s[...]
                tail = []
            }
            let headGroups: [UInt16]
            switch Self.groups(head, ipv4Allowed: gap == nil) {
            case .success(let g): headGroups = g
            case .failure(let e): return .failure(e)
            }
            let tailGroups: [UInt16]
            switch Self.groups(tail, ipv4Allowed: true) {
            case .success(let g): tailGroups = g
            case .failure(let e): return .failure(e)
            }
            let count = headGroups.count + tailGroups.count
            if gap == nil {
                guard count == 8 else { return .failure(.init("an IPv6 address has eight groups, found \(count)")) }
                return .success(headGroups)
            }
            guard count <= 7 else { return .failure(.init("too many groups around \"::\"")) }
            return .success(headGroups + [UInt16](repeating: 0, count: 8 - count) + tailGroups)
        }

        /// Colon-separated hex groups; the last may be a dotted IPv4 address (two groups).
        private static func groups(_ s: ArraySlice<UInt8>, ipv4Allowed: Bool) -> Result<[UInt16], PeerAddress.Reason> {
            if s.isEmpty { return .success([]) }
            let parts = s.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard parts.count <= 8 else { return .failure(.init("more than eight groups")) }
            var out: [UInt16] = []
            for (index, part) in parts.enumerated() {
                if part.contains(UInt8(ascii: ".")) {
                    guard ipv4Allowed && index == parts.count - 1 else {
                        return .failure(.init("an embedded IPv4 address must come last"))
                    }
                    switch Self.parseIPv4(part) {
                    case .success(let v):
                        out.append(UInt16(truncatingIfNeeded: v >> 16))
                        out.append(UInt16(truncatingIfNeeded: v))
                    case .failure(let e): return .failure(e)
                    }
                    continue
                }
                guard !part.isEmpty else { return .failure(.init("empty group (a lone ':' at an end or ':::')")) }
                guard part.count <= 4 else {
                    return .failure(.init("group \"\(String(decoding: part, as: UTF8.self))\" has more than 4 digits"))
                }
                var v: UInt16 = 0
                for c in part {
                    guard let d = Self.hexValue(c) else {
                        return .failure(.init("\"\(String(decoding: part, as: UTF8.self))\" is not hexadecimal"))
                    }
                    v = v << 4 | UInt16(d)
                }
                out.append(v)
            }
            return .success(out)
        }

        private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

        private static func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
    }

    /// Why a `host:port` string is not a peer address.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The text that was parsed.
        public var input: String
        /// What is wrong with it.
        public var reason: String

        public init(input: String, reason: String) {
            self.input = input
            self.reason = reason
        }

        public var description: String { "\"\(self.input)\" is not a peer address: \(self.reason)" }
    }

    /// A failure reason before the input is attached (lets the helpers return `Result`).
    fileprivate struct Reason: Error {
        var text: String
        init(_ text: String) { self.text = text }
    }

    /// The address.
    public var ip: IP
    /// The port.
    public var port: UInt16

    public init(ip: IP, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses `1.2.3.4:6881` or `[2001:db8::1]:6881`. The port must be 1-65535 in decimal.
    /// - Throws: `ParseError` naming the input and what is wrong with it.
    public init(parsing text: some StringProtocol) throws(ParseError) {
        let input = String(text)
        let utf8 = Array(text.utf8)
        let hostPart: ArraySlice<UInt8>
        let portPart: ArraySlice<UInt8>
        if utf8.first == UInt8(ascii: "[") {
            guard let close = utf8.firstIndex(of: UInt8(ascii: "]")) else {
                throw ParseError(input: input, reason: "missing \"]\" after the IPv6 address")
            }
            guard close + 1 < utf8.count, utf8[close + 1] == UInt8(ascii: ":") else {
                throw ParseError(input: input, reason: "missing \":port\" after \"]\"")
            }
            hostPart = utf8[1..<close]
            portPart = utf8[(close + 2)...]
        } else {
            let colons = utf8.indices.filter { utf8[$0] == UInt8(ascii: ":") }
            guard let colon = colons.first else { throw ParseError(input: input, reason: "missing \":port\"") }
            guard colons.count == 1 else {
                throw ParseError(input: input, reason: "an IPv6 address needs brackets: [address]:port")
            }
            hostPart = utf8[0..<colon]
            portPart = utf8[(colon + 1)...]
        }
        guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw ParseError(input: input, reason: "the port is not a decimal number")
        }
        let port = portPart.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard port <= 65535 else { throw ParseError(input: input, reason: "port \(port) is larger than 65535") }
        guard port != 0 else { throw ParseError(input: input, reason: "port 0 cannot be connected to") }
        let ip: IP
        do {
            ip = try IP(parsing: String(decoding: hostPart, as: UTF8.self))
        } catch {
            throw ParseError(input: input, reason: error.reason)
        }
        if utf8.first == UInt8(ascii: "["), ip.isIPv4 {
            throw ParseError(input: input, reason: "brackets hold IPv6 addresses only")
        }
        self.init(ip: ip, port: UInt16(port))
    }

    /// Parses the `description` form; nil when it is not a peer address (use `init(parsing:)` for why).
    public init?(_ description: String) {
        guard let parsed = try? PeerAddress(parsing: description) else { return nil }
        self = parsed
    }

    /// Reads the compact form: 6 bytes (IPv4) or 18 bytes (IPv6), the port last, big-endian.
    /// Returns nil for any other length.
    public init?(compact bytes: some Collection<UInt8>) {
        let b = Array(bytes)
        switch b.count {
        case 6: self.init(ip: IP(ipv4: b[0..<4]), port: UInt16(b[4]) << 8 | UInt16(b[5]))
        case 18: self.init(ip: IP(ipv6: b[0..<16]), port: UInt16(b[16]) << 8 | UInt16(b[17]))
        default: return nil
        }
    }

    /// The compact form: address bytes then the port, big-endian (6 or 18 bytes).
    public var compact: [UInt8] { self.ip.bytes + [UInt8(self.port >> 8), UInt8(self.port & 0xff)] }

    /// `1.2.3.4:6881` or `[::1]:6881`.
    public var description: String {
        self.ip.isIPv4 ? "\(self.ip):\(self.port)" : "[\(self.ip)]:\(self.port)"
    }
}
