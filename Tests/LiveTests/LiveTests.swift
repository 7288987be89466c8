import Crypto
import PeerBase
import Testing

@testable import Live

@Suite("live streams: links, chunks, messages")
struct LiveCodecTests {
    @Test("a link reads back as written; a channel's link (no x.live=1) is refused")
    func link() throws {
        let key = Curve25519.Signing.PrivateKey()
        let link = try LiveLink(publicKey: Array(key.publicKey.rawRepresentation), name: "Radio Café")
        let text = link.description
        #expect(text.hasPrefix("magnet:?xs=urn:btpk:") && text.hasSuffix("&x.live=1"))
        let back = try LiveLink(parsing: text)
        #expect(back == link && back.name == "Radio Café" && back.streamID.count == 20)
        let channel = String(text.dropLast("&x.live=1".count))
        #expect(throws: LiveError.self) { try LiveLink(parsing: channel) }
        #expect(throws: LiveError.self) { try LiveLink(parsing: "magnet:?xt=urn:btih:" + String(repeating: "a", count: 40)) }
    }

    @Test("a chunk's signature covers the stream, number, time and bytes")
    func signature() throws {
        let key = Curve25519.Signing.PrivateKey()
        let link = try LiveLink(publicKey: Array(key.publicKey.rawRepresentation), name: "s")
        let other = try LiveLink(publicKey: Array(key.publicKey.rawRepresentation), name: "t")
        let chunk = try LiveChunk(number: 7, time: 1_000, payload: [1, 2, 3], stream: link.streamID, signedBy: key)
        #expect(chunk.isSigned(by: link.publicKey, stream: link.streamID))
        #expect(!chunk.isSigned(by: link.publicKey, stream: other.streamID))
        for change in [{ (c: inout LiveChunk) in c.number += 1 }, { $0.time += 1 }, { $0.payload[0] ^= 1 }, { $0.kind = .start },
            { $0.signature[5] ^= 1 }]
        {
            var bad = chunk
            change(&bad)
            #expect(!bad.isSigned(by: link.publicKey, stream: link.streamID))
        }
    }

    @Test("messages read back as written; bad ones are errors, never traps")
    func messages() throws {
        let chunk = LiveChunk(number: 3, time: 99, payload: [9, 8, 7], signature: [UInt8](repeating: 1, count: 64))
        let have = LiveMessage.have([10, 9, 7, 1], window: 150)!
        for m in [have, .request(4), .reject(5), .chunk(chunk), .coming(6), .cancel(7),
            .peers(["127.0.0.1:6881", "[::1]:7000"], source: "10.0.0.1:1"), .peers([], source: nil)]
        {
            #expect(try LiveMessage(decoding: m.encoded()) == m)
        }
        #expect(try LiveMessage(decoding: LiveMessage.have([3], window: 8, source: true)!.encoded())
            == .have(newest: 3, bits: [0x80], source: true))
        let headed = LiveMessage.have([5], window: 8, header: 0)!
        #expect(try LiveMessage(decoding: headed.encoded()) == headed)
        for kind in [LiveChunk.Kind.start, .header] {
            var c = chunk
            c.kind = kind
            #expect(try LiveMessage(decoding: LiveMessage.chunk(c).encoded()) == .chunk(c))
        }
        guard case .have(let newest, let bits, _, _) = have else { return }
        #expect(LiveMessage.held(newest: newest, bits: bits) == [10, 9, 7, 1])
        #expect(throws: LiveError.self) { try LiveMessage(decoding: Array("d1:ti9ee".utf8)) }
        #expect(throws: LiveError.self) { try LiveMessage(decoding: Array("d1:ti1ee".utf8)) }  // no n
        #expect(throws: LiveError.self) { try LiveMessage(decoding: Array("d1:ni-1e1:ti1ee".utf8)) }
        #expect(throws: LiveError.self) { try LiveMessage(decoding: Array("d1:ni1e1:ti1eexx".utf8)) }
        var oversize = LiveMessage.chunk(chunk).encoded()
        oversize += [UInt8](repeating: 0, count: LiveLimits.maxPayload)
        #expect(throws: LiveError.self) { try LiveMessage(decoding: oversize) }
        let tooMany = LiveMessage.peers((0...LiveMessage.maxPeers).map { "10.0.0.\($0):1" }, source: nil).encoded()
        #expect(throws: LiveError.self) { try LiveMessage(decoding: tooMany) }
        let tooLong = LiveMessage.peers([String(repeating: "a", count: 65)], source: nil).encoded()
        #expect(throws: LiveError.self) { try LiveMessage(decoding: tooLong) }
        let shortSignature = BencodeLike.chunkHeader(signature: 63)
        #expect(throws: LiveError.self) { try LiveMessage(decoding: shortSignature) }
    }
}

enum BencodeLike {
    static func chunkHeader(signature: Int) -> [UInt8] {
        Array("d1:ni1e3:sig\(signature):".utf8) + [UInt8](repeating: 0, count: signature) + Array("1:ti2e2:tsi5ee".utf8)
    }
}

@Suite("live streams: a swarm of viewers in virtual time")
struct LiveSwarmTests {
    static let rate = 125_000.0  // 1 Mbit/s
    static let chunkBytes = 25_000  // 200 ms of it

    static func percentile(_ values: [Duration], _ p: Double) -> Duration {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    @Test("20 viewers joining over 10 s: median latency under 1 s, p95 under 2 s, the source at most 2x, no loss",
        arguments: [4.0, 2.0])
    func twentyViewers(uplink: Double) throws {
        var net = try LiveNetwork(sourceUpload: 4 * Self.rate)
        var joins: [(Instant, (inout LiveNetwork) -> Void)] = []
        for i in 0..<20 {
            joins.append((Instant(offset: .milliseconds(500 * i + 200)), { net in net.join(upload: uplink * Self.rate) }))
        }
        try net.run(until: Instant(offset: .seconds(40)), chunkBytes: Self.chunkBytes, every: .milliseconds(200),
            events: joins)
        let steady = Instant(offset: .seconds(12))
        let latencies = net.nodes.filter { $0.key != 0 }.flatMap { $0.value.latencies.filter { $0.at >= steady }.map(\.latency) }
        let median = Self.percentile(latencies, 0.5)
        let p95 = Self.percentile(latencies, 0.95)
        let source = Double(net.sent(0, from: steady, to: Instant(offset: .seconds(40)))) / (Self.rate * 28)
        let skipped = net.nodes.values.reduce(0) { $0 + $1.skipped.count }
        let duplicates = net.nodes.values.reduce(0) { $0 + $1.machine.duplicates }
        let viewersUp = net.nodes.filter { $0.key != 0 }.map { Double(net.sent($0.key, from: steady, to: Instant(offset: .seconds(40)))) / (Self.rate * 28) }
        print("live, 20 viewers, uplinks \(uplink)x: latency median \(median), p95 \(p95); source uploads \(source)x the stream; "
            + "\(skipped) chunks skipped; played \(net.nodes.values.reduce(0) { $0 + $1.played.count }); "
            + "\(duplicates) duplicates; viewers upload \(viewersUp.map { (($0 * 100).rounded() / 100) }.sorted())")
        for (id, node) in net.nodes.sorted(by: { $0.key < $1.key }) where !node.skipped.isEmpty {
            print("viewer \(id) joined \(node.joined) first \(node.played.first ?? 0) skipped \(node.skipped)")
            let n = node.skipped[0]
            let made = net.published[n].map { Double($0.time) / 1e6 } ?? -1
            let arrivals = net.nodes.sorted(by: { $0.key < $1.key }).compactMap { other -> String? in
                guard let i = other.value.played.firstIndex(of: n) else { return nil }
                return "\(other.key):\(other.value.latencies[i].latency)"
            }
            print("  chunk \(n) made at \(made): played by \(arrivals.joined(separator: " "))")
            let previous = net.nodes[id]!.played.firstIndex(of: n - 1).map { net.nodes[id]!.latencies[$0] }
            print("  \(n - 1) played at \(previous.map { "\($0.at) after \($0.latency)" } ?? "-")")
        }
        #expect(latencies.count > 20 * 100)
        #expect(median < .seconds(1) && p95 < .seconds(2))
        #expect(source <= 2.05)
        #expect(skipped == 0)
        // Every viewer played every chunk from the one it joined at to the end.
        for (id, node) in net.nodes where id != 0 {
            #expect(node.played == Array(node.played.first!...node.played.last!), "viewer \(id)")
        }
    }

    @Test("a stream with a header: a viewer joining after it left the window plays the header, then from a start")
    func lateJoinerGetsTheHeader() throws {
        var net = try LiveNetwork(sourceUpload: 4 * Self.rate)
        // Chunk 0 is the header (a WebM file's EBML header and tracks); a cluster starts every fifth chunk.
        net.kindOf = { n in n == 0 ? .header : n % 5 == 1 ? .start : .media }
        var events: [(Instant, (inout LiveNetwork) -> Void)] = []
        for i in 0..<5 {
            events.append((Instant(offset: .milliseconds(300 * i + 100)), { net in net.join(upload: 4 * Self.rate) }))
        }
        // Chunks every 500 ms (a WebM cluster each, as ffmpeg writes them with a keyframe every 12 frames). 10 s
        // in, just after a chunk, with the source its only neighbour (as a daemon that found the source alone), the
        // header comes before the next chunk does; 80 s in, chunk 0 is 160 chunks behind: out of every window.
        var late = [0, 0]
        events.append((Instant(offset: .milliseconds(10_010)), { net in
            late[0] = net.join(upload: 4 * Self.rate, neighbours: 0)
            net.connect(late[0], 0)
        }))
        events.append((Instant(offset: .seconds(80)), { net in late[1] = net.join(upload: 4 * Self.rate) }))
        try net.run(until: Instant(offset: .seconds(90)), chunkBytes: 2_000, every: .milliseconds(500), events: events)
        for (id, joined) in zip(late, [20, 150]) {  // the second joins where its neighbours are: a little behind
            let played = net.nodes[id]!.played
            #expect(played.count > 10)
            #expect(played.first == 0, "the header first")
            // Then a start from the present: never the chunks from before it joined (a header that came before any
            // fresh chunk once took the joiner back to chunk 1).
            #expect(played.count > 1 && played[1] % 5 == 1 && played[1] >= joined, "then a start, from the present")
            #expect(Array(played.dropFirst()) == Array(played[1]...played.last!))
        }
        // The early viewers played the header once, in order, and everything after it.
        for id in 1...5 { #expect(net.nodes[id]!.played.first == 0 && net.nodes[id]!.played.filter { $0 == 0 }.count == 1) }
    }

    @Test("churn: a tenth of the viewers leave and others join every 10 s for a minute; those that stay miss under 1%")
    func churn() throws {
        var net = try LiveNetwork(sourceUpload: 4 * Self.rate)
        var events: [(Instant, (inout LiveNetwork) -> Void)] = []
        for i in 0..<20 {
            events.append((Instant(offset: .milliseconds(250 * i + 100)), { net in net.join(upload: 4 * Self.rate) }))
        }
        for round in 1...6 {
            events.append((Instant(offset: .seconds(10 * round)), { net in
                let viewers = net.nodes.keys.filter { $0 != 0 }.sorted()
                var leaving = viewers
                leaving.shuffle(using: &net.rng)
                for id in leaving.prefix(2) { net.leave(id) }
                net.join(upload: 4 * Self.rate)
                net.join(upload: 4 * Self.rate)
            }))
        }
        try net.run(until: Instant(offset: .seconds(75)), chunkBytes: Self.chunkBytes, every: .milliseconds(200),
            events: events)
        var missed = 0
        var total = 0
        for (id, node) in net.nodes where id != 0 && node.joined < .init(offset: .seconds(10)) {
            missed += node.skipped.count
            total += node.played.count + node.skipped.count
        }
        print("live churn: viewers that stayed missed \(missed) of \(total) chunks")
        #expect(total > 10 * 300)
        #expect(Double(missed) <= 0.01 * Double(total))
    }

    @Test("a hostile relay (bad signatures, chunks older than the window): dropped by all, nothing of it played")
    func hostile() throws {
        var configuration = LiveMachine.Configuration()
        configuration.window = 20
        var net = try LiveNetwork(sourceUpload: 4 * Self.rate, configuration: configuration)
        var events: [(Instant, (inout LiveNetwork) -> Void)] = []
        for i in 0..<8 {
            events.append((Instant(offset: .milliseconds(100 * i + 100)),
                { net in net.join(upload: 4 * Self.rate, configuration: configuration) }))
        }
        var hostile = 0
        events.append((Instant(offset: .seconds(2)), { net in
            hostile = net.join(upload: 4 * Self.rate, neighbours: 8, configuration: configuration)
        }))
        events.append((Instant(offset: .seconds(8)), { net in
            let newest = net.published.keys.max()!
            // A forged next chunk, and a real one from long ago (replayed): each to every neighbour.
            var forged = net.published[newest]!
            forged.number = newest + 1
            forged.payload[0] ^= 0xFF
            let old = net.published[0]!
            for other in net.nodes[hostile]!.neighbours.sorted() {
                net.send(.chunk(other % 2 == 0 ? forged : old), from: hostile, to: other)
            }
        }))
        try net.run(until: Instant(offset: .seconds(12)), chunkBytes: Self.chunkBytes, every: .milliseconds(200),
            events: events)
        let neighbours = net.nodes.filter { $0.key != hostile && $0.value.dropped.count > 0 }
        #expect(net.nodes[hostile]!.neighbours.isEmpty, "still connected to \(net.nodes[hostile]!.neighbours)")
        #expect(neighbours.count >= 8)
        for (_, node) in neighbours {
            #expect(node.dropped.allSatisfy {
                $0.contains("not signed") || $0.contains("older than the window") || $0.contains("differs from the source's")
            }, "\(node.dropped)")
        }
        // LiveNetwork.drain checks that every chunk played is one the source published.
    }

    @Test("a neighbour that announces a chunk far beyond the stream does not hold a joining viewer there")
    func lyingHave() throws {
        let key = Curve25519.Signing.PrivateKey()
        let link = try LiveLink(publicKey: Array(key.publicKey.rawRepresentation), name: "lie")
        var viewer = LiveMachine(viewing: link)
        viewer.connected(1)
        viewer.connected(2)
        // The liar speaks first: its newest is a number nothing signs.
        viewer.received(.have(newest: 1_000_000, bits: [0xFF, 0xFF]), from: 1, at: .zero)
        viewer.received(LiveMessage.have(40...50, window: 150)!, from: 2, at: .zero)
        var played: [UInt64] = []
        for n in UInt64(48)...55 {
            let chunk = try LiveChunk(number: n, time: n, payload: [UInt8(n)], stream: link.streamID, signedBy: key)
            viewer.received(.chunk(chunk), from: 2, at: Instant(offset: .milliseconds(Int64(n))))
            while let action = viewer.pollAction() { if case .play(let c) = action { played.append(c.number) } }
        }
        #expect(played == Array(48...55))
        // Nothing is asked of the numbers the liar made up.
        viewer.tick(at: Instant(offset: .seconds(1)))
        while let action = viewer.pollAction() {
            if case .send(_, .request(let n)) = action { #expect(n < 1_000) }
        }
    }
}

@Suite("live streams: cutting the input")
struct LiveCutterTests {
    /// An EBML element: id bytes, a size (nil: unknown, 8 bytes of ones), data.
    static func element(_ id: [UInt8], _ data: [UInt8], unknownSize: Bool = false) -> [UInt8] {
        let size: [UInt8] = unknownSize ? [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
            : data.count < 127 ? [0x80 | UInt8(data.count)] : [0x40 | UInt8(data.count >> 8), UInt8(data.count & 0xFF)]
        return id + size + data
    }

    @Test("WebM: the bytes before the first cluster are the header; each cluster begins a start chunk")
    func webm() {
        let cluster: [UInt8] = [0x1F, 0x43, 0xB6, 0x75]
        let header = Self.element([0x1A, 0x45, 0xDF, 0xA3], [0x42, 0x86, 0x81, 0x01])
            + [0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]  // Segment, unknown size
            + Self.element([0x15, 0x49, 0xA9, 0x66], [1, 2, 3]) + Self.element([0x16, 0x54, 0xAE, 0x6B], [4, 5, 6, 7, 8])
        let blocks = Self.element([0xE7], [0]) + Self.element([0xA3], [UInt8](repeating: 9, count: 300))
        let clusters = [
            Self.element(cluster, blocks),
            Self.element(cluster, blocks, unknownSize: true),
            Self.element(cluster, Self.element([0xE7], [1]) + Self.element([0xA3], [UInt8](repeating: 7, count: 200))),
            Self.element(cluster, blocks, unknownSize: true),
        ]
        let input = header + clusters.joined()
        var starts: [Int] = []
        var at = header.count
        for c in clusters {
            starts.append(at)
            at += c.count
        }
        // Fed in pieces of every size from 1 byte, cut between them.
        for step in [1, 3, 7, 64, 1000] {
            var cutter = LiveCutter()
            var chunks: [(payload: [UInt8], kind: LiveChunk.Kind)] = []
            for i in stride(from: 0, to: input.count, by: step) {
                cutter.append(Array(input[i..<min(input.count, i + step)]))
                chunks += cutter.cut()
            }
            chunks += cutter.cut()
            #expect(chunks.first?.kind == .header && chunks.first?.payload == header, "step \(step)")
            #expect(chunks.flatMap(\.payload) == input, "step \(step)")
            var offset = 0
            var startOffsets: [Int] = []
            for c in chunks {
                if c.kind == .start { startOffsets.append(offset) }
                offset += c.payload.count
            }
            // The last cluster's start is known once its header is in; all four are.
            #expect(startOffsets == starts, "step \(step)")
            #expect(chunks.filter { $0.kind == .header }.count == 1)
        }
    }

    @Test("other input is cut as it comes, at most 128 KiB a chunk")
    func raw() {
        var cutter = LiveCutter()
        cutter.append([UInt8](repeating: 1, count: 300_000))
        let chunks = cutter.cut()
        #expect(chunks.map(\.payload.count) == [131_072, 131_072, 37_856])
        #expect(chunks.allSatisfy { $0.kind == .media })
        #expect(cutter.cut().isEmpty)
    }
}
