import Foundation
import HTTPTypes
import Hummingbird
import Metainfo
import MultipartKit
import PeerKit
import Synchronization

/// qBittorrent's Web API v2 under `/api/v2/`: the subset Sonarr, Radarr, Prowlarr and the `qbittorrent-api`
/// Python package call, over the session. `auth/login` with the compat login sets an `SID` cookie; every other
/// call needs it (403 without, as qBittorrent answers, which is also how the *arr tools tell v2 from v1).
/// Parameters come as the query, a form-urlencoded or a multipart body. Both spellings of Web API 2.8
/// (qBittorrent 4.x: `pause`, `paused`, `pausedDL`) and 2.11 (5.x: `stop`, `stopped`, `stoppedDL`) are taken;
/// answers use 2.11's, the version advertised.
final class QBittorrentAPI: Sendable {
    let session: Session
    let gate: CompatGate

    init(session: Session, gate: CompatGate) {
        self.session = session
        self.gate = gate
    }

    static let webAPIVersion = "2.11.2"
    static let appVersion = "v5.0.2"
    /// qBittorrent's "infinite" ETA: 100 days.
    static let noETA: Int64 = 8_640_000
    /// Logged-in sessions by SID, with their last use; one unused for an hour is gone, and the oldest goes
    /// when there are too many.
    private let sids = Mutex<[String: ContinuousClock.Instant]>([:])
    static let sessionTimeout = Duration.seconds(3600)
    static let maxSessions = 256
    /// A few .torrent files of the largest size the session takes, and room for the rest.
    static let bodyLimit = Session.maxTorrentBytes * 4 + 65_536

    /// Calls that only read: GET is enough. Every other needs POST (qBittorrent 5 refuses GET for them too, so
    /// a link in a page cannot change anything).
    static let reads: Set<String> = [
        "app/version", "app/webapiVersion", "app/buildInfo", "app/preferences", "app/defaultSavePath",
        "torrents/info", "torrents/properties", "torrents/files", "torrents/trackers", "torrents/categories",
        "torrents/tags", "torrents/count", "torrents/downloadLimit", "torrents/uploadLimit", "transfer/info",
        "transfer/speedLimitsMode", "transfer/downloadLimit", "transfer/uploadLimit",
    ]

    struct Failure: Error {
        var status: HTTPResponse.Status
        var message: String
        static func bad(_ message: String) -> Failure { Failure(status: .badRequest, message: message) }
        static func conflict(_ message: String) -> Failure { Failure(status: .conflict, message: message) }
        static let notFound = Failure(status: .notFound, message: "Not Found")
    }

    func respond(_ request: Request, _ group: String, _ method: String) async throws -> Response {
        let name = group + "/" + method
        if name == "auth/login" { return try await self.login(request) }
        guard let sid = request.cookies["SID"]?.value, self.alive(sid) else { return Self.text("Forbidden", .forbidden) }
        guard request.method == .post || Self.reads.contains(name) else {
            var headers = HTTPFields()
            headers[.allow] = "POST"
            return Self.text("Method Not Allowed", .methodNotAllowed, headers)
        }
        do {
            let form = try await Form.read(request, limit: Self.bodyLimit)
            return try await self.call(name, form, sid: sid)
        } catch let f as Failure {
            return Self.text(f.message, f.status)
        } catch let e as SessionError {
            let api = APIError(any: e)
            // qBittorrent says 404 for a hash it does not have, 409 for a category it does not know.
            if case .categoryNotFound = e { return Self.text(api.message, .conflict) }
            return Self.text(api.message, api.status)
        }
    }

    // MARK: login

    private func login(_ request: Request) async throws -> Response {
        guard request.method == .post else { return Self.text("Method Not Allowed", .methodNotAllowed) }
        let form = try await Form.read(request, limit: 65_536)
        switch self.gate.check(user: form["username"] ?? "", password: form["password"] ?? "") {
        case .ok:
            let sid = SecretFile.randomHex(16)
            let now = ContinuousClock.now
            self.sids.withLock { s in
                s = s.filter { now - $0.value < Self.sessionTimeout }
                if s.count >= Self.maxSessions, let oldest = s.min(by: { $0.value < $1.value }) { s[oldest.key] = nil }
                s[sid] = now
            }
            var headers = HTTPFields()
            headers[.setCookie] = "SID=\(sid); HttpOnly; SameSite=Strict; path=/"
            return Self.text("Ok.", .ok, headers)
        case .wrong:
            return Self.text("Fails.")
        case .blocked(let seconds):
            var headers = HTTPFields()
            headers[.retryAfter] = String(seconds)
            return Self.text("Your IP address has been banned after too many failed authentication attempts.",
                .forbidden, headers)
        }
    }

    /// Whether `sid` is logged in, renewing its hour if so.
    private func alive(_ sid: String) -> Bool {
        let now = ContinuousClock.now
        return self.sids.withLock { s in
            guard let last = s[sid] else { return false }
            guard now - last < Self.sessionTimeout else {
                s[sid] = nil
                return false
            }
            s[sid] = now
            return true
        }
    }

    // MARK: calls

    private func call(_ name: String, _ f: Form, sid: String) async throws -> Response {
        switch name {
        case "auth/logout":
            self.sids.withLock { _ = $0.removeValue(forKey: sid) }
            return Self.text("")
        case "app/version": return Self.text(Self.appVersion)
        case "app/webapiVersion": return Self.text(Self.webAPIVersion)
        case "app/buildInfo":
            return Self.json(["qt": "none", "libtorrent": "Peer \(Session.version)", "boost": "none",
                "openssl": "none", "zlib": "none", "bitness": 64, "platform": "linux"])
        case "app/defaultSavePath": return Self.text(await self.session.currentSettings().downloadDir)
        case "app/preferences": return Self.json(await self.preferences())
        case "app/setPreferences":
            try await self.setPreferences(f)
            return Self.text("")
        case "torrents/info": return Self.json(try await self.info(f))
        case "torrents/count": return Self.text(String(await self.session.list().count))
        case "torrents/properties": return Self.json(try await self.properties(try await self.one(f)))
        case "torrents/files": return Self.json(try await self.files(try await self.one(f), f))
        case "torrents/trackers":
            let d = try await self.session.detail(try await self.one(f).id)
            return Self.json(d.trackers.map { tr -> [String: Any] in
                ["url": tr.url, "status": 0, "tier": tr.tier, "num_peers": -1, "num_seeds": -1, "num_leeches": -1,
                 "num_downloaded": -1, "msg": ""]
            })
        case "torrents/add": return try await self.add(f)
        case "torrents/delete":
            let delete = Self.bool(f["deleteFiles"]) ?? false
            for t in try await self.chosen(f) { try await self.session.remove(t.id, deleteData: delete) }
        case "torrents/pause", "torrents/stop":
            for t in try await self.chosen(f) { _ = try await self.session.pause(t.id) }
        case "torrents/resume", "torrents/start":
            for t in try await self.chosen(f) { _ = try await self.session.resume(t.id) }
        case "torrents/recheck":
            for t in try await self.chosen(f) { _ = try await self.session.recheck(t.id) }
        case "torrents/setForceStart":
            var u = TorrentUpdate()
            u.forceStart = Self.bool(f["value"]) ?? false
            try await self.update(f, u)
        case "torrents/toggleSequentialDownload":
            for t in try await self.chosen(f) {
                var u = TorrentUpdate()
                u.sequential = !t.sequential
                _ = try await self.session.update(t.id, u)
            }
        case "torrents/toggleFirstLastPiecePrio":
            for t in try await self.chosen(f) {
                var u = TorrentUpdate()
                u.firstLastPiecePriority = !t.firstLastPiecePriority
                _ = try await self.session.update(t.id, u)
            }
        case "torrents/setLocation":
            guard let location = f["location"], !location.isEmpty else { throw Failure.bad("location: a folder") }
            for t in try await self.chosen(f) { _ = try await self.session.move(t.id, to: location) }
        case "torrents/setShareLimits":
            var u = TorrentUpdate()
            // -2: the session's limit, -1: none (which here is the session's too: a torrent has no "never").
            if let r = Self.double(f["ratioLimit"]) { u.ratioLimit = .some(r >= 0 ? r : nil) }
            if let m = Self.int(f["seedingTimeLimit"]) { u.seedTimeLimit = .some(m >= 0 ? Int64(m) * 60 : nil) }
            try await self.update(f, u)
        case "torrents/setDownloadLimit", "torrents/setUploadLimit":
            guard let limit = Self.int(f["limit"]) else { throw Failure.bad("limit: bytes per second") }
            var u = TorrentUpdate()
            let rate: Int64? = limit > 0 ? Int64(limit) : nil
            if name == "torrents/setDownloadLimit" { u.maxDownloadRate = .some(rate) } else { u.maxUploadRate = .some(rate) }
            try await self.update(f, u)
        case "torrents/downloadLimit", "torrents/uploadLimit":
            var out: [String: Any] = [:]
            for t in try await self.chosen(f) {
                let d = try await self.session.detail(t.id)
                out[Self.hash(t)] = (name == "torrents/downloadLimit" ? d.maxDownloadRate : d.maxUploadRate) ?? 0
            }
            return Self.json(out)
        case "torrents/topPrio", "torrents/bottomPrio", "torrents/increasePrio", "torrents/decreasePrio":
            let move: QueueMove = switch name {
            case "torrents/topPrio": .top
            case "torrents/bottomPrio": .bottom
            case "torrents/increasePrio": .up
            default: .down
            }
            try await move.apply(to: try await self.chosen(f).map(\.id), in: self.session)
        case "torrents/filePrio":
            let t = try await self.one(f)
            guard let ids = f["id"], let p = Self.int(f["priority"]) else { throw Failure.bad("id and priority") }
            let priority: FilePriority = p == 0 ? .skip : p >= 6 ? .high : .normal
            var change: [Int: FilePriority] = [:]
            for i in ids.split(separator: "|") {
                guard let index = Int(i) else { throw Failure.bad("id: file indexes separated by |") }
                change[index] = priority
            }
            _ = try await self.session.setFilePriorities(t.id, change)
        case "torrents/categories":
            var out: [String: Any] = [:]
            for c in try await self.session.categories() {
                out[c.name] = ["name": c.name, "savePath": c.savePath ?? ""] as [String: Any]
            }
            return Self.json(out)
        case "torrents/createCategory", "torrents/editCategory":
            guard let category = f["category"], !category.isEmpty else { throw Failure.bad("category: a name") }
            let exists = try await self.session.categories().contains { $0.name == category }
            if name == "torrents/createCategory" && exists { throw Failure.conflict("Unable to create category") }
            if name == "torrents/editCategory" && !exists { throw Failure.conflict("Unable to edit category") }
            let path = f["savePath"].flatMap { $0.isEmpty ? nil : $0 }
            do { try await self.session.createCategory(category, savePath: path) } catch {
                if case .badRequest(let why) = error { throw Failure.conflict(why) }
                throw error
            }
        case "torrents/removeCategories":
            for c in (f["categories"] ?? "").split(separator: "\n") where !c.isEmpty {
                try? await self.session.removeCategory(String(c))
            }
        case "torrents/setCategory":
            let category = f["category"] ?? ""
            let known = try await self.session.categories().contains { $0.name == category }
            if !category.isEmpty && !known { throw Failure.conflict("Incorrect category name") }
            var u = TorrentUpdate()
            u.category = .some(category.isEmpty ? nil : category)
            try await self.update(f, u)
        case "torrents/tags": return Self.json(await self.session.tags())
        case "torrents/addTags", "torrents/removeTags":
            let given = Self.list(f["tags"], ",")
            for t in try await self.chosen(f) {
                var u = TorrentUpdate()
                if name == "torrents/addTags" {
                    u.tags = t.tags + given.filter { !t.tags.contains($0) }
                } else {
                    u.tags = given.isEmpty ? [] : t.tags.filter { !given.contains($0) }
                }
                _ = try await self.session.update(t.id, u)
            }
        case "torrents/deleteTags":
            let given = Self.list(f["tags"], ",")
            for t in await self.session.list() where t.tags.contains(where: given.contains) {
                var u = TorrentUpdate()
                u.tags = t.tags.filter { !given.contains($0) }
                _ = try await self.session.update(t.id, u)
            }
        case "transfer/info":
            let stats = await self.session.stats()
            let s = await self.session.currentSettings()
            return Self.json([
                "dl_info_speed": stats.downloadRate, "dl_info_data": stats.downloaded,
                "up_info_speed": stats.uploadRate, "up_info_data": stats.uploaded,
                "dl_rate_limit": s.maxDownloadRate ?? 0, "up_rate_limit": s.maxUploadRate ?? 0,
                "dht_nodes": stats.dhtNodes, "connection_status": stats.listenPort > 0 ? "connected" : "disconnected",
            ])
        case "transfer/speedLimitsMode": return Self.text("0")
        case "transfer/downloadLimit":
            return Self.text(String(await self.session.currentSettings().maxDownloadRate ?? 0))
        case "transfer/uploadLimit":
            return Self.text(String(await self.session.currentSettings().maxUploadRate ?? 0))
        case "transfer/setDownloadLimit", "transfer/setUploadLimit":
            guard let limit = Self.int(f["limit"]) else { throw Failure.bad("limit: bytes per second") }
            var s = await self.session.currentSettings()
            let rate: Int64? = limit > 0 ? Int64(limit) : nil
            if name == "transfer/setDownloadLimit" { s.maxDownloadRate = rate } else { s.maxUploadRate = rate }
            _ = try await self.session.updateSettings(s)
        default:
            throw Failure.notFound
        }
        return Self.text("")
    }

    /// Applies `u` to every torrent `hashes` names.
    private func update(_ f: Form, _ u: TorrentUpdate) async throws {
        for t in try await self.chosen(f) { _ = try await self.session.update(t.id, u) }
    }

    // MARK: add

    private func add(_ f: Form) async throws -> Response {
        var sources: [TorrentSource] = f.files.map { .torrentFile($0) }
        for line in (f["urls"] ?? "").split(whereSeparator: \.isNewline) {
            let url = line.trimmingCharacters(in: .whitespaces)
            if url.isEmpty { continue }
            if url.lowercased().hasPrefix("magnet:") { sources.append(.magnet(url)) }
            else if url.hasPrefix("http://") || url.hasPrefix("https://") { sources.append(.url(url)) }
            else if url.count == 40 || url.count == 64, url.allSatisfy(\.isHexDigit) {
                sources.append(.magnet("magnet:?xt=urn:\(url.count == 40 ? "btih" : "btmh:1220"):\(url)"))
            } else {
                throw Failure.bad("urls: magnet links and http(s) URLs, one per line")
            }
        }
        guard !sources.isEmpty else { throw Failure.bad("no urls and no torrents") }
        var options = AddOptions()
        options.savePath = f["savepath"].flatMap { $0.isEmpty ? nil : $0 }
        options.category = f["category"].flatMap { $0.isEmpty ? nil : $0 }
        options.tags = Self.list(f["tags"], ",")
        options.paused = Self.bool(f["stopped"]) ?? Self.bool(f["paused"]) ?? false
        options.sequential = Self.bool(f["sequentialDownload"]) ?? false
        options.firstLastPiecePriority = Self.bool(f["firstLastPiecePrio"]) ?? false
        options.forceStart = Self.bool(f["forced"]) ?? false
        if let r = Self.double(f["ratioLimit"]), r >= 0 { options.ratioLimit = r }
        if let m = Self.int(f["seedingTimeLimit"]), m >= 0 { options.seedTimeLimit = Int64(m) * 60 }
        if let l = Self.int(f["dlLimit"]), l > 0 { options.maxDownloadRate = Int64(l) }
        if let l = Self.int(f["upLimit"]), l > 0 { options.maxUploadRate = Int64(l) }
        let top = Self.bool(f["addToTopOfQueue"]) ?? false
        var added = 0
        for source in sources {
            // As qBittorrent: "Ok." when any was added; one that fails (a duplicate too) only counts as not added.
            guard let t = try? await self.session.add(source, options: options) else { continue }
            added += 1
            if top { try await QueueMove.top.apply(to: [t.id], in: self.session) }
        }
        return Self.text(added > 0 ? "Ok." : "Fails.")
    }

    // MARK: reading

    private func preferences() async -> [String: Any] {
        let s = await self.session.currentSettings()
        let stats = await self.session.stats()
        return [
            "save_path": s.downloadDir, "temp_path_enabled": false, "temp_path": "", "auto_tmm_enabled": false,
            "create_subfolder_enabled": true, "start_paused_enabled": false, "add_stopped_enabled": false,
            "dl_limit": s.maxDownloadRate ?? 0, "up_limit": s.maxUploadRate ?? 0,
            "max_ratio_enabled": s.seedRatioLimit != nil, "max_ratio": s.seedRatioLimit ?? -1,
            "max_seeding_time_enabled": s.seedTimeLimit != nil, "max_seeding_time": s.seedTimeLimit.map { $0 / 60 } ?? -1,
            "max_inactive_seeding_time_enabled": false, "max_inactive_seeding_time": -1,
            // 0: stop the torrent, which is what the session does at a limit.
            "max_ratio_act": 0, "queueing_enabled": true, "max_active_downloads": s.maxActiveDownloads,
            "max_active_uploads": -1, "max_active_torrents": -1, "dht": true, "pex": true, "lsd": true,
            "upnp": false, "encryption": 0, "listen_port": stats.listenPort, "locale": "en", "web_ui_username": self.gate.login.user,
            "bypass_local_auth": false, "incomplete_files_ext": false, "preallocate_all": false,
        ]
    }

    private func setPreferences(_ f: Form) async throws {
        guard let text = f["json"], let p = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { throw Failure.bad("json: an object of preferences") }
        var s = await self.session.currentSettings()
        if let path = p["save_path"] as? String { s.downloadDir = path }
        if let l = Self.int(p["dl_limit"]) { s.maxDownloadRate = l > 0 ? Int64(l) : nil }
        if let l = Self.int(p["up_limit"]) { s.maxUploadRate = l > 0 ? Int64(l) : nil }
        let ratioOn = Self.bool(p["max_ratio_enabled"]) ?? (s.seedRatioLimit != nil)
        s.seedRatioLimit = ratioOn ? (Self.double(p["max_ratio"]).flatMap { $0 >= 0 ? $0 : nil } ?? s.seedRatioLimit ?? 2) : nil
        let timeOn = Self.bool(p["max_seeding_time_enabled"]) ?? (s.seedTimeLimit != nil)
        s.seedTimeLimit = timeOn
            ? (Self.int(p["max_seeding_time"]).flatMap { $0 >= 0 ? Int64($0) * 60 : nil } ?? s.seedTimeLimit ?? 1440 * 60)
            : nil
        if let n = Self.int(p["max_active_downloads"]), n > 0 { s.maxActiveDownloads = n }
        _ = try await self.session.updateSettings(s)
    }

    private func info(_ f: Form) async throws -> [[String: Any]] {
        var torrents = await self.session.list()
        if let wanted = f["hashes"], wanted != "all" {
            let hashes = Set(Self.list(wanted, "|").map { $0.lowercased() })
            torrents = torrents.filter { Self.matches($0, hashes) }
        }
        // An empty `category` means "without one"; absent, any.
        if let category = f["category"] { torrents = torrents.filter { ($0.category ?? "") == category } }
        if let tag = f["tag"] { torrents = torrents.filter { tag.isEmpty ? $0.tags.isEmpty : $0.tags.contains(tag) } }
        let settings = await self.session.currentSettings()
        var rows: [[String: Any]] = []
        for t in torrents {
            let d = try? await self.session.detail(t.id)
            let row = self.row(t, d, settings)
            if let filter = f["filter"], !Self.passes(row, t, filter) { continue }
            rows.append(row)
        }
        if let key = f["sort"] {
            rows.sort { a, b in Self.less(a[key], b[key]) }
            if Self.bool(f["reverse"]) == true { rows.reverse() }
        }
        rows = Array(rows.dropFirst(max(0, Self.int(f["offset"]) ?? 0)))
        if let limit = Self.int(f["limit"]), limit > 0 { rows = Array(rows.prefix(limit)) }
        return rows
    }

    /// One row of `torrents/info`, with qBittorrent's keys and units (bytes, bytes/s, seconds since 1970;
    /// limits in minutes; -1 for never or none, -2 for "the session's").
    private func row(_ t: TorrentStatus, _ d: TorrentDetail?, _ settings: SessionSettings) -> [String: Any] {
        let epoch = { (date: Date?) -> Int64 in date.map { Int64($0.timeIntervalSince1970) } ?? -1 }
        let now = Date()
        let complete = t.progress >= 1 && t.state != .metadata
        let seeds = d?.peers.filter { $0.progress >= 1 }.count ?? 0
        let ratioLimit = d?.ratioLimit
        let seedLimit = d?.seedTimeLimit
        let active = t.downloadRate > 0 || t.uploadRate > 0
        let tracker = d?.trackers.first?.url ?? ""
        return [
            "hash": Self.hash(t), "infohash_v1": t.infoHashV1 ?? "", "infohash_v2": t.infoHashV2 ?? "",
            "name": t.name, "size": t.size, "total_size": t.size, "progress": t.progress,
            "eta": t.eta ?? Self.noETA, "state": Self.state(t), "category": t.category ?? "",
            "tags": t.tags.joined(separator: ", "), "save_path": t.savePath, "download_path": "",
            "content_path": Self.contentPath(t, d), "root_path": Self.contentPath(t, d),
            "ratio": Self.ratio(t), "ratio_limit": ratioLimit ?? -2,
            "max_ratio": ratioLimit ?? settings.seedRatioLimit ?? -1,
            "seeding_time": d?.seedingSeconds ?? 0, "seeding_time_limit": seedLimit.map { $0 / 60 } ?? -2,
            "max_seeding_time": (seedLimit ?? settings.seedTimeLimit).map { $0 / 60 } ?? -1,
            "inactive_seeding_time_limit": -2, "max_inactive_seeding_time": -1,
            "added_on": epoch(t.addedAt), "completion_on": epoch(t.completedAt),
            "last_activity": active ? epoch(now) : epoch(t.completedAt ?? t.addedAt),
            "seen_complete": complete ? epoch(t.completedAt ?? now) : -1,
            "time_active": Int64((t.paused ? (t.completedAt ?? now) : now).timeIntervalSince(t.addedAt)),
            "amount_left": max(0, t.size - t.haveBytes), "completed": t.haveBytes,
            "downloaded": t.downloaded, "uploaded": t.uploaded, "downloaded_session": t.downloaded,
            "uploaded_session": t.uploaded, "dlspeed": t.downloadRate, "upspeed": t.uploadRate,
            "dl_limit": d?.maxDownloadRate ?? 0, "up_limit": d?.maxUploadRate ?? 0,
            "num_seeds": seeds, "num_leechs": t.peers - seeds, "num_complete": -1, "num_incomplete": -1,
            "priority": complete ? 0 : (d?.queuePosition ?? 0) + 1, "force_start": t.forceStart,
            "seq_dl": t.sequential, "f_l_piece_prio": t.firstLastPiecePriority, "super_seeding": false,
            "auto_tmm": false, "availability": -1, "tracker": tracker, "trackers_count": d?.trackers.count ?? 0,
            "magnet_uri": d?.magnet ?? "magnet:?xt=urn:btih:\(Self.hash(t))&dn=\(Self.escape(t.name))",
            "has_metadata": t.state != .metadata, "private": false, "comment": "", "popularity": 0, "reannounce": 0,
        ]
    }

    private func properties(_ t: TorrentStatus) async throws -> [String: Any] {
        let d = try await self.session.detail(t.id)
        let m = (try? await self.session.torrentFile(t.id)).flatMap { try? TorrentMetainfo(bytes: $0) }
        let epoch = { (date: Date?) -> Int64 in date.map { Int64($0.timeIntervalSince1970) } ?? -1 }
        let elapsed = max(1, Int64(Date().timeIntervalSince(t.addedAt)))
        let seeds = d.peers.filter { $0.progress >= 1 }.count
        return [
            "hash": Self.hash(t), "infohash_v1": t.infoHashV1 ?? "", "infohash_v2": t.infoHashV2 ?? "",
            "name": t.name, "save_path": t.savePath, "download_path": "", "total_size": t.size,
            "creation_date": m?.creationDate ?? -1, "created_by": m?.createdBy ?? "", "comment": m?.comment ?? "",
            "is_private": m?.isPrivate ?? false, "has_metadata": m != nil, "piece_size": d.pieces?.length ?? -1,
            "pieces_num": d.pieces?.count ?? -1, "pieces_have": d.pieces?.have ?? 0, "total_wasted": 0,
            "total_uploaded": t.uploaded, "total_uploaded_session": t.uploaded, "total_downloaded": t.downloaded,
            "total_downloaded_session": t.downloaded, "up_limit": d.maxUploadRate ?? -1,
            "dl_limit": d.maxDownloadRate ?? -1, "time_elapsed": elapsed, "seeding_time": d.seedingSeconds,
            "nb_connections": t.peers, "nb_connections_limit": 100, "share_ratio": Self.ratio(t),
            "addition_date": epoch(t.addedAt), "completion_date": epoch(t.completedAt),
            "dl_speed_avg": t.downloaded / elapsed, "dl_speed": t.downloadRate,
            "up_speed_avg": t.uploaded / elapsed, "up_speed": t.uploadRate, "eta": t.eta ?? Self.noETA,
            "last_seen": t.progress >= 1 ? epoch(Date()) : -1, "peers": t.peers - seeds, "peers_total": -1,
            "seeds": seeds, "seeds_total": -1, "reannounce": 0, "popularity": 0,
        ]
    }

    private func files(_ t: TorrentStatus, _ f: Form) async throws -> [[String: Any]] {
        let d = try await self.session.detail(t.id)
        let map = (try? await self.session.torrentFile(t.id)).flatMap { try? TorrentMetainfo(bytes: $0) }.map(PieceMap.init)
        let only = f["indexes"].map { Set(Self.list($0, "|").compactMap { Int($0) }) }
        return d.files.filter { !$0.padding && only?.contains($0.index) != false }.map { file -> [String: Any] in
            let pieces = map?.pieces(ofFile: file.index) ?? 0..<0
            return ["index": file.index, "name": file.path, "size": file.length, "progress": file.progress,
                    "priority": file.priority == .skip ? 0 : file.priority == .high ? 6 : 1,
                    "is_seed": file.progress >= 1, "piece_range": [pieces.lowerBound, max(pieces.lowerBound, pieces.upperBound - 1)],
                    "availability": -1]
        }
    }

    // MARK: mapping

    /// qBittorrent's hash of a torrent: the v1 info-hash, or a v2 hash cut to 40 digits (as qBittorrent does).
    static func hash(_ t: TorrentStatus) -> String { t.infoHashV1 ?? String(t.id.prefix(40)) }

    static func matches(_ t: TorrentStatus, _ hashes: Set<String>) -> Bool {
        hashes.contains(Self.hash(t)) || hashes.contains(t.id) || t.infoHashV2.map(hashes.contains) == true
    }

    /// Web API 2.11's state names (2.8 said `paused` where these say `stopped`).
    static func state(_ t: TorrentStatus) -> String {
        let up = t.progress >= 1
        switch t.state {
        case .error: return "error"
        case .paused: return up ? "stoppedUP" : "stoppedDL"
        case .queued: return up ? "queuedUP" : "queuedDL"
        case .checking: return up ? "checkingUP" : "checkingDL"
        case .metadata: return t.forceStart ? "forcedMetaDL" : "metaDL"
        case .downloading: return t.forceStart ? "forcedDL" : t.downloadRate > 0 ? "downloading" : "stalledDL"
        case .seeding: return t.forceStart ? "forcedUP" : t.uploadRate > 0 ? "uploading" : "stalledUP"
        }
    }

    /// `torrents/info?filter=`: both spellings of the paused filters.
    static func passes(_ row: [String: Any], _ t: TorrentStatus, _ filter: String) -> Bool {
        let state = row["state"] as? String ?? ""
        let active = t.downloadRate > 0 || t.uploadRate > 0
        switch filter {
        case "all": return true
        case "downloading": return ["downloading", "metaDL", "forcedMetaDL", "stalledDL", "checkingDL", "stoppedDL",
            "queuedDL", "forcedDL"].contains(state)
        case "seeding": return ["uploading", "stalledUP", "checkingUP", "queuedUP", "forcedUP"].contains(state)
        case "completed": return t.progress >= 1
        case "paused", "stopped": return t.paused
        case "resumed", "running": return !t.paused
        case "active": return active
        case "inactive": return !active
        case "stalled": return state == "stalledDL" || state == "stalledUP"
        case "stalled_uploading": return state == "stalledUP"
        case "stalled_downloading": return state == "stalledDL"
        case "checking": return state.hasPrefix("checking")
        case "errored": return state == "error"
        default: return true
        }
    }

    static func ratio(_ t: TorrentStatus) -> Double {
        let base = t.downloaded > 0 ? t.downloaded : t.haveBytes
        return base > 0 ? Double(t.uploaded) / Double(base) : 0
    }

    /// Where the torrent's content is: its one file, or its folder.
    static func contentPath(_ t: TorrentStatus, _ d: TorrentDetail?) -> String {
        let real = d?.files.filter { !$0.padding } ?? []
        guard let first = real.first else { return t.savePath + "/" + t.name }
        let top = first.path.split(separator: "/").first.map(String.init) ?? t.name
        return t.savePath + "/" + (real.count == 1 && !first.path.contains("/") ? first.path : top)
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }

    static func less(_ a: Any?, _ b: Any?) -> Bool {
        if let x = a as? String, let y = b as? String { return x < y }
        if let x = a as? Bool, let y = b as? Bool { return !x && y }
        if let x = Self.double(a), let y = Self.double(b) { return x < y }
        return false
    }

    /// The one torrent `hash` names (404 as qBittorrent's when none).
    private func one(_ f: Form) async throws -> TorrentStatus {
        guard let hash = f["hash"]?.lowercased() else { throw Failure.bad("hash: the torrent's info-hash") }
        guard let t = await self.session.list().first(where: { Self.matches($0, [hash]) }) else { throw Failure.notFound }
        return t
    }

    /// The torrents `hashes` names: "all", or info-hashes separated by `|`.
    private func chosen(_ f: Form) async throws -> [TorrentStatus] {
        guard let wanted = f["hashes"] ?? f["hash"] else { throw Failure.bad("hashes: info-hashes separated by |, or all") }
        let all = await self.session.list()
        if wanted == "all" { return all }
        let hashes = Set(Self.list(wanted, "|").map { $0.lowercased() })
        return all.filter { Self.matches($0, hashes) }
    }

    // MARK: helpers

    static func list(_ text: String?, _ separator: Character) -> [String] {
        (text ?? "").split(separator: separator).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func int(_ v: Any?) -> Int? { TransmissionRPC.int(v) }
    static func double(_ v: Any?) -> Double? { TransmissionRPC.double(v) }
    static func bool(_ v: Any?) -> Bool? { TransmissionRPC.bool(v) }

    static func text(_ body: String, _ status: HTTPResponse.Status = .ok, _ headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "text/plain; charset=UTF-8"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func json(_ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A request's parameters, as qBittorrent takes them: the query's, then the body's (form-urlencoded or
/// multipart/form-data, where the file parts are .torrent files).
struct Form {
    var fields: [String: String] = [:]
    var files: [[UInt8]] = []

    subscript(_ name: String) -> String? { self.fields[name] }

    static func read(_ request: Request, limit: Int) async throws -> Form {
        var form = Form()
        form.readURLEncoded(request.uri.query ?? "")
        guard request.method == .post else { return form }
        let body = try await request.body.collect(upTo: limit)
        let type = request.headers[.contentType] ?? ""
        if type.lowercased().hasPrefix("multipart/form-data") {
            guard let boundary = Self.parameter("boundary", of: type), !boundary.isEmpty, boundary.count <= 200 else {
                throw QBittorrentAPI.Failure.bad("a multipart body needs a boundary")
            }
            try form.readMultipart(body, boundary: boundary)
        } else {
            form.readURLEncoded(String(buffer: body))
        }
        return form
    }

    mutating func readURLEncoded(_ text: String) {
        let decode = { (s: Substring) -> String in
            let spaced = s.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            self.fields[decode(kv[0])] = kv.count > 1 ? decode(kv[1]) : ""
        }
    }

    mutating func readMultipart(_ body: ByteBuffer, boundary: String) throws {
        let parser = MultipartParser(boundary: boundary)
        var name: String?
        var isFile = false
        var data: [UInt8] = []
        var parts: [(name: String?, isFile: Bool, data: [UInt8])] = []
        parser.onHeader = { field, value in
            guard field.lowercased() == "content-disposition" else { return }
            name = Self.parameter("name", of: value)
            isFile = Self.parameter("filename", of: value) != nil
        }
        parser.onBody = { buffer in data += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        parser.onPartComplete = {
            parts.append((name, isFile, data))
            (name, isFile, data) = (nil, false, [])
        }
        do { try parser.execute(body) } catch { throw QBittorrentAPI.Failure.bad("the multipart body does not parse") }
        // As qBittorrent: every part that is a file is a .torrent, whatever its name (`torrents` in the docs,
        // the file's own name in some clients).
        for part in parts {
            if part.isFile || part.name == "torrents" { self.files.append(part.data) } else if let partName = part.name {
                self.fields[partName] = String(decoding: part.data, as: UTF8.self)
            }
        }
    }

    /// A `key=value` parameter of a header value (`multipart/form-data; boundary=x`, `form-data; name="y"`).
    static func parameter(_ key: String, of value: String) -> String? {
        for piece in value.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var v = kv[1].trimmingCharacters(in: .whitespaces)
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }
}
