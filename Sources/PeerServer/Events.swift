import Foundation
import Hummingbird
import PeerKit
import ServiceLifecycle

extension PeerServer {
    /// How often a quiet event stream sends a comment, so proxies and browsers keep it open.
    static let keepAlive: Duration = .seconds(15)

    /// `GET /api/events`: a snapshot, then every change, as server-sent events.
    static func events(_ session: Session) -> Response {
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (chunks, out) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(8192))
            let events = await session.subscribe()
            let snapshot = await session.list()
            out.yield(Self.event("snapshot", TorrentList(torrents: snapshot)))
            let pump = Task {
                for await e in events { out.yield(Self.format(e)) }
                out.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.keepAlive)
                    out.yield(": keep-alive\n\n")
                }
            }
            defer {
                pump.cancel()
                ticker.cancel()
            }
            // A stream never ends on its own: it ends when the server shuts down (or the reader leaves).
            try await withGracefulShutdownHandler {
                for await chunk in chunks { try await writer.write(ByteBuffer(string: chunk)) }
            } onGracefulShutdown: {
                out.finish()
            }
            try await writer.finish(nil)
        })
    }

    static func format(_ e: SessionEvent) -> String {
        switch e {
        case .added(let s): Self.event("added", s)
        case .updated(let s): Self.event("torrent", s)
        case .completed(let s): Self.event("completed", s)
        case .removed(let id): Self.event("removed", ["id": id])
        case .error(let id, let message): Self.event("error", ["id": id, "message": message])
        case .search(let report): Self.event("search", report)
        case .channel(let event): Self.event("channel", event)
        }
    }

    static func event(_ name: String, _ value: some Encodable) -> String {
        let data = (try? JSON.encoder.encode(value)) ?? Data("{}".utf8)
        return "event: \(name)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
    }
}
