import PeerBase
import NIOCore
import Testing

@testable import PeerWire

@Suite("Handshake and extensions")
struct HandshakeTests {
    let id = PeerID(Array("-PE0100-abcdefghijkl".utf8))
    let hash = [UInt8](repeating: 0x11, count: 20)

    @Test("the handshake's bytes are where BEP 3 puts them")
    func layout() throws {
        var b = ByteBuffer()
        Handshake(reserved: [.extensionProtocol, .fast, .dht], infoHash: self.hash, peerID: self.id).encode(into: &b)
        let raw = Array(b.readableBytesView)
        #expect(raw.count == 68)
        #expect(raw[0] == 19 && Array(raw[1..<20]) == Array("BitTorrent protocol".utf8))
        #expect(Array(raw[20..<28]) == [0, 0, 0, 0, 0, 0x10, 0, 0x05])
        #expect(Array(raw[28..<48]) == self.hash && Array(raw[48..<68]) == self.id.bytes)
        let back = try #require(try Handshake.decode(&b))
        #expect(back.reserved == [.extensionProtocol, .fast, .dht] && back.infoHash == self.hash && back.peerID == self.id)
    }

    @Test("a stranger's protocol is refused at its first byte")
    func notBitTorrent() throws {
        var b = ByteBuffer(bytes: Array("GET / HTTP/1.1\r\n".utf8))
        #expect(throws: PeerWireError.self) { try Handshake.decode(&b) }
        var partial = ByteBuffer(bytes: [19] + Array("BitTorrent".utf8))
        #expect(try Handshake.decode(&partial) == nil)
    }

    @Test("peer ids from a seeded generator are reproducible and Azureus-style")
    func peerID() {
        var a = SeededGenerator(seed: 1)
        var b = SeededGenerator(seed: 1)
        let x = PeerID.random(using: &a)
        #expect(x == PeerID.random(using: &b))
        #expect(x.description.hasPrefix("-PE0100-"))
    }

    @Test("extended handshake round trip and tolerance of odd values")
    func extendedHandshake() throws {
        let ext = ExtendedHandshake(extensions: ["ut_metadata": 2, "ut_pex": 1], client: "Peer 0.1", listenPort: 6881,
            requestQueue: 500, yourIP: [127, 0, 0, 1], metadataSize: 31_337)
        #expect(try ExtendedHandshake(decoding: ext.encoded()) == ext)
        let odd = ByteBuffer(bytes: Array("d1:md11:ut_metadatai3e6:ut_pex3:bade1:pi0e4:reqqi-5e13:metadata_sizei99999999999ee".utf8))
        let parsed = try ExtendedHandshake(decoding: odd)
        #expect(parsed.extensions == ["ut_metadata": 3])
        #expect(parsed.listenPort == nil && parsed.requestQueue == nil && parsed.metadataSize == nil)
        #expect(throws: PeerWireError.self) { try ExtendedHandshake(decoding: ByteBuffer(bytes: Array("li1ee".utf8))) }
        #expect(throws: PeerWireError.self) { try ExtendedHandshake(decoding: ByteBuffer(bytes: Array("d1:m".utf8))) }
    }

    @Test("ut_metadata messages round trip; bad ones are violations")
    func utMetadata() throws {
        let data = ByteBuffer(bytes: Array(repeating: 7, count: 1000))
        for m in [UTMetadataMessage.request(piece: 2), .reject(piece: 0), .data(piece: 1, totalSize: 17_384, bytes: data)] {
            #expect(try UTMetadataMessage(decoding: m.encoded()) == m)
        }
        let bad = [
            "d8:msg_typei0ee", "d8:msg_typei7e5:piecei0ee", "d8:msg_typei1e5:piecei0ee",
            "d8:msg_typei0e5:piecei-1ee", "d8:msg_typei1e5:piecei0e10:total_sizei99999999999ee",
        ]
        for text in bad {
            #expect(throws: PeerWireError.self) { try UTMetadataMessage(decoding: ByteBuffer(bytes: Array(text.utf8))) }
        }
        let tooBig = UTMetadataMessage.data(piece: 0, totalSize: 40_000,
            bytes: ByteBuffer(bytes: Array(repeating: 0, count: 16_385)))
        #expect(throws: PeerWireError.self) { try UTMetadataMessage(decoding: tooBig.encoded()) }
    }

    @Test("metadata is assembled from pieces of the right sizes only")
    func assembler() throws {
        var a = try MetadataAssembler(totalSize: 16_384 + 100)
        #expect(a.pieceCount == 2 && a.missing == [0, 1])
        #expect(throws: PeerWireError.self) { try a.add(piece: 1, bytes: Array(repeating: 0, count: 99)) }
        #expect(throws: PeerWireError.self) { try a.add(piece: 2, bytes: []) }
        try a.add(piece: 1, bytes: Array(repeating: 2, count: 100))
        #expect(a.assembled == nil && a.missing == [0])
        try a.add(piece: 0, bytes: Array(repeating: 1, count: 16_384))
        #expect(a.assembled == Array(repeating: 1, count: 16_384) + Array(repeating: 2, count: 100))
        #expect(throws: PeerWireError.self) { try MetadataAssembler(totalSize: 0) }
        #expect(throws: PeerWireError.self) { try MetadataAssembler(totalSize: 64 << 20) }
    }
}
