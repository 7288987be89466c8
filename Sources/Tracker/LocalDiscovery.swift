// BEP 14: local service discovery, an HTTP-like announce multicast on the local network.
import PeerBase

/// The BT-SEARCH message of BEP 14 and its limits. Pure: the driver owns the multicast socket.
public enum LocalDiscovery {
    public static let ipv4Group = "239.192.152.143"
    public static let ipv6Group = "ff15::efc0:988f"
    public static let port = 6771
    /// A datagram longer than this is not read (a real announce of a few hashes is a few hundred bytes).
    public static let maxDatagram = 1400
    /// Info-hashes read from one message at most.
    public static let maxHashes = 16

    /// What a peer on the local network announced.
    public struct Announce: Equatable, Sendable {
        /// Its listening port (the address is the datagram's source).
        public var port: UInt16
        /// 20-byte info-hashes (v1, or truncated v2).
        public var infoHashes: [[UInt8]]
        /// The sender's cookie, to recognise our own announces coming back.
        public var cookie: String?

        public init(port: UInt16, infoHashes: [[UInt8]], cookie: String?) {
            self.port = port
            self.infoHashes = infoHashes
            self.cookie = cookie
        }
    }

    /// The datagram announcing `infoHashes` (at most `maxHashes`) on `port`.
    /// - Parameter host: the group, as BEP 14 puts it in the Host header ("239.192.152.143:6771").
    public static func encode(_ announce: Announce, host: String = "\(ipv4Group):\(port)") -> [UInt8] {
        var text = "BT-SEARCH * HTTP/1.1\r\nHost: \(host)\r\nPort: \(announce.port)\r\n"
        for hash in announce.infoHashes.prefix(Self.maxHashes) { text += "Infohash: \(Hex.encode(hash))\r\n" }
        if let cookie = announce.cookie { text += "cookie: \(cookie)\r\n" }
        return Array((text + "\r\n\r\n").utf8)
    }

    /// Parses a datagram; nil when it is not a BT-SEARCH announce with a valid port and at least one hash.
    public static func decode(_ datagram: [UInt8]) -> Announce? {
        guard datagram.count <= Self.maxDatagram, let text = String(validating: datagram, as: UTF8.self),
            text.hasPrefix("BT-SEARCH * HTTP/1.1\r\n")
        else { return nil }
        var port: UInt16?
        var hashes: [[UInt8]] = []
        var cookie: String?
        for line in text.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            switch name {
            case "port": port = UInt16(value).flatMap { $0 > 0 ? $0 : nil }
            case "infohash":
                if hashes.count < Self.maxHashes, value.count == 40, let h = Hex.decode(value) { hashes.append(h) }
            case "cookie": cookie = String(value.prefix(64))
            default: continue
            }
        }
        guard let port, !hashes.isEmpty else { return nil }
        return Announce(port: port, infoHashes: hashes, cookie: cookie)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
