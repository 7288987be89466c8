import Foundation
import Hummingbird
import PeerKit

/// The body of `POST /api/torrents` as JSON.
/// `PATCH /api/torrents/{id}`: a key that is absent is left alone; `null` removes a limit.
struct TorrentPatch: Decodable {
    var update = TorrentUpdate()

    enum CodingKeys: String, CodingKey {
        case sequential
        case maxDownloadRate = "max_download_rate"
        case maxUploadRate = "max_upload_rate"
        case ratioLimit = "ratio_limit"
        case seedTimeLimit = "seed_time_limit"
        case queuePosition = "queue_position"
        case category, tags
        case forceStart = "force_start"
        case firstLastPiecePriority = "first_last_piece_priority"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.update.category = try c.nullable(.category, String.self)
        self.update.tags = try c.decodeIfPresent([String].self, forKey: .tags)
        self.update.sequential = try c.decodeIfPresent(Bool.self, forKey: .sequential)
        self.update.maxDownloadRate = try c.nullable(.maxDownloadRate, Int64.self)
        self.update.maxUploadRate = try c.nullable(.maxUploadRate, Int64.self)
        self.update.ratioLimit = try c.nullable(.ratioLimit, Double.self)
        self.update.seedTimeLimit = try c.nullable(.seedTimeLimit, Int64.self)
        self.update.queuePosition = try c.decodeIfPresent(Int.self, forKey: .queuePosition)
        self.update.forceStart = try c.decodeIfPresent(Bool.self, forKey: .forceStart)
        self.update.firstLastPiecePriority = try c.decodeIfPresent(Bool.self, forKey: .firstLastPiecePriority)
    }
}

extension KeyedDecodingContainer {
    /// nil when the key is absent, `.some(nil)` when it is `null`: a PATCH leaves the first alone and clears
    /// the second.
    func nullable<T: Decodable>(_ key: Key, _ type: T.Type) throws -> T?? {
        guard self.contains(key) else { return nil }
        return try self.decodeNil(forKey: key) ? .some(nil) : .some(try self.decode(T.self, forKey: key))
    }
}

struct PrioritiesRequest: Decodable {
    struct Entry: Decodable {
        var index: Int
        var priority: FilePriority
    }
    var priorities: [Entry]
}

struct TrackerRequest: Decodable {
    var url: String
    var tier: Int?
}

struct MoveRequest: Decodable {
    var savePath: String
    enum CodingKeys: String, CodingKey { case savePath = "save_path" }
}

struct SettingsPatch: Decodable {
    var downloadDir: String?
    var maxDownloadRate: Int64??
    var maxUploadRate: Int64??
    var maxActiveDownloads: Int?
    var seedRatioLimit: Double??
    var seedTimeLimit: Int64??

    /// The keys `GET /api/settings` answers with.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: SessionSettings.CodingKeys.self)
        self.downloadDir = try c.decodeIfPresent(String.self, forKey: .downloadDir)
        self.maxDownloadRate = try c.nullable(.maxDownloadRate, Int64.self)
        self.maxUploadRate = try c.nullable(.maxUploadRate, Int64.self)
        self.maxActiveDownloads = try c.decodeIfPresent(Int.self, forKey: .maxActiveDownloads)
        self.seedRatioLimit = try c.nullable(.seedRatioLimit, Double.self)
        self.seedTimeLimit = try c.nullable(.seedTimeLimit, Int64.self)
    }

    func apply(to s: inout SessionSettings) {
        if let v = self.downloadDir { s.downloadDir = v }
        if let v = self.maxDownloadRate { s.maxDownloadRate = v == 0 ? nil : v }
        if let v = self.maxUploadRate { s.maxUploadRate = v == 0 ? nil : v }
        if let v = self.maxActiveDownloads { s.maxActiveDownloads = v }
        if let v = self.seedRatioLimit { s.seedRatioLimit = v }
        if let v = self.seedTimeLimit { s.seedTimeLimit = v }
    }
}

struct Login: Decodable { var token: String }

extension PeerServer {
    /// The API's routes on `router` (docs/api.md).
    static func addAPI<Context: RequestContext>(to router: Router<Context>, session: Session, auth: APIAuth) {
        let api = router.group("api")

        let summaries = SummaryCache()
        api.get("torrents") { request, _ in
            let q = request.uri.queryParameters
            var list = await session.list()
            // `?category=` (empty: none) and `?tag=`.
            if let c = q.get("category") { list = list.filter { ($0.category ?? "") == c } }
            if let t = q.get("tag") { list = list.filter { $0.tags.contains(t) } }
            return try summaries.listResponse(list)
        }
        api.get("categories") { _, _ in try JSON.response(try await session.categories()) }
        api.post("categories") { request, _ in
            let body = try await JSON.decode(TorrentCategory.self, from: request)
            return try JSON.response(try await session.createCategory(body.name, savePath: body.savePath), status: .created)
        }
        api.delete("categories/:name") { _, context -> Response in
            try await session.removeCategory(context.parameters.require("name"))
            return Response(status: .noContent)
        }
        api.delete("categories") { request, _ -> Response in  // `?name=`: a name with a `/` in it
            guard let name = request.uri.queryParameters.get("name") else { throw APIError.badRequest("name: the category") }
            try await session.removeCategory(name)
            return Response(status: .noContent)
        }
        api.get("tags") { _, _ in try JSON.response(await session.tags()) }

        api.post("torrents") { request, _ -> Response in
            let source: TorrentSource
            var options = AddOptions()
            let type = request.headers[.contentType] ?? ""
            if type.hasPrefix("application/x-bittorrent") || type.hasPrefix("application/octet-stream") {
                let body = try await JSON.body(of: request, limit: Session.maxTorrentBytes)
                source = .torrentFile(Array(buffer: body))
                let q = request.uri.queryParameters
                options.savePath = q.get("save_path")
                options.paused = q.get("paused").map { Self.truthy($0) } ?? false
                options.sequential = q.get("sequential").map { Self.truthy($0) } ?? false
                options.category = q.get("category")
                options.tags = q.get("tags").map { $0.split(separator: ",").map(String.init) } ?? []
            } else {
                let body = try await JSON.decode(AddRequest.self, from: request, limit: Session.maxTorrentBytes * 4 / 3 + 4096)
                let given = [body.magnet != nil, body.url != nil, body.torrent != nil].filter { $0 }.count
                guard given == 1 else { throw APIError.badRequest("give exactly one of magnet, url and torrent") }
                if let m = body.magnet { source = .magnet(m) }
                else if let u = body.url { source = .url(u) }
                else {
                    guard let data = Data(base64Encoded: body.torrent!, options: .ignoreUnknownCharacters) else {
                        throw APIError.badRequest("torrent: expected the .torrent file in base64")
                    }
                    source = .torrentFile([UInt8](data))
                }
                options.savePath = body.savePath
                options.paused = body.paused ?? false
                options.sequential = body.sequential ?? false
                options.category = body.category
                options.tags = body.tags ?? []
            }
            return try JSON.response(try await session.add(source, options: options), status: .created)
        }

        api.get("torrents/:id") { _, context in
            try JSON.response(try await session.detail(context.parameters.require("id")))
        }

        api.delete("torrents/:id") { request, context -> Response in
            let delete = request.uri.queryParameters.get("delete_data").map { Self.truthy($0) } ?? false
            try await session.remove(context.parameters.require("id"), deleteData: delete)
            return Response(status: .noContent)
        }

        api.post("torrents/:id/pause") { _, context in
            try JSON.response(try await session.pause(context.parameters.require("id")))
        }
        api.post("torrents/:id/resume") { _, context in
            try JSON.response(try await session.resume(context.parameters.require("id")))
        }
        api.post("torrents/:id/recheck") { _, context in
            try JSON.response(try await session.recheck(context.parameters.require("id")), status: .accepted)
        }
        api.post("torrents/:id/move") { request, context in
            let body = try await JSON.decode(MoveRequest.self, from: request)
            return try JSON.response(try await session.move(context.parameters.require("id"), to: body.savePath))
        }
        api.patch("torrents/:id") { request, context in
            let patch = try await JSON.decode(TorrentPatch.self, from: request)
            return try JSON.response(try await session.update(context.parameters.require("id"), patch.update))
        }
        api.put("torrents/:id/files") { request, context in
            let body = try await JSON.decode(PrioritiesRequest.self, from: request)
            var priorities: [Int: FilePriority] = [:]
            for e in body.priorities { priorities[e.index] = e.priority }
            return try JSON.response(try await session.setFilePriorities(context.parameters.require("id"), priorities))
        }
        api.post("torrents/:id/trackers") { request, context in
            let body = try await JSON.decode(TrackerRequest.self, from: request)
            return try JSON.response(try await session.addTracker(context.parameters.require("id"), url: body.url, tier: body.tier))
        }
        api.delete("torrents/:id/trackers") { request, context in
            guard let url = request.uri.queryParameters.get("url") else { throw APIError.badRequest("missing ?url=") }
            return try JSON.response(try await session.removeTracker(context.parameters.require("id"), url: url))
        }
        api.get("torrents/:id/files/:index/stream") { request, context in
            guard let index = Int(try context.parameters.require("index")) else {
                throw APIError.notFound("the file index must be a number")
            }
            return try await Self.stream(request, session: session, id: context.parameters.require("id"), index: index)
        }

        api.get("session") { _, _ in try JSON.response(await session.stats()) }
        api.get("settings") { _, _ in try JSON.response(await session.currentSettings()) }
        api.patch("settings") { request, _ in
            let patch = try await JSON.decode(SettingsPatch.self, from: request)
            var s = await session.currentSettings()
            patch.apply(to: &s)
            return try JSON.response(try await session.updateSettings(s))
        }
        api.get("events") { _, _ in Self.events(session) }

        api.post("login") { request, _ -> Response in
            let body = try await JSON.decode(Login.self, from: request, limit: 4096)
            guard auth.isToken(body.token) else { throw APIError(.unauthorized, "unauthorized", "wrong token") }
            return Self.loggedIn(auth, status: .noContent)
        }
        api.post("logout") { _, _ -> Response in
            Response(status: .noContent,
                headers: [.setCookie: "\(APIAuth.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"])
        }
        api.get("openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: Assets.openAPI)))
        }

        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: await Metrics.render(session))))
        }
        router.get("login") { request, _ -> Response in
            if let code = request.uri.queryParameters.get("code") {
                guard auth.useLoginCode(String(code)) else {
                    throw APIError(.unauthorized, "unauthorized", "this login link was used already or is wrong; "
                        + "restart `peer serve` for a new one, or log in with the token from STATE/api-token")
                }
                var r = Self.loggedIn(auth, status: .seeOther)
                r.headers[.location] = "/"
                return r
            }
            return Assets.page("login.html")
        }
    }

    static func loggedIn(_ auth: APIAuth, status: HTTPResponse.Status) -> Response {
        Response(status: status,
            headers: [.setCookie: "\(APIAuth.cookieName)=\(auth.token); Path=/; HttpOnly; SameSite=Strict"])
    }

    static func truthy(_ s: some StringProtocol) -> Bool { ["1", "true", "yes", "on"].contains(s.lowercased()) }
}
