import Bencode
import DHT
import PeerBase
import Testing

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// An instant `seconds` after the epoch.
func at(_ seconds: Double) -> Instant { Instant(offset: .milliseconds(Int64((seconds * 1000).rounded()))) }

/// An ID from 20 bytes of text (the BEP 5 examples use "abcdefghij0123456789").
func id(_ text: String) -> NodeID { NodeID(bytes: Array(text.utf8))! }

/// An ID from 40 hex digits.
func hexID(_ text: String) -> NodeID { NodeID(hex: text)! }

/// An ID whose first byte is `first` and the rest zero.
func idStarting(_ first: UInt8, _ second: UInt8 = 0) -> NodeID {
    NodeID(bytes: [first, second] + [UInt8](repeating: 0, count: 18))!
}

/// An IPv4 endpoint.
func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16 = 6881) -> DHTEndpoint {
    DHTEndpoint(ip: .ipv4(a, b, c, d), port: port)
}

/// An IPv6 endpoint 2001:db8::n.
func v6(_ n: UInt16, port: UInt16 = 6881) -> DHTEndpoint {
    DHTEndpoint(ip: .v6(high: 0x2001_0db8_0000_0000, low: UInt64(n)), port: port)
}

/// Decodes `input`, returning the error it throws (nil when it decodes).
func decodeError(_ input: [UInt8], limits: KRPCLimits = .default) -> DHTError? {
    do {
        _ = try KRPCMessage.decode(input, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// Bytes from hexadecimal (whitespace ignored).
func hexBytes(_ text: String) -> [UInt8] { Hex.decode(text.filter { !$0.isWhitespace })! }

extension KRPCMessage {
    var query: KRPCQuery? { if case .query(let q) = self.kind { q } else { nil } }
    var response: KRPCResponse? { if case .response(let r) = self.kind { r } else { nil } }
    var errorCode: Int? { if case .error(let code, _) = self.kind { code } else { nil } }
}
