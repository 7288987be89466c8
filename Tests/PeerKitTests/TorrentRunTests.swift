import Foundation
import Metainfo
import PeerBase
import Storage
import Testing

@testable import PeerKit

@Suite("TorrentRun: how get, share and the daemon start a torrent")
struct TorrentRunTests {
    /// Resume data that lives nowhere (or is `bytes`).
    func resume(_ t: TorrentMetainfo, _ bytes: [UInt8]? = nil) -> ResumeStore {
        ResumeStore(location: "the test", metainfo: t, read: { bytes }, write: { _ in })
    }

    @Test("prepare: a complete folder checks complete, an empty one empty; bad resume data is ignored and said")
    func prepare() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (root, _) = try makeSample(in: dir)
        let t = try create(root).metainfo
        let full = try TorrentRun.prepare(t, directory: dir.path, unselected: [], resume: self.resume(t))
        defer { full.storage.close() }
        #expect(full.have.allSet && full.check.checked == t.pieceCount)
        #expect(!full.resumed && full.resumeIgnored == nil)
        let empty = try TorrentRun.prepare(t, directory: dir.path + "/elsewhere", unselected: [],
            resume: self.resume(t, Array("not resume data".utf8)))
        defer { empty.storage.close() }
        #expect(empty.have.setCount == 0 && !empty.resumed)
        #expect(empty.resumeIgnored != nil)
        #expect(FileManager.default.fileExists(atPath: dir.path + "/elsewhere"), "the folder is made")
    }

    @Test("start: a seed and a leech on two nodes, the leech dialling the seed by name, complete the download")
    func seedToLeech() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (root, data) = try makeSample(in: dir)
        let t = try create(root).metainfo
        let seedNode = PeerNode(bindHost: "127.0.0.1")
        let leechNode = PeerNode(bindHost: "127.0.0.1")
        let seedPort = try await seedNode.listen(port: 0)
        let leechPort = try await leechNode.listen(port: 0)
        let quiet = TorrentRun.Discovery(trackers: [], dht: false, localDiscovery: false)
        let seed = try TorrentRun.prepare(t, directory: dir.path, unselected: [], resume: self.resume(t))
        var seeding = TorrentEngine.Configuration()
        seeding.seedAfterDownload = true
        _ = TorrentRun.start(t, seed, on: seedNode, configuration: seeding, listenPort: seedPort, discovery: quiet)
        let leech = try TorrentRun.prepare(t, directory: dir.path + "/leech", unselected: [], resume: self.resume(t))
        var named = quiet
        named.peers = ["127.0.0.1:\(seedPort)", "not a peer"]
        let problems = Problems()
        let (_, done) = TorrentRun.start(t, leech, on: leechNode, configuration: .init(), listenPort: leechPort,
            discovery: named, report: { problems.add($0) })
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await done.get(); return true }
            group.addTask { try await Task.sleep(for: .seconds(30)); return false }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        #expect(finished, "the leech completes within 30 s")
        await leechNode.shutdown()
        await seedNode.shutdown()
        seed.storage.close()
        leech.storage.close()
        for (path, bytes) in data {
            let got = FileManager.default.contents(atPath: dir.path + "/leech/share/" + path).map { [UInt8]($0) }
            #expect(got == bytes, "\(path)")
        }
        #expect(problems.all.isEmpty, "\(problems.all)")
    }

    @Test("a dial that reaches this node (a tracker names every announcer to itself) is remembered as the node's own, so it is not made again, and is no problem to report")
    func dialingItself() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (root, _) = try makeSample(in: dir)
        let t = try create(root).metainfo
        let node = PeerNode(bindHost: "127.0.0.1")
        let port = try await node.listen(port: 0)
        let own = "127.0.0.1:\(port)"
        // No trackers started, so the node does not know its listening address as its own yet (an unbound
        // node, on 0.0.0.0, never does): only the handshake can tell.
        let engine = node.add(metainfo: t, storage: MemoryStorage(metainfo: t), have: Bitfield(count: t.pieceCount),
            configuration: .init())
        let logs = Problems()
        engine.onLog = { logs.add($0) }
        _ = engine.start()
        #expect(!node.ownAddresses.contains(own))
        node.dial(engine, own)
        let deadline = ContinuousClock.now + .seconds(10)
        while !node.ownAddresses.contains(own) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(node.ownAddresses.contains(own), "dial(_:_:) skips an own address")
        try await Task.sleep(for: .milliseconds(100))
        await node.shutdown()
        #expect(logs.all.isEmpty, "\(logs.all)")
    }

    @Test("torrent(info:magnet:): the magnet link's trackers, one tier each, and its web seeds")
    func torrentFromInfo() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (root, _) = try makeSample(in: dir)
        let t = try create(root).metainfo
        let link = "magnet:?xt=urn:btih:\(t.infoHashes.v1!.hex)&tr=udp://a:1/announce&tr=http://b:2/announce"
            + "&ws=http://w/share"
        let magnet = try MagnetLink(parsing: link)
        let (made, bytes) = try TorrentRun.torrent(info: t.infoBytes, magnet: magnet)
        #expect(made.infoHashes == t.infoHashes)
        #expect(made.trackers == [["udp://a:1/announce"], ["http://b:2/announce"]])
        #expect(made.webSeeds == ["http://w/share"])
        #expect(try TorrentMetainfo(bytes: bytes).infoHashes == t.infoHashes)
    }
}

/// What a run reported, from any thread.
final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ p: TorrentRun.Problem) { self.add(p.description) }
    func add(_ line: String) { self.lock.withLock { self.list.append(line) } }
    var all: [String] { self.lock.withLock { self.list } }
}
