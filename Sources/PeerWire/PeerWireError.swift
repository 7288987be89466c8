/// A peer's protocol violation: the connection is to be dropped with this reason logged.
public enum PeerWireError: Error, Equatable, Sendable, CustomStringConvertible {
    case badHandshake(String)
    /// The handshake carried our own peer id: the address dialled is this node (a tracker or the DHT names
    /// every node to itself too).
    case connectedToSelf
    /// The peer's handshake named a torrent this side is not serving.
    case wrongInfoHash
    /// A message longer than the limit (checked before anything is buffered for it).
    case messageTooLong(length: UInt32, limit: Int)
    /// A message whose payload has the wrong size for its id.
    case badLength(id: UInt8, length: Int, expected: String)
    /// A request for more than 16 KiB.
    case requestTooLong(length: UInt32)
    /// An index outside the torrent or a bitfield of the wrong size.
    case outOfRange(String)
    /// A malformed extension message (BEP 10, BEP 9).
    case badExtension(String)
    /// A message that is not allowed in the current state (e.g. a second bitfield).
    case unexpected(String)
    /// Nothing heard from the peer for too long.
    case timeout

    public var description: String {
        switch self {
        case .badHandshake(let why): "bad handshake: \(why)"
        case .connectedToSelf: "connected to ourselves"
        case .wrongInfoHash: "the peer asked for a torrent we do not have"
        case .messageTooLong(let n, let limit): "message of \(n) bytes is over the limit of \(limit)"
        case .badLength(let id, let n, let expected): "message \(id) has \(n) payload bytes, expected \(expected)"
        case .requestTooLong(let n): "request for \(n) bytes (the limit is 16 KiB)"
        case .outOfRange(let what): "out of range: \(what)"
        case .badExtension(let why): "bad extension message: \(why)"
        case .unexpected(let what): "unexpected message: \(what)"
        case .timeout: "the peer went silent"
        }
    }
}
