/// The transport a port mapping is for.
public enum MappedProtocol: String, Sendable, Hashable, CaseIterable, Codable {
    case tcp = "TCP"
    case udp = "UDP"

    /// The IP protocol number (PCP's field).
    var ipProtocol: UInt8 { self == .tcp ? 6 : 17 }
}

/// NAT-PMP (RFC 6886) and PCP (RFC 6887) messages, as the client sends and reads them over UDP port 5351 of the
/// default gateway. No I/O.
///
/// PCP is tried first (libtorrent does so too); a gateway that speaks NAT-PMP only answers a PCP request with a
/// NAT-PMP "unsupported version", and the client falls back to NAT-PMP.
public enum NATPMP {
    public static let serverPort = 5351

    /// The external IPv4 address request (NAT-PMP opcode 0).
    public static func externalAddressRequest() -> [UInt8] { [0, 0] }

    /// A NAT-PMP map request: `lifetime` 0 with external port 0 deletes the mapping.
    public static func mapRequest(_ proto: MappedProtocol, internalPort: UInt16, externalPort: UInt16,
        lifetime: UInt32) -> [UInt8]
    {
        var b: [UInt8] = [0, proto == .udp ? 1 : 2, 0, 0]
        b.appendBE(internalPort)
        b.appendBE(externalPort)
        b.appendBE(lifetime)
        return b
    }

    /// A PCP MAP request (RFC 6887 §11.1): `client` is the address the request leaves from (IPv4 or IPv6 bytes),
    /// `nonce` 12 bytes the client keeps for the mapping's life (renewals and the delete repeat it).
    public static func pcpMapRequest(_ proto: MappedProtocol, internalPort: UInt16, externalPort: UInt16,
        lifetime: UInt32, client: [UInt8], nonce: [UInt8]) -> [UInt8]
    {
        precondition(nonce.count == 12)
        var b: [UInt8] = [2, 1, 0, 0]
        b.appendBE(lifetime)
        b += Self.ipv6Form(client)
        b += nonce
        b += [proto.ipProtocol, 0, 0, 0]
        b.appendBE(internalPort)
        b.appendBE(externalPort)
        b += Self.ipv6Form([0, 0, 0, 0])  // no preference of external address
        return b
    }

    /// An IPv4 address as PCP carries it (IPv4-mapped IPv6); 16 bytes are kept as they are.
    static func ipv6Form(_ ip: [UInt8]) -> [UInt8] {
        ip.count == 16 ? ip : [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + ip.prefix(4)
    }

    /// What a gateway answered.
    public enum Response: Sendable, Equatable {
        /// NAT-PMP's external address.
        case externalAddress(ip: [UInt8], epoch: UInt32)
        /// A mapping made, renewed or (lifetime 0) deleted, by NAT-PMP or PCP; PCP also tells the external address.
        case mapped(MappedProtocol, internalPort: UInt16, externalPort: UInt16, lifetime: UInt32, externalIP: [UInt8]?,
            nonce: [UInt8]?)
        /// A result code other than success.
        case refused(version: UInt8, opcode: UInt8, code: UInt8)
    }

    public enum DecodeError: Error, Equatable {
        case short(Int)
        case notAResponse
        case unknownVersion(UInt8)
    }

    /// Decodes a datagram from the gateway's port 5351.
    public static func decode(_ b: [UInt8]) throws(DecodeError) -> Response {
        guard b.count >= 4 else { throw .short(b.count) }
        switch b[0] {
        case 0:
            guard b[1] >= 128 else { throw .notAResponse }
            let op = b[1] - 128
            let code = UInt16(b[2]) << 8 | UInt16(b[3])
            guard code == 0 else { return .refused(version: 0, opcode: op, code: UInt8(clamping: code)) }
            switch op {
            case 0:
                guard b.count >= 12 else { throw .short(b.count) }
                return .externalAddress(ip: Array(b[8..<12]), epoch: b.be32(4))
            case 1, 2:
                guard b.count >= 16 else { throw .short(b.count) }
                return .mapped(op == 1 ? .udp : .tcp, internalPort: b.be16(8), externalPort: b.be16(10),
                    lifetime: b.be32(12), externalIP: nil, nonce: nil)
            default:
                throw .notAResponse
            }
        case 2:
            guard b[1] & 0x80 != 0 else { throw .notAResponse }
            let op = b[1] & 0x7F
            let code = b[3]
            guard code == 0 else { return .refused(version: 2, opcode: op, code: code) }
            guard op == 1 else { throw .notAResponse }
            guard b.count >= 60 else { throw .short(b.count) }
            let proto: MappedProtocol
            switch b[36] {
            case 6: proto = .tcp
            case 17: proto = .udp
            default: throw .notAResponse
            }
            var ip = Array(b[44..<60])
            if ip.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] { ip = Array(ip[12...]) }
            return .mapped(proto, internalPort: b.be16(40), externalPort: b.be16(42), lifetime: b.be32(4),
                externalIP: ip, nonce: Array(b[24..<36]))
        default:
            throw .unknownVersion(b[0])
        }
    }

    /// NAT-PMP's result codes (RFC 6886 §3.5) and PCP's (RFC 6887 §7.4), as a log line says them.
    public static func describe(version: UInt8, code: UInt8) -> String {
        let names: [UInt8: String] =
            version == 0
            ? [1: "unsupported version", 2: "not authorized or refused", 3: "network failure", 4: "out of resources",
               5: "unsupported opcode"]
            : [1: "unsupported version", 2: "not authorized", 3: "malformed request", 4: "unsupported opcode",
               5: "unsupported option", 6: "malformed option", 7: "network failure", 8: "no resources",
               9: "unsupported protocol", 10: "user quota exceeded", 11: "cannot provide external",
               12: "address mismatch", 13: "excessive remote peers"]
        return "\(version == 0 ? "NAT-PMP" : "PCP") result \(code) (\(names[code] ?? "unknown"))"
    }
}

extension Array where Element == UInt8 {
    mutating func appendBE(_ v: UInt16) { self += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func appendBE(_ v: UInt32) { self += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func be16(_ i: Int) -> UInt16 { UInt16(self[i]) << 8 | UInt16(self[i + 1]) }
    func be32(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}
