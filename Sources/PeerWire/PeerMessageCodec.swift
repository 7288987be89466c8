import Metainfo
import NIOCore

/// Frames and parses peer wire messages (`<length:u32><id:u8><payload>`).
///
/// The decoder refuses a length over `maxMessageLength` as soon as the 4-byte prefix is in, before it buffers
/// the body, and checks each fixed-size message's payload length. Use it the NIO way: append received bytes to
/// one `ByteBuffer`, then call `decode` until it returns nil.
public struct PeerMessageDecoder: Sendable {
    public var maxMessageLength: Int

    public init(maxMessageLength: Int) { self.maxMessageLength = maxMessageLength }

    /// Decodes the next complete message.
    /// - Returns: nil when more bytes are needed (nothing is consumed then).
    public func decode(_ buffer: inout ByteBuffer) throws(PeerWireError) -> PeerMessage? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= UInt32(self.maxMessageLength) else {
            throw .messageTooLong(length: length, limit: self.maxMessageLength)
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        if length == 0 { return .keepAlive }
        var body = buffer.readSlice(length: Int(length))!
        let rawID = body.readInteger(as: UInt8.self)!
        return try Self.parse(id: rawID, payload: &body)
    }

    private static func parse(id rawID: UInt8, payload: inout ByteBuffer) throws(PeerWireError) -> PeerMessage {
        guard let id = MessageID(rawValue: rawID) else { return .unknown(id: rawID, payload: payload) }
        let n = payload.readableBytes
        func need(_ expected: Int) throws(PeerWireError) {
            guard n == expected else { throw .badLength(id: rawID, length: n, expected: "\(expected)") }
        }
        switch id {
        case .choke: try need(0); return .choke
        case .unchoke: try need(0); return .unchoke
        case .interested: try need(0); return .interested
        case .notInterested: try need(0); return .notInterested
        case .haveAll: try need(0); return .haveAll
        case .haveNone: try need(0); return .haveNone
        case .have: try need(4); return .have(piece: payload.readInteger()!)
        case .suggest: try need(4); return .suggest(piece: payload.readInteger()!)
        case .allowedFast: try need(4); return .allowedFast(piece: payload.readInteger()!)
        case .port: try need(2); return .port(payload.readInteger()!)
        case .bitfield: return .bitfield(payload)
        case .request, .cancel, .reject:
            try need(12)
            let block = BlockRef(piece: payload.readInteger()!, offset: payload.readInteger()!,
                length: payload.readInteger()!)
            if id != .reject && block.length > UInt32(WireLimits.maxRequestLength) {
                throw .requestTooLong(length: block.length)
            }
            switch id {
            case .request: return .request(block)
            case .cancel: return .cancel(block)
            default: return .reject(block)
            }
        case .piece:
            guard n >= 8 else { throw .badLength(id: rawID, length: n, expected: "at least 8") }
            let piece: UInt32 = payload.readInteger()!
            let offset: UInt32 = payload.readInteger()!
            return .piece(piece: piece, offset: offset, data: payload)
        case .extended:
            guard n >= 1 else { throw .badLength(id: rawID, length: n, expected: "at least 1") }
            let ext: UInt8 = payload.readInteger()!
            return .extended(id: ext, payload: payload)
        case .hashRequest, .hashReject:
            try need(48)
            let r = Self.readHashRequest(&payload)
            return id == .hashRequest ? .hashRequest(r) : .hashReject(r)
        case .hashes:
            guard n >= 48, (n - 48) % 32 == 0 else {
                throw .badLength(id: rawID, length: n, expected: "48 plus a multiple of 32")
            }
            let r = Self.readHashRequest(&payload)
            return .hashes(r, hashes: payload)
        }
    }

    private static func readHashRequest(_ p: inout ByteBuffer) -> HashRequest {
        HashRequest(piecesRoot: p.readBytes(length: 32)!, baseLayer: p.readInteger()!, index: p.readInteger()!,
            length: p.readInteger()!, proofLayers: p.readInteger()!)
    }
}

/// Writes peer wire messages.
public enum PeerMessageEncoder {
    /// Appends the 13 bytes that precede a piece message's payload of `length` bytes.
    public static func encodePieceHeader(piece: UInt32, offset: UInt32, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(9 + length))
        buffer.writeInteger(MessageID.piece.rawValue)
        buffer.writeInteger(piece)
        buffer.writeInteger(offset)
    }

    /// Appends `message`, framed, to `buffer`.
    public static func encode(_ message: PeerMessage, into buffer: inout ByteBuffer) {
        func header(_ id: MessageID, _ payload: Int) {
            buffer.writeInteger(UInt32(1 + payload))
            buffer.writeInteger(id.rawValue)
        }
        func block(_ id: MessageID, _ b: BlockRef) {
            header(id, 12)
            buffer.writeInteger(b.piece)
            buffer.writeInteger(b.offset)
            buffer.writeInteger(b.length)
        }
        func hashHeader(_ r: HashRequest) {
            buffer.writeBytes(r.piecesRoot)
            buffer.writeInteger(r.baseLayer)
            buffer.writeInteger(r.index)
            buffer.writeInteger(r.length)
            buffer.writeInteger(r.proofLayers)
        }
        switch message {
        case .keepAlive: buffer.writeInteger(UInt32(0))
        case .choke: header(.choke, 0)
        case .unchoke: header(.unchoke, 0)
        case .interested: header(.interested, 0)
        case .notInterested: header(.notInterested, 0)
        case .haveAll: header(.haveAll, 0)
        case .haveNone: header(.haveNone, 0)
        case .have(let p):
            header(.have, 4)
            buffer.writeInteger(p)
        case .suggest(let p):
            header(.suggest, 4)
            buffer.writeInteger(p)
        case .allowedFast(let p):
            header(.allowedFast, 4)
            buffer.writeInteger(p)
        case .port(let port):
            header(.port, 2)
            buffer.writeInteger(port)
        case .bitfield(var bits):
            header(.bitfield, bits.readableBytes)
            buffer.writeBuffer(&bits)
        case .request(let b): block(.request, b)
        case .cancel(let b): block(.cancel, b)
        case .reject(let b): block(.reject, b)
        case .piece(let p, let o, var data):
            Self.encodePieceHeader(piece: p, offset: o, length: data.readableBytes, into: &buffer)
            buffer.writeBuffer(&data)
        case .extended(let id, var payload):
            header(.extended, 1 + payload.readableBytes)
            buffer.writeInteger(id)
            buffer.writeBuffer(&payload)
        case .hashRequest(let r):
            header(.hashRequest, 48)
            hashHeader(r)
        case .hashReject(let r):
            header(.hashReject, 48)
            hashHeader(r)
        case .hashes(let r, var hashes):
            header(.hashes, 48 + hashes.readableBytes)
            hashHeader(r)
            buffer.writeBuffer(&hashes)
        case .unknown(let id, var payload):
            buffer.writeInteger(UInt32(1 + payload.readableBytes))
            buffer.writeInteger(id)
            buffer.writeBuffer(&payload)
        }
    }
}
