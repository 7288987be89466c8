import Foundation
import Hummingbird
import PeerKit

extension PeerServer {
    /// `/api/live…`: live streams the daemon plays and relays (docs/api.md); each is also one continuous HTTP
    /// response for a player.
    static func addLive<Context: RequestContext>(to router: Router<Context>, session: Session) {
        let hub = LiveHub(node: session.node)
        let api = router.group("api/live")
        api.get { _, _ in try JSON.response(await hub.list()) }
        api.post { request, _ -> Response in
            let body = try await JSON.decode(LiveRequest.self, from: request, limit: 16 << 10)
            guard let link = body.link else {
                throw APIError.badRequest("link: the stream's link, magnet:?xs=urn:btpk:…&x.live=1")
            }
            return try JSON.response(try await hub.add(link, listenPort: session.listenPort, peers: body.peers ?? []),
                status: .created)
        }
        api.get(":id") { _, context in try JSON.response(try await hub.stats(context.parameters.require("id"))) }
        api.delete(":id") { _, context -> Response in
            try await hub.remove(context.parameters.require("id"))
            return Response(status: .noContent)
        }
        api.get(":id/stream") { _, context -> Response in
            let id = try context.parameters.require("id")
            // What the stream is, from its first bytes, before the status line: a player refuses a video it is not
            // told is one. A stream that has not played yet is waited for (30 s), then answered 503.
            var first = try hub.firstBytes(id)
            for _ in 0..<300 where first == nil {
                try await Task.sleep(for: .milliseconds(100))
                first = try hub.firstBytes(id)
            }
            guard let first else {
                throw APIError(.serviceUnavailable, "not_started", "nothing of the stream has arrived yet; try again")
            }
            let bytes = try hub.listen(id)
            let headers: HTTPFields = [.contentType: Self.liveType(first), .cacheControl: "no-store"]
            // No length: the body goes on as long as the stream and the listener do.
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                for await chunk in bytes { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            })
        }
    }

    /// A live stream's media type, from its first bytes: WebM (an EBML header), MPEG-TS (its sync byte), else bytes.
    static func liveType(_ first: [UInt8]) -> String {
        if first.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return "video/webm" }
        if first.count >= 189 && first[0] == 0x47 && first[188] == 0x47 { return "video/mp2t" }
        return "application/octet-stream"
    }
}

struct LiveRequest: Decodable {
    var link: String?
    /// Neighbours to dial at once ("host:port"), besides those the DHT names.
    var peers: [String]?
}
