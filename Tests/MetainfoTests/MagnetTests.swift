import Bencode
import Metainfo
import PropertyBased
import Testing

let hexV1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
let bytesV1: [UInt8] = [
    0xc1, 0x2f, 0xe1, 0xc0, 0x6b, 0xba, 0x25, 0x4a, 0x9d, 0xc9, 0xf5, 0x19, 0xb3, 0x35, 0xaa, 0x7c, 0x13, 0x67, 0xa8,
    0x8a,
]
/// The same hash in RFC 4648 base32 (computed with Python's base64.b32encode).
let base32V1 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"
let hexV2 = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"

func magnetError(_ text: String) -> MetainfoError? {
    do {
        _ = try MagnetLink(parsing: text)
        return nil
    } catch {
        return error
    }
}

@Suite("Magnet links")
struct MagnetTests {
    @Test("hex and base32 btih give the same hash")
    func btih() throws {
        let hex = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hexV1)")
        #expect(hex.infoHashes.v1?.bytes == bytesV1)
        #expect(hex.infoHashes.v2 == nil)
        let upper = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hexV1.uppercased())")
        let b32 = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(base32V1)")
        let b32lower = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(base32V1.lowercased())")
        #expect(upper.infoHashes == hex.infoHashes)
        #expect(b32.infoHashes == hex.infoHashes)
        #expect(b32lower.infoHashes == hex.infoHashes)
        #expect(hex.displayName == nil && hex.trackers.isEmpty && hex.selectedFiles.isEmpty && hex.exactLength == nil)
        // Scheme and URN prefix in any case.
        #expect(try MagnetLink(parsing: "MAGNET:?XT=URN:BTIH:\(hexV1)").infoHashes == hex.infoHashes)
    }

    @Test("btmh carries a SHA-256 multihash (1220 prefix); hybrid links carry both")
    func btmh() throws {
        let v2 = try MagnetLink(parsing: "magnet:?xt=urn:btmh:1220\(hexV2)")
        #expect(v2.infoHashes.v2?.hex == hexV2)
        #expect(v2.infoHashes.v1 == nil)
        #expect(v2.infoHashes.id == hexV2)
        let hybrid = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hexV1)&xt=urn:btmh:1220\(hexV2)&dn=x")
        #expect(hybrid.infoHashes.v1?.hex == hexV1)
        #expect(hybrid.infoHashes.v2?.hex == hexV2)
        #expect(hybrid.infoHashes.id == hexV1)
        // Numbered xt parameters, and the same hash twice, are fine.
        let numbered = try MagnetLink(
            parsing: "magnet:?xt.1=urn:btih:\(hexV1)&xt.2=urn:btmh:1220\(hexV2)&xt=urn:btih:\(base32V1)")
        #expect(numbered.infoHashes == hybrid.infoHashes)
        // Other URNs are ignored.
        let other = try MagnetLink(parsing: "magnet:?xt=urn:ed2k:31D6CFE0D16AE931B73C59D7E0C089C0&xt=urn:btih:\(hexV1)")
        #expect(other.infoHashes.v1?.hex == hexV1)
    }

    @Test("every parameter")
    func parameters() throws {
        let link = try MagnetLink(
            parsing: [
                "magnet:?xt=urn:btih:\(hexV1)",
                "dn=My%20File+Name%2B1",
                "tr=http%3A%2F%2Ft1.example%2Fannounce%3Fa%3D1%26b%3D2",
                "tr=udp://t2.example:80",
                "tr.1=udp://t3.example:80",
                "tr.2=udp://t2.example:80",
                "tr=",
                "ws=http://seed.example/files/",
                "x.pe=10.0.0.1:6881",
                "x.pe=[::1]:6881",
                "so=0,2,4-6",
                "xl=123456789",
                "unknown=ignored",
                "",
            ].joined(separator: "&"))
        #expect(link.displayName == "My File Name+1")
        #expect(link.trackers == ["http://t1.example/announce?a=1&b=2", "udp://t2.example:80", "udp://t3.example:80"])
        #expect(link.webSeeds == ["http://seed.example/files/"])
        #expect(link.peers == ["10.0.0.1:6881", "[::1]:6881"])
        #expect(link.selectedFiles == [0, 2, 4, 5, 6])
        #expect(link.exactLength == 123_456_789)
        // "+" is a space only in dn.
        let plus = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hexV1)&tr=http://a/b+c&dn=a+b")
        #expect(plus.trackers == ["http://a/b+c"])
        #expect(plus.displayName == "a b")
    }

    @Test(
        "so ranges",
        arguments: [
            ("0,2,4-6", [0, 2, 4, 5, 6]), ("5", [5]), ("3-3", [3]), ("6,4-6,0", [0, 4, 5, 6]),
            ("1-3,2-4", [1, 2, 3, 4]),
            ("", []), ("0,,1", [0, 1]),
        ])
    func soRanges(_ so: String, _ expected: [Int]) throws {
        #expect(try MagnetLink(parsing: "magnet:?xt=urn:btih:\(hexV1)&so=\(so)").selectedFiles == expected)
    }

    @Test("formatting then parsing round-trips")
    func formatRoundTrip() throws {
        let link = MagnetLink(
            infoHashes: InfoHashes(v1: InfoHashV1(bytesV1), v2: InfoHashV2(hex: hexV2)),
            displayName: "Caf\u{e9} & Bar = 100% + more/less?", trackers: ["http://t/a?x=1&y=2", "udp://u:1"],
            webSeeds: ["http://w/p q"], peers: ["[::1]:1", "1.2.3.4:5"], selectedFiles: [0, 1, 2, 7, 9, 10],
            exactLength: 42)
        let text = link.description
        #expect(text.hasPrefix("magnet:?xt=urn:btih:\(hexV1)&xt=urn:btmh:1220\(hexV2)&dn="))
        #expect(text.contains("so=0-2,7,9-10"))
        #expect(text.contains("xl=42"))
        #expect(!text.dropFirst("magnet:?".count).contains("?") && !text.contains(" "))
        #expect(try MagnetLink(parsing: text) == link)
    }

    @Test("the magnet link of a torrent")
    func fromTorrent() throws {
        let built = buildTorrent(
            name: "some name", pieceLength: 16384, version: .hybrid, files: [MemFile(["some name"], [1, 2, 3])]
        ) { $0.trackers = [["http://a"], ["http://b"]] }
        let t = try TorrentMetainfo(bytes: built.bytes)
        let link = MagnetLink(t)
        #expect(link.infoHashes == t.infoHashes)
        #expect(link.displayName == "some name")
        #expect(link.trackers == ["http://a", "http://b"])
        #expect(try MagnetLink(parsing: link.description) == link)
    }

    @Test(
        "errors",
        arguments: [
            ("http://example.com/?xt=urn:btih:\(hexV1)", "magnet:?"),
            ("magnet:xt=urn:btih:\(hexV1)", "magnet:?"),
            ("", "magnet:?"),
            ("magnet:?", "no info-hash"),
            ("magnet:?dn=name&tr=http://t", "no info-hash"),
            ("magnet:?xt=urn:btih:\(hexV1.dropLast())", "found 39"),
            ("magnet:?xt=urn:btih:\(hexV1)00", "found 42"),
            ("magnet:?xt=urn:btih:", "found 0"),
            ("magnet:?xt=urn:btih:\(hexV1.dropLast())g", "not valid"),
            ("magnet:?xt=urn:btih:\(base32V1.dropLast())1", "not valid"),
            ("magnet:?xt=urn:btih:\(base32V1.dropLast())=", "not valid"),
            ("magnet:?xt=urn:btmh:1220\(hexV2.dropLast(2))", "SHA-256 multihash"),
            ("magnet:?xt=urn:btmh:1114\(hexV2)", "SHA-256 multihash"),
            ("magnet:?xt=urn:btmh:\(hexV2)", "SHA-256 multihash"),
            ("magnet:?xt=urn:btmh:1220\(hexV2.dropLast())", "not hexadecimal"),
            ("magnet:?xt=urn:btih:\(hexV1)&dn=%zz", "percent"),
            ("magnet:?xt=urn:btih:\(hexV1)&dn=abc%2", "percent"),
            ("magnet:?xt=urn:btih:\(hexV1)&tr=%", "percent"),
            ("magnet:?xt=urn:btih:\(hexV1)&so=5-3", "bad range"),
            ("magnet:?xt=urn:btih:\(hexV1)&so=1-", "bad range"),
            ("magnet:?xt=urn:btih:\(hexV1)&so=a", "bad file index"),
            ("magnet:?xt=urn:btih:\(hexV1)&so=-1", "bad file index"),
            ("magnet:?xt=urn:btih:\(hexV1)&so=0-2000000", "more than"),
            ("magnet:?xt=urn:btih:\(hexV1)&xl=-1", "not a length"),
            ("magnet:?xt=urn:btih:\(hexV1)&xl=ten", "not a length"),
            ("magnet:?xt=urn:btih:\(hexV1)&xt=urn:btih:\(String(repeating: "0", count: 40))", "two different"),
            ("magnet:?xt=urn:btih:\(hexV1)&dn=" + String(repeating: "a", count: 70_000), "longer than"),
        ])
    func errors(_ text: String, _ fragment: String) throws {
        let error = try #require(magnetError(text))
        guard case .magnet(let message) = error else {
            Issue.record("expected a magnet error, got \(error)")
            return
        }
        #expect(message.contains(fragment), "\(message)")
        #expect(error.offset == nil)
        #expect(error.description.hasPrefix("invalid magnet link: "))
    }

    /// `so=0-9223372036854775807` makes `hi - lo + 1` overflow in `MagnetLink.parseSelection`; a link
    /// from the network must be refused, not crash the process.
    @Test("an so range up to Int.max is refused without crashing")
    func soOverflow() async {
        await #expect(processExitsWith: .success) {
            let text = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=0-9223372036854775807"
            // Accepting it would be wrong too: it selects more than `maxSelectedFiles` files.
            if (try? MagnetLink(parsing: text)) != nil { fatalError("accepted an so range of 2^63 files") }
        }
    }

    static let nameCharacters = Gen<Character?>.element(
        of: Array("aZ09 -._~:/?#[]@!$&'()*+,;=%\u{e9}\u{4e2d}\u{1f600}\t\"<>\\^`{|}") as [Character]
    ).map { $0! }

    @Test("formatting then parsing round-trips for generated links")
    func generatedRoundTrip() async {
        let text = Self.nameCharacters.string(of: 0...12)
        await propertyCheck(
            count: 200,
            input: Gen<UInt8>.value(in: 0...255).array(of: 20), Gen<UInt8>.value(in: 0...255).array(of: 32),
            Gen<Int>.value(in: 0...2), text.optional, text.array(of: 0...3),
            Gen<Int>.value(in: 0...40).array(of: 0...6),
            Gen<Int64>.value(in: 0...Int64.max).optional
        ) { h1, h2, which, name, trackers, selected, length in
            failOnThrow {
                let hashes = InfoHashes(
                    v1: which != 1 ? InfoHashV1(h1) : nil, v2: which != 0 ? InfoHashV2(h2) : nil)
                var unique: [String] = []
                for t in trackers where !t.isEmpty && !unique.contains(t) { unique.append(t) }
                let link = MagnetLink(
                    infoHashes: hashes, displayName: name, trackers: unique, webSeeds: unique.reversed(), peers: unique,
                    selectedFiles: Array(Set(selected)).sorted(), exactLength: length)
                let parsed = try MagnetLink(parsing: link.description)
                #expect(parsed == link)
                #expect(parsed.description == link.description)
            }
        }
    }
}
