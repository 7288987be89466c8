import DHT
import Hummingbird
import PeerKit

struct NodeRequest: Decodable { var node: String }

struct InfoHashRequest: Decodable {
    var infoHash: String
    enum CodingKeys: String, CodingKey { case infoHash = "info_hash" }
}

extension PeerServer {
    /// `/api/dht`: the daemon's DHT node for `peer dht stats|peers|ping|sample|get|put`.
    static func addDHT<Context: RequestContext>(to router: Router<Context>, session: Session) {
        let dht = router.group("api/dht")
        dht.get { _, _ in try JSON.response(try await session.dhtStats()) }
        dht.post("peers") { request, _ in
            let body = try await JSON.decode(InfoHashRequest.self, from: request, limit: 4096)
            guard body.infoHash.count == 40, let id = NodeID(hex: body.infoHash) else {
                throw APIError.badRequest("info_hash: expected 40 hex digits")
            }
            guard case .peers(_, let peers, let closest) = try await session.runDHT(.getPeers(infoHash: id), joinFirst: true)
            else { throw APIError(.internalServerError, "internal", "unexpected answer") }
            return try JSON.response(DHTReport.Peers(peers: peers.map(\.description),
                closestNodes: closest.map(\.node.endpoint.description)))
        }
        dht.post("get") { request, _ in
            try JSON.response(try await session.dhtGet(try await JSON.decode(DHTReport.GetRequest.self, from: request,
                limit: 4096)))
        }
        dht.post("put") { request, _ in
            try JSON.response(try await session.dhtPut(try await JSON.decode(DHTReport.PutRequest.self, from: request,
                limit: 16384)))
        }
        dht.post("ping") { request, _ in
            let target = try await Self.node(request)
            guard case .pong(let info) = try await session.runDHT(.ping(target), joinFirst: false) else {
                throw APIError(.serviceUnavailable, "unavailable", "\(target) did not answer")
            }
            return try JSON.response(DHTReport.Pong(id: "\(info.id)", node: target.description))
        }
        dht.post("sample") { request, _ in
            let target = try await Self.node(request)
            let random = NodeID(bytes: (0..<20).map { _ in UInt8.random(in: .min ... .max) })!
            guard case .samples(let s) = try await session.runDHT(.sampleInfohashes(from: target, target: random),
                joinFirst: false)
            else { throw APIError(.serviceUnavailable, "unavailable", "\(target) did not answer") }
            return try JSON.response(DHTReport.Samples(samples: s.samples.map(\.description), available: s.available))
        }
    }

    private static func node(_ request: Request) async throws -> DHTEndpoint {
        let body = try await JSON.decode(NodeRequest.self, from: request, limit: 4096)
        guard let ep = DHTEndpoint(text: body.node) else { throw APIError.badRequest("node: expected IP:PORT") }
        return ep
    }
}
