// BEP 9: ut_metadata, fetching the info dictionary from peers.
import Bencode
import NIOCore

/// A ut_metadata message: `{msg_type, piece[, total_size]}` followed, for data, by the piece's bytes.
public enum UTMetadataMessage: Equatable, Sendable {
    case request(piece: Int)
    case data(piece: Int, totalSize: Int, bytes: ByteBuffer)
    case reject(piece: Int)

    /// The extension name in the `m` dictionary.
    public static let name = "ut_metadata"

    /// Parses a ut_metadata payload (after the extended message id).
    public init(decoding payload: ByteBuffer) throws(PeerWireError) {
        let bytes = Array(payload.readableBytesView)
        let header: BencodeNode
        let end: Int
        do { (header, end) = try BencodeDecoder(limits: .message).decodePrefix(bytes) } catch {
            throw .badExtension("ut_metadata: \(error)")
        }
        let d = header.value
        guard let type = d["msg_type"]?.integer, let piece = d["piece"]?.integer else {
            throw .badExtension("ut_metadata: missing msg_type or piece")
        }
        let maxPieces = WireLimits.maxMetadataSize / WireLimits.metadataPieceSize
        guard piece >= 0 && piece < Int64(maxPieces) else { throw .badExtension("ut_metadata: piece \(piece)") }
        switch type {
        case 0: self = .request(piece: Int(piece))
        case 2: self = .reject(piece: Int(piece))
        case 1:
            guard let total = d["total_size"]?.integer, total > 0, total <= Int64(WireLimits.maxMetadataSize) else {
                throw .badExtension("ut_metadata: data without a valid total_size")
            }
            let data = payload.getSlice(at: payload.readerIndex + end, length: bytes.count - end)!
            guard data.readableBytes <= WireLimits.metadataPieceSize else {
                throw .badExtension("ut_metadata: a piece of \(data.readableBytes) bytes")
            }
            self = .data(piece: Int(piece), totalSize: Int(total), bytes: data)
        default:
            throw .badExtension("ut_metadata: unknown msg_type \(type)")
        }
    }

    /// The payload to send (after the extended message id).
    public func encoded() -> ByteBuffer {
        switch self {
        case .request(let p):
            return ByteBuffer(bytes: BencodeEncoder.encode(["msg_type": 0, "piece": .integer(Int64(p))]))
        case .reject(let p):
            return ByteBuffer(bytes: BencodeEncoder.encode(["msg_type": 2, "piece": .integer(Int64(p))]))
        case .data(let p, let total, var bytes):
            var out = ByteBuffer(bytes: BencodeEncoder.encode([
                "msg_type": 1, "piece": .integer(Int64(p)), "total_size": .integer(Int64(total)),
            ]))
            out.writeBuffer(&bytes)
            return out
        }
    }
}

/// Collects an info dictionary from ut_metadata pieces and checks it against the info-hash.
public struct MetadataAssembler: Sendable {
    public let totalSize: Int
    private var pieces: [[UInt8]?]

    /// - Throws: when `totalSize` is out of range.
    public init(totalSize: Int) throws(PeerWireError) {
        guard totalSize > 0 && totalSize <= WireLimits.maxMetadataSize else {
            throw .badExtension("metadata size \(totalSize) is out of range")
        }
        self.totalSize = totalSize
        self.pieces = Array(repeating: nil, count: (totalSize + WireLimits.metadataPieceSize - 1) / WireLimits.metadataPieceSize)
    }

    public var pieceCount: Int { self.pieces.count }
    /// Pieces still missing, lowest first.
    public var missing: [Int] { self.pieces.indices.filter { self.pieces[$0] == nil } }

    /// Stores one piece; every piece but the last must be 16 KiB, the last the remainder.
    public mutating func add(piece: Int, bytes: [UInt8]) throws(PeerWireError) {
        guard piece >= 0 && piece < self.pieces.count else { throw .badExtension("metadata piece \(piece) out of range") }
        let expected = piece == self.pieces.count - 1
            ? self.totalSize - piece * WireLimits.metadataPieceSize : WireLimits.metadataPieceSize
        guard bytes.count == expected else {
            throw .badExtension("metadata piece \(piece) has \(bytes.count) bytes, expected \(expected)")
        }
        self.pieces[piece] = bytes
    }

    /// The whole info dictionary once every piece is in, else nil. The caller checks its hash.
    public var assembled: [UInt8]? {
        guard self.pieces.allSatisfy({ $0 != nil }) else { return nil }
        return self.pieces.flatMap { $0! }
    }
}
