import Metainfo
import NIOCore

/// A BEP 52 hash request (and the header of 'hashes' and 'hash reject').
public struct HashRequest: Hashable, Sendable {
    /// The file's pieces root (32 bytes).
    public var piecesRoot: [UInt8]
    public var baseLayer: UInt32
    public var index: UInt32
    public var length: UInt32
    public var proofLayers: UInt32

    public init(piecesRoot: [UInt8], baseLayer: UInt32, index: UInt32, length: UInt32, proofLayers: UInt32) {
        precondition(piecesRoot.count == 32)
        self.piecesRoot = piecesRoot
        self.baseLayer = baseLayer
        self.index = index
        self.length = length
        self.proofLayers = proofLayers
    }
}

/// The message ids (BEP 3, 5, 6, 10, 52).
public enum MessageID: UInt8, Sendable, CustomStringConvertible {
    case choke = 0, unchoke = 1, interested = 2, notInterested = 3, have = 4, bitfield = 5, request = 6
    case piece = 7, cancel = 8, port = 9
    case suggest = 13, haveAll = 14, haveNone = 15, reject = 16, allowedFast = 17
    case extended = 20
    case hashRequest = 21, hashes = 22, hashReject = 23

    public var description: String {
        switch self {
        case .choke: "choke"
        case .unchoke: "unchoke"
        case .interested: "interested"
        case .notInterested: "not interested"
        case .have: "have"
        case .bitfield: "bitfield"
        case .request: "request"
        case .piece: "piece"
        case .cancel: "cancel"
        case .port: "port"
        case .suggest: "suggest piece"
        case .haveAll: "have all"
        case .haveNone: "have none"
        case .reject: "reject request"
        case .allowedFast: "allowed fast"
        case .extended: "extended"
        case .hashRequest: "hash request"
        case .hashes: "hashes"
        case .hashReject: "hash reject"
        }
    }
}

/// One peer wire message after the handshake.
public enum PeerMessage: Equatable, Sendable {
    case keepAlive
    case choke
    case unchoke
    case interested
    case notInterested
    case have(piece: UInt32)
    /// Raw bitfield bytes, high bit first; its size is checked against the torrent by the session.
    case bitfield(ByteBuffer)
    case request(BlockRef)
    /// A block of data; `data` is a slice of the receive buffer (no copy).
    case piece(piece: UInt32, offset: UInt32, data: ByteBuffer)
    case cancel(BlockRef)
    /// BEP 5: the peer's DHT port.
    case port(UInt16)
    // BEP 6
    case suggest(piece: UInt32)
    case haveAll
    case haveNone
    case reject(BlockRef)
    case allowedFast(piece: UInt32)
    /// BEP 10: `id` 0 is the extended handshake, others are the ids this side assigned in its `m` dictionary.
    case extended(id: UInt8, payload: ByteBuffer)
    // BEP 52
    case hashRequest(HashRequest)
    case hashes(HashRequest, hashes: ByteBuffer)
    case hashReject(HashRequest)
    /// A message id this side does not know: ignored, as BEP 3 asks.
    case unknown(id: UInt8, payload: ByteBuffer)
}
