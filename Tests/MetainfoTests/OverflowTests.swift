import Bencode
import Metainfo
import Testing

/// Lengths a torrent declares must not trap the parser, whatever their sum: a .torrent comes from
/// the network and must be refused with an error, not crash the process. Each runs in a child process.
@Suite("Huge declared lengths")
struct OverflowTests {
    /// A single-file v1 torrent whose `length` is Int64.max: `(total + pieceLength - 1)` in
    /// `TorrentMetainfo.parse` overflows (the multi-file path caps lengths at 2^50, this one does not).
    @Test("a single file of Int64.max bytes is refused, not a crash")
    func singleFileMaxLength() async {
        await #expect(processExitsWith: .success) {
            let info: BencodeValue = [
                "name": "a", "piece length": 16384, "length": .integer(.max),
                "pieces": .string([UInt8](repeating: 0, count: 20)),
            ]
            let bytes = (["info": info] as BencodeValue).encoded
            if (try? TorrentMetainfo(bytes: bytes)) != nil { fatalError("accepted a torrent of Int64.max bytes") }
        }
    }

    /// 8 192 v1 files of 2^50 bytes each: each is within the per-file cap, but their sum (2^63)
    /// overflows the running offset in `parseV1Files`.
    @Test("v1 files whose lengths sum past Int64.max are refused, not a crash")
    func v1FilesSumOverflow() async {
        await #expect(processExitsWith: .success) {
            let file: BencodeValue = ["length": .integer(1 << 50), "path": ["f"]]
            let files = (0..<8192).map { i in file.setting(["path"], to: [.text("f\(i)")]) }
            let info: BencodeValue = [
                "name": "a", "piece length": 16384, "files": .list(files),
                "pieces": .string([UInt8](repeating: 0, count: 20)),
            ]
            let bytes = (["info": info] as BencodeValue).encoded
            if (try? TorrentMetainfo(bytes: bytes)) != nil { fatalError("accepted 2^63 bytes of files") }
        }
    }

    /// The same with a v2 file tree: the piece-aligned offsets overflow in the file-tree loop.
    @Test("v2 files whose lengths sum past Int64.max are refused, not a crash")
    func v2FilesSumOverflow() async {
        await #expect(processExitsWith: .success) {
            var tree = BencodeDictionary()
            for i in 0..<8192 {
                tree["f\(i)"] = [
                    "": ["length": .integer(1 << 50), "pieces root": .string([UInt8](repeating: 1, count: 32))]
                ]
            }
            let info: BencodeValue = [
                "name": "a", "piece length": 16384, "meta version": 2, "file tree": .dictionary(tree),
            ]
            let bytes = (["info": info] as BencodeValue).encoded
            if (try? TorrentMetainfo(bytes: bytes)) != nil { fatalError("accepted 2^63 bytes of files") }
        }
    }

    @Test("just under the limits, huge lengths are refused with an error")
    func underTheLimits() {
        // 8 191 files of 2^50 bytes fit in Int64 but exceed the 2^56-byte torrent limit.
        let file: BencodeValue = ["length": .integer(1 << 50), "path": ["f"]]
        let files = (0..<8191).map { i in file.setting(["path"], to: [.text("f\(i)")]) }
        let info: BencodeValue = [
            "name": "a", "piece length": 16384, "files": .list(files),
            "pieces": .string([UInt8](repeating: 0, count: 20)),
        ]
        guard case .invalid(let message, _)? = loadError(torrent(info)) else {
            Issue.record("expected a size error")
            return
        }
        #expect(message.contains("add up to more than"), "\(message)")
        // A single file of 2^62 bytes: past the 2^50-byte file limit.
        let big = v1Info.setting(["length"], to: .integer(1 << 62))
        guard case .invalid(let m2, _)? = loadError(torrent(big)) else {
            Issue.record("expected a size error")
            return
        }
        #expect(m2.contains("out of range"), "\(m2)")
    }
}
