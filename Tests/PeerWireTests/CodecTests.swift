import Metainfo
import PeerBase
import NIOCore
import Testing

@testable import PeerWire

private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }
private func bytes(_ b: ByteBuffer) -> [UInt8] { Array(b.readableBytesView) }

/// Every message kind, with payloads that exercise each field.
let sampleMessages: [PeerMessage] = [
    .keepAlive, .choke, .unchoke, .interested, .notInterested, .have(piece: 0x0102_0304),
    .bitfield(buffer([0b1010_0000, 0xff])), .request(BlockRef(piece: 7, offset: 16384, length: 16384)),
    .piece(piece: 3, offset: 32768, data: buffer(Array(repeating: 0xab, count: 100))),
    .cancel(BlockRef(piece: 1, offset: 0, length: 100)), .port(6881), .suggest(piece: 9), .haveAll, .haveNone,
    .reject(BlockRef(piece: 2, offset: 16384, length: 16384)), .allowedFast(piece: 5),
    .extended(id: 3, payload: buffer(Array("d1:ai1ee".utf8))),
    .hashRequest(HashRequest(piecesRoot: Array(repeating: 1, count: 32), baseLayer: 0, index: 4, length: 4,
        proofLayers: 2)),
    .hashes(HashRequest(piecesRoot: Array(repeating: 2, count: 32), baseLayer: 0, index: 0, length: 2,
        proofLayers: 0), hashes: buffer(Array(repeating: 9, count: 64))),
    .hashReject(HashRequest(piecesRoot: Array(repeating: 3, count: 32), baseLayer: 1, index: 2, length: 2,
        proofLayers: 0)),
    .unknown(id: 99, payload: buffer([1, 2, 3])),
]

@Suite("Peer message codec")
struct CodecTests {
    let decoder = PeerMessageDecoder(maxMessageLength: WireLimits.maxMessageLength(pieceCount: 1000))

    @Test("each message survives encode then decode", arguments: sampleMessages.indices)
    func roundTrip(_ i: Int) throws {
        var out = ByteBuffer()
        PeerMessageEncoder.encode(sampleMessages[i], into: &out)
        let decoded = try self.decoder.decode(&out)
        #expect(decoded == sampleMessages[i])
        #expect(out.readableBytes == 0)
    }

    @Test("known encodings, byte for byte")
    func vectors() {
        func enc(_ m: PeerMessage) -> [UInt8] {
            var b = ByteBuffer()
            PeerMessageEncoder.encode(m, into: &b)
            return bytes(b)
        }
        #expect(enc(.keepAlive) == [0, 0, 0, 0])
        #expect(enc(.interested) == [0, 0, 0, 1, 2])
        #expect(enc(.have(piece: 258)) == [0, 0, 0, 5, 4, 0, 0, 1, 2])
        #expect(enc(.request(BlockRef(piece: 1, offset: 2, length: 3))) == [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
        #expect(enc(.haveAll) == [0, 0, 0, 1, 14])
        #expect(enc(.port(0x1ae1)) == [0, 0, 0, 3, 9, 0x1a, 0xe1])
    }

    /// The decoder verifier (NIO's idea): all messages at once, one byte at a time and in random splits
    /// give the same messages.
    @Test("byte at a time, all at once and random splits agree")
    func verifier() throws {
        var all = ByteBuffer()
        for m in sampleMessages { PeerMessageEncoder.encode(m, into: &all) }
        let stream = bytes(all)

        func run(_ chunks: [[UInt8]]) throws -> [PeerMessage] {
            var inbound = ByteBuffer()
            var out: [PeerMessage] = []
            for c in chunks {
                inbound.writeBytes(c)
                while let m = try self.decoder.decode(&inbound) { out.append(m) }
            }
            #expect(inbound.readableBytes == 0)
            return out
        }
        #expect(try run([stream]) == sampleMessages)
        #expect(try run(stream.map { [$0] }) == sampleMessages)
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<20 {
            var chunks: [[UInt8]] = []
            var i = 0
            while i < stream.count {
                let n = Int(rng.next() % 40) + 1
                chunks.append(Array(stream[i..<min(stream.count, i + n)]))
                i += n
            }
            #expect(try run(chunks) == sampleMessages)
        }
    }

    @Test("an oversized length is refused from its 4-byte prefix alone")
    func oversized() {
        var b = buffer([0x7f, 0xff, 0xff, 0xff])
        #expect(throws: PeerWireError.messageTooLong(length: 0x7fff_ffff, limit: self.decoder.maxMessageLength)) {
            try self.decoder.decode(&b)
        }
    }

    @Test("partial input waits and consumes nothing")
    func partial() throws {
        var b = buffer([0, 0, 0, 5, 4, 0, 0])
        #expect(try self.decoder.decode(&b) == nil)
        #expect(b.readableBytes == 7)
    }

    @Test(
        "fixed-size messages with the wrong payload size are violations",
        arguments: [
            [0, 0, 0, 4, 4, 0, 0, 1] as [UInt8],  // have with 3 bytes
            [0, 0, 0, 2, 0, 0],  // choke with a payload
            [0, 0, 0, 12, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0],  // request with 11 bytes
            [0, 0, 0, 5, 7, 0, 0, 0, 1],  // piece without an offset
            [0, 0, 0, 1, 20],  // extended without an id
            [0, 0, 0, 50, 22] + Array(repeating: 0, count: 49),  // hashes: 48 + 1 byte
        ])
    func badLengths(_ input: [UInt8]) {
        var b = buffer(input)
        #expect(throws: PeerWireError.self) { try self.decoder.decode(&b) }
    }

    @Test("a request for more than 16 KiB is refused")
    func bigRequest() {
        var b = ByteBuffer()
        PeerMessageEncoder.encode(.request(BlockRef(piece: 0, offset: 0, length: 16385)), into: &b)
        #expect(throws: PeerWireError.requestTooLong(length: 16385)) { try self.decoder.decode(&b) }
    }
}

