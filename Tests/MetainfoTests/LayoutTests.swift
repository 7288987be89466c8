import Metainfo
import PropertyBased
import Testing

@Suite("FileLayout")
struct LayoutTests {
    /// "path length@offset source" for each entry ("pad" for padding files, which must have no source).
    func describe(_ plan: [FileLayout.Entry]) -> [String] {
        plan.map { e in
            "\(e.path.joined(separator: "/")) \(e.length)@\(e.offset) \(e.isPadding ? "pad" : "")\(e.source.map(String.init) ?? "")"
        }
    }

    @Test("hybrid pads every non-empty file not ending on a piece boundary, the last one included")
    func hybridPadding() {
        let files: [(path: [String], length: Int64)] = [(["a"], 1000), (["b"], 0), (["c"], 16384), (["d"], 5)]
        let plan = FileLayout.plan(files: files, pieceLength: 16384, version: .hybrid)
        #expect(
            self.describe(plan) == [
                "a 1000@0 0", ".pad/15384 15384@1000 pad", "b 0@16384 1", "c 16384@16384 2", "d 5@32768 3",
                ".pad/16379 16379@32773 pad",
            ])
        // v2 lays files out the same way in piece space.
        #expect(FileLayout.plan(files: files, pieceLength: 16384, version: .v2) == plan)
    }

    @Test("v1 is never padded")
    func v1NotPadded() {
        let files: [(path: [String], length: Int64)] = [(["a"], 1000), (["b"], 0), (["c"], 16384), (["d"], 5)]
        let plan = FileLayout.plan(files: files, pieceLength: 16384, version: .v1)
        #expect(self.describe(plan) == ["a 1000@0 0", "b 0@1000 1", "c 16384@1000 2", "d 5@17384 3"])
    }

    @Test("a single file is never padded", arguments: TorrentVersion.allCases)
    func singleFile(_ version: TorrentVersion) {
        #expect(
            self.describe(FileLayout.plan(files: [(["x"], 1000)], pieceLength: 16384, version: version)) == [
                "x 1000@0 0"
            ])
    }

    @Test(
        "automatic piece length",
        arguments: [
            (Int64(0), 16384), (1, 16384), (1 << 20, 16384), (16 << 20, 16384), (32 << 20, 32768), (1 << 30, 1 << 20),
            (4 << 30, 4 << 20), (16 << 30, 16 << 20), (1 << 40, 16 << 20), (.max, 16 << 20),
        ] as [(Int64, Int)])
    func automaticPieceLength(_ total: Int64, _ expected: Int) {
        #expect(FileLayout.automaticPieceLength(totalLength: total) == expected)
    }

    /// The documented contract: "a power of two from 16 KiB to 16 MiB that keeps the piece count at or
    /// below 1 024". Just past a multiple of 1 024 pieces the count is 1 025, because the loop compares
    /// `totalLength / pl` (rounded down) rather than the piece count (rounded up).
    @Test(
        "automatic piece length keeps the piece count at or below 1024",
        arguments: [
            Int64(16 << 20) - 1, 16 << 20, (16 << 20) + 1, (1 << 30) + 1, (1 << 30) + (1 << 20) - 1, (8 << 30) + 5,
            (16 << 30) - 1, 12_345_678_901,
        ] as [Int64])
    func automaticPieceCount(_ total: Int64) {
        let pl = Int64(FileLayout.automaticPieceLength(totalLength: total))
        #expect(pl >= 16384 && pl <= 16 << 20 && pl & (pl - 1) == 0)
        #expect((total + pl - 1) / pl <= 1024, "\(total) bytes in pieces of \(pl)")
    }

    @Test("layout invariants for generated file lists")
    func invariants() async {
        await propertyCheck(
            count: 300, input: Gen<Int64>.value(in: 0...100_000).array(of: 1...8), Gen<Int>.value(in: 14...18),
            Gen<TorrentVersion>.case
        ) { lengths, log2, version in
            let pl = Int64(1) << log2
            let files = lengths.enumerated().map { (path: ["f\($0.offset)"], length: $0.element) }
            let plan = FileLayout.plan(files: files, pieceLength: Int(pl), version: version)
            // Contiguous, in order, every real file once.
            var offset: Int64 = 0
            for e in plan {
                #expect(e.offset == offset)
                offset += e.length
            }
            #expect(plan.compactMap(\.source) == Array(files.indices))
            #expect(plan.filter { !$0.isPadding }.map(\.length) == lengths)
            let pads = plan.filter(\.isPadding)
            #expect(pads.allSatisfy { $0.length > 0 && $0.length < pl && $0.path == [".pad", String($0.length)] })
            if version == .v1 || files.count == 1 {
                #expect(pads.isEmpty)
            } else {
                // Every file starts on a piece boundary, and the whole ends on one.
                #expect(plan.allSatisfy { $0.isPadding || $0.offset % pl == 0 })
                #expect(offset % pl == 0)
            }
        }
    }
}
