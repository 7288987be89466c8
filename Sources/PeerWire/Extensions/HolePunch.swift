// BEP 55: the holepunch extension (ut_holepunch).
import NIOCore

/// A ut_holepunch message: a rendezvous asked of a relay, the relay's connect to each side, or its error.
public struct HolePunchMessage: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        /// Initiator -> relay: send connect messages to me and to this endpoint.
        case rendezvous = 0
        /// Relay -> each side: open a uTP connection to this endpoint now.
        case connect = 1
        /// Relay -> initiator: the rendezvous cannot be done (`error`).
        case error = 2
    }

    /// BEP 55's error codes.
    public enum ErrorCode: UInt32, Sendable {
        case noSuchPeer = 1
        case notConnected = 2
        case noSupport = 3
        case noSelf = 4
    }

    /// The extension name in the `m` dictionary.
    public static let name = "ut_holepunch"

    public var kind: Kind
    /// The endpoint: the peer's address (4 or 16 bytes) and port.
    public var peer: PEXPeer
    /// The error's code (0 in other messages); codes BEP 55 does not list are kept as they came.
    public var errorCode: UInt32

    public init(_ kind: Kind, peer: PEXPeer, error: ErrorCode? = nil) {
        self.kind = kind
        self.peer = PEXPeer(ip: peer.ip, port: peer.port)
        self.errorCode = error?.rawValue ?? 0
    }

    public func encoded() -> ByteBuffer {
        var b = ByteBuffer()
        b.writeInteger(self.kind.rawValue)
        b.writeInteger(UInt8(self.peer.ip.count == 4 ? 0 : 1))
        b.writeBytes(self.peer.ip)
        b.writeInteger(self.peer.port)
        b.writeInteger(self.errorCode)
        return b
    }

    /// Parses a payload. The error code may be missing (libtorrent leaves it out of messages that are not
    /// errors, Transmission accepts 12- and 24-byte messages); bytes after it are ignored.
    public init(decoding payload: ByteBuffer) throws(PeerWireError) {
        var b = payload
        guard let type = b.readInteger(as: UInt8.self), let addrType = b.readInteger(as: UInt8.self) else {
            throw .badExtension("ut_holepunch message of \(payload.readableBytes) bytes")
        }
        guard let kind = Kind(rawValue: type) else { throw .badExtension("ut_holepunch message type \(type)") }
        let width: Int
        switch addrType {
        case 0: width = 4
        case 1: width = 16
        default: throw .badExtension("ut_holepunch address type \(addrType)")
        }
        guard let ip = b.readBytes(length: width), let port = b.readInteger(as: UInt16.self) else {
            throw .badExtension("ut_holepunch message of \(payload.readableBytes) bytes")
        }
        self.kind = kind
        self.peer = PEXPeer(ip: ip, port: port)
        self.errorCode = b.readInteger(as: UInt32.self) ?? 0
    }
}
