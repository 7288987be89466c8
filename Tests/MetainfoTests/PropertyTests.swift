import PeerBase
import Bencode
import Metainfo
import PropertyBased
import Testing

@Suite("Metainfo properties")
struct MetainfoPropertyTests {
    @Test("generated torrents build, parse back and round-trip byte for byte")
    func generatedTorrents() async {
        await propertyCheck(
            count: 40, input: Gen<Int>.value(in: 0...70_000).array(of: 1...4), Gen<Int>.value(in: 14...16),
            Gen<TorrentVersion>.case, Gen<Bool>.bool
        ) { lengths, log2, version, nested in
            failOnThrow {
                // At least one byte somewhere.
                let lengths = lengths.allSatisfy { $0 == 0 } ? lengths + [1] : lengths
                let pl = 1 << log2
                // Names in byte-wise order so that v1 order and file-tree order agree (a hybrid needs it).
                let files = lengths.enumerated().map { i, n in
                    MemFile(
                        nested && i % 2 == 1 ? ["f\(i)", "x"] : ["f\(i)"], SeededGenerator.bytes(n, seed: UInt64(i + n)))
                }
                let built = buildTorrent(name: "gen", pieceLength: pl, version: version, files: files, multiFile: true)
                let t = try TorrentMetainfo(bytes: built.bytes)
                #expect(t.version == version)
                #expect(t.warnings.isEmpty)
                #expect(BencodeEncoder.encode(try BencodeDecoder().decodeValue(built.bytes)) == built.bytes)
                let real = t.files.filter { !$0.isPadding }
                #expect(real.map(\.path) == files.map { ["gen"] + $0.path })
                #expect(t.totalLength == Int64(lengths.reduce(0, +)))
                if version != .v2 {
                    #expect(t.pieceHashesV1 == Reference.v1Pieces(built.stream, pieceLength: pl))
                    #expect(t.infoHashes.v1?.bytes == Reference.sha1(t.infoBytes))
                }
                if version != .v1 {
                    #expect(t.infoHashes.v2?.bytes == Reference.sha256(t.infoBytes))
                    for f in files where !f.data.isEmpty {
                        let root = Reference.fileRoot(f.data)
                        #expect(real.first { Array($0.path.dropFirst()) == f.path }?.piecesRoot == root)
                        if f.data.count > pl {
                            #expect(t.pieceLayers[root] == Reference.pieceLayer(f.data, pieceLength: pl))
                        }
                    }
                    #expect(real.allSatisfy { $0.length == 0 || $0.offset % Int64(pl) == 0 })
                }
            }
        }
    }

    @Test("random mutations of a valid torrent never crash the parser")
    func mutations() async {
        let built = buildTorrent(
            name: "m", pieceLength: 16384, version: .hybrid,
            files: [
                MemFile("a", length: 20000, seed: 1), MemFile("b/c", length: 40000, seed: 2), MemFile("d", length: 0),
            ])
        let original = built.bytes
        await propertyCheck(
            count: 400, input: Gen<Int>.value(in: 0...Int.max), Gen<UInt8>.value(in: 0...255), Gen<Int>.value(in: 0...2)
        ) { position, byte, kind in
            var mutated = original
            let i = position % mutated.count
            switch kind {
            case 0: mutated[i] = byte
            case 1: mutated.removeSubrange(i...)
            default: mutated.insert(byte, at: i)
            }
            if let t = try? TorrentMetainfo(bytes: mutated) {
                #expect(t.files.contains { !$0.isPadding && $0.length > 0 })
                #expect(t.infoHashes.v1 != nil || t.infoHashes.v2 != nil)
            } else {
                #expect(loadError(mutated) != nil)
            }
        }
    }
}
