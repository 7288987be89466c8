import Hummingbird
import PeerKit
import Search

extension PeerServer {
    /// `/api/search` and `/api/index`: the node's keyword index (docs/api.md).
    static func addSearch<Context: RequestContext>(to router: Router<Context>, session: Session) {
        router.get("api/search") { request, _ in
            let q = request.uri.queryParameters
            guard let text = q.get("q") else { throw APIError.badRequest("missing ?q= (the words to search for)") }
            var limit = 50
            if let given = q.get("limit") {
                guard let n = Int(given), (1...500).contains(n) else {
                    throw APIError.badRequest("limit: expected a number from 1 to 500")
                }
                limit = n
            }
            let remote = q.get("remote").map { Self.truthy($0) } ?? false
            return try JSON.response(try await session.search(text, limit: limit, remote: remote))
        }
        router.get("api/search/:id") { _, context in
            try JSON.response(try await session.remoteSearch(context.parameters.require("id")))
        }
        router.get("api/index") { _, _ in try JSON.response(try await session.indexStatistics()) }
    }
}
