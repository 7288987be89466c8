import Foundation
import Hummingbird
import Testing

@testable import PeerKit

@testable import PeerServer

@Suite("The cache of summary JSON")
struct SummaryCacheTests {
    func status(_ id: String, progress: Double) -> TorrentStatus {
        TorrentStatus(id: id, infoHashV1: id, infoHashV2: nil, name: "t\(id)", state: .downloading, progress: progress,
            size: 100, haveBytes: Int64(progress * 100), downloadRate: 0, uploadRate: 0, downloaded: 0, uploaded: 0,
            peers: 0, eta: nil, savePath: "/tmp", sequential: false, paused: false,
            addedAt: Date(timeIntervalSince1970: 0), completedAt: nil, error: nil)
    }

    func body(_ r: Response) async throws -> [[String: Any]] {
        let box = CollectingWriter.Box()
        try await r.body.write(CollectingWriter(box: box))
        let object = try JSONSerialization.jsonObject(with: Data(buffer: box.buffer)) as! [String: Any]
        return object["torrents"] as! [[String: Any]]
    }

    func text(_ r: Response) async throws -> String {
        let box = CollectingWriter.Box()
        try await r.body.write(CollectingWriter(box: box))
        return String(buffer: box.buffer)
    }

    @Test("a list is the same JSON as without the cache; a changed or removed torrent is never served stale")
    func freshness() async throws {
        let cache = SummaryCache()
        var list = [self.status("a", progress: 0.5), self.status("b", progress: 0.25)]
        var torrents = try await self.body(try cache.listResponse(list))
        #expect(torrents.map { $0["id"] as! String } == ["a", "b"])
        #expect(torrents.map { $0["progress"] as! Double } == [0.5, 0.25])
        list[0].progress = 0.75
        list.removeLast()
        torrents = try await self.body(try cache.listResponse(list))
        #expect(torrents.count == 1 && torrents[0]["progress"] as! Double == 0.75)
        // Byte for byte what the encoder writes for that summary alone.
        let direct = String(decoding: try JSON.encoder.encode(list[0]), as: UTF8.self)
        #expect(try await self.text(try cache.listResponse(list)) == "{\"torrents\":[\(direct)]}")
        torrents = try await self.body(try cache.listResponse([]))
        #expect(torrents.isEmpty)
    }
}

/// Collects a response body.
struct CollectingWriter: ResponseBodyWriter {
    final class Box: @unchecked Sendable { var buffer = ByteBuffer() }
    let box: Box
    mutating func write(_ buffer: ByteBuffer) async throws {
        var b = buffer
        self.box.buffer.writeBuffer(&b)
    }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
