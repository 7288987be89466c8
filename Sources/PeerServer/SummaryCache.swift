import Foundation
import Hummingbird
import PeerKit
import Synchronization

/// The JSON of torrent summaries, kept per torrent until its summary changes.
///
/// Most torrents of a large session are idle: their summaries stay the same from one request to the next,
/// so `GET /api/torrents` re-encodes only those that changed (JSONEncoder is most of the cost of a list of a
/// thousand; comparing a summary is cheap).
final class SummaryCache: Sendable {
    private let entries = Mutex<[String: (status: TorrentStatus, json: [UInt8])]>([:])

    /// `{"torrents": [...]}` of `list`, as `JSON.response` would write it.
    func listResponse(_ list: [TorrentStatus]) throws -> Response {
        let known = self.entries.withLock { $0 }
        var body = ByteBuffer()
        body.reserveCapacity(64 + list.count * 512)
        body.writeString("{\"torrents\":[")
        var changed: [(String, TorrentStatus, [UInt8])] = []
        for (i, s) in list.enumerated() {
            if i > 0 { body.writeString(",") }
            if let hit = known[s.id], hit.status == s {
                body.writeBytes(hit.json)
            } else {
                let json = [UInt8](try JSON.encoder.encode(s))
                body.writeBytes(json)
                changed.append((s.id, s, json))
            }
        }
        body.writeString("]}")
        if !changed.isEmpty || known.count > list.count {
            self.entries.withLock { all in
                for (id, s, json) in changed { all[id] = (s, json) }
                if all.count > list.count {  // removed torrents
                    let ids = Set(list.map(\.id))
                    all = all.filter { ids.contains($0.key) }
                }
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: body))
    }
}
