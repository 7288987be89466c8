import Foundation
import HTTPTypes
import Hummingbird
import Metainfo
import PeerKit
import Synchronization

/// Transmission's RPC at `/transmission/rpc` (its spec, rpc-version 17): what `transmission-remote`, the
/// `transmission-rpc` Python package and the *arr tools call, over the session. Basic auth with the compat login,
/// then the `X-Transmission-Session-Id` handshake (409 carries the id), then `{"method", "arguments", "tag"}` in
/// and `{"result", "arguments", "tag"}` out. Torrents get small integer ids, stable while the daemon runs;
/// labels are the torrents' tags.
final class TransmissionRPC: Sendable {
    let session: Session
    let gate: CompatGate
    let numbers: TorrentNumbers

    init(session: Session, gate: CompatGate, numbers: TorrentNumbers) {
        self.session = session
        self.gate = gate
        self.numbers = numbers
    }
    /// Changes with every start, as Transmission's does.
    let sessionID = SecretFile.randomHex(24)
    /// Transmission's `start-added-torrents` (`transmission-remote --start-paused` sets it false): kept while the
    /// daemon runs.
    let startAdded = Mutex(true)

    static let sessionHeader = HTTPField.Name("X-Transmission-Session-Id")!
    /// A base64 .torrent of the largest size the session takes, and room for the rest.
    static let bodyLimit = Session.maxTorrentBytes * 4 / 3 + 65_536
    static let rpcVersion = 17
    static let version = "4.0.6 (Peer \(Session.version))"

    func respond(_ request: Request) async throws -> Response {
        switch Self.credentials(request.headers[.authorization]).map({ self.gate.check(user: $0.0, password: $0.1) }) {
        case .ok?: break
        case .blocked(let seconds)?:
            var headers = HTTPFields()
            headers[.retryAfter] = String(seconds)
            return Self.page(.tooManyRequests, "Too many failed logins; try again later.", headers)
        default:
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Basic realm=\"Transmission\""
            return Self.page(.unauthorized, "Unauthorized User", headers)
        }
        guard request.headers[Self.sessionHeader] == self.sessionID else {
            var headers = HTTPFields()
            headers[Self.sessionHeader] = self.sessionID
            return Self.page(.conflict, "Your request had an invalid session-id header. To fix this, follow these steps: "
                + "read the \(Self.sessionHeader.rawName) header from this answer and send it with every request.", headers)
        }
        let body = try await request.body.collect(upTo: Self.bodyLimit)
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let method = object["method"] as? String
        else { return Self.answer(["result": "the request is not a JSON object with a method"]) }
        var out: [String: Any] = [:]
        if let tag = object["tag"] { out["tag"] = tag }
        do {
            out["arguments"] = try await self.call(method, object["arguments"] as? [String: Any] ?? [:])
            out["result"] = "success"
        } catch let error as SessionError {
            out["arguments"] = [String: Any]()
            out["result"] = error.description
        } catch let error as Refusal {
            out["arguments"] = [String: Any]()
            out["result"] = error.message
        }
        return Self.answer(out)
    }

    struct Refusal: Error { var message: String }

    // MARK: methods

    private func call(_ method: String, _ a: [String: Any]) async throws -> [String: Any] {
        switch method {
        case "session-get": return try await self.sessionGet(a)
        case "session-set": return try await self.sessionSet(a)
        case "session-stats": return await self.sessionStats()
        case "torrent-get": return try await self.torrentGet(a)
        case "torrent-add": return try await self.torrentAdd(a)
        case "torrent-set": return try await self.torrentSet(a)
        case "torrent-start":
            for t in await self.select(a) { _ = try await self.session.resume(t.id) }
        case "torrent-start-now":  // past the download queue
            var u = TorrentUpdate()
            u.forceStart = true
            for t in await self.select(a) { _ = try await self.session.update(t.id, u) }
        case "torrent-stop":
            for t in await self.select(a) { _ = try await self.session.pause(t.id) }
        case "torrent-verify":
            for t in await self.select(a) { _ = try await self.session.recheck(t.id) }
        case "torrent-remove":
            let delete = Self.bool(a["delete-local-data"]) ?? false
            for t in await self.select(a) { try await self.session.remove(t.id, deleteData: delete) }
        case "torrent-set-location":
            guard let location = a["location"] as? String else { throw Refusal(message: "location: a folder") }
            for t in await self.select(a) { _ = try await self.session.move(t.id, to: location) }
        case "queue-move-top", "queue-move-bottom", "queue-move-up", "queue-move-down":
            try await self.queueMove(method, a)
        case "torrent-reannounce", "blocklist-update":
            break  // announces run on their own schedule; there is no block list
        case "port-test": return ["port-is-open": false, "ip_protocol": "ipv4"]
        case "free-space":
            guard let path = a["path"] as? String else { throw Refusal(message: "path: a folder") }
            let attributes = try? FileManager.default.attributesOfFileSystem(forPath: path)
            guard let free = (attributes?[.systemFreeSize] as? NSNumber)?.int64Value else {
                throw Refusal(message: "no such folder: \(path)")
            }
            return ["path": path, "size-bytes": free, "total_size": free]
        default: throw Refusal(message: "method name not recognized")
        }
        return [:]
    }

    private func sessionGet(_ a: [String: Any]) async throws -> [String: Any] {
        let s = await self.session.currentSettings()
        let stats = await self.session.stats()
        let kib = { (rate: Int64?) -> Int64 in (rate ?? 0) / 1024 }
        var all: [String: Any] = [
            "rpc-version": Self.rpcVersion, "rpc-version-minimum": 14, "rpc-version-semver": "5.3.0",
            "version": Self.version, "session-id": self.sessionID, "download-dir": s.downloadDir,
            "incomplete-dir-enabled": false, "incomplete-dir": s.downloadDir,
            "speed-limit-down": kib(s.maxDownloadRate), "speed-limit-down-enabled": s.maxDownloadRate != nil,
            "speed-limit-up": kib(s.maxUploadRate), "speed-limit-up-enabled": s.maxUploadRate != nil,
            "alt-speed-enabled": false, "alt-speed-down": 0, "alt-speed-up": 0,
            "seedRatioLimit": s.seedRatioLimit ?? 0, "seedRatioLimited": s.seedRatioLimit != nil,
            "idle-seeding-limit": (s.seedTimeLimit ?? 0) / 60, "idle-seeding-limit-enabled": false,
            "download-queue-enabled": true, "download-queue-size": s.maxActiveDownloads,
            "seed-queue-enabled": false, "seed-queue-size": 0, "queue-stalled-enabled": false,
            "peer-port": stats.listenPort, "peer-port-random-on-start": false, "port-forwarding-enabled": false,
            "dht-enabled": true, "pex-enabled": true, "lpd-enabled": true, "utp-enabled": false,
            "encryption": "preferred", "peer-limit-global": 500, "peer-limit-per-torrent": 100,
            "start-added-torrents": self.startAdded.withLock { $0 }, "rename-partial-files": false, "trash-original-torrent-files": false,
            "config-dir": "", "units": [
                "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": 1000,
                "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": 1000,
                "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024,
            ] as [String: Any],
        ]
        if let fields = a["fields"] as? [String] { all = all.filter { fields.contains($0.key) } }
        return all
    }

    private func sessionSet(_ a: [String: Any]) async throws -> [String: Any] {
        var s = await self.session.currentSettings()
        if let dir = a["download-dir"] as? String { s.downloadDir = dir }
        let rate = { (limit: String, enabled: String, current: Int64?) -> Int64? in
            let on = Self.bool(a[enabled]) ?? (current != nil)
            let kib = Self.int(a[limit]).map { Int64($0) * 1024 } ?? current
            return on ? kib.flatMap { $0 > 0 ? $0 : nil } : nil
        }
        s.maxDownloadRate = rate("speed-limit-down", "speed-limit-down-enabled", s.maxDownloadRate)
        s.maxUploadRate = rate("speed-limit-up", "speed-limit-up-enabled", s.maxUploadRate)
        if let on = Self.bool(a["seedRatioLimited"]) {
            s.seedRatioLimit = on ? (Self.double(a["seedRatioLimit"]) ?? s.seedRatioLimit ?? 2) : nil
        } else if let r = Self.double(a["seedRatioLimit"]), s.seedRatioLimit != nil {
            s.seedRatioLimit = r
        }
        if let n = Self.int(a["download-queue-size"]) { s.maxActiveDownloads = max(1, n) }
        if let start = Self.bool(a["start-added-torrents"]) { self.startAdded.withLock { $0 = start } }
        _ = try await self.session.updateSettings(s)
        return [:]
    }

    private func sessionStats() async -> [String: Any] {
        let stats = await self.session.stats()
        let list = await self.session.list()
        let paused = list.filter { $0.state == .paused }.count
        let figures: [String: Any] = [
            "uploadedBytes": stats.uploaded, "downloadedBytes": stats.downloaded, "filesAdded": list.count,
            "sessionCount": 1, "secondsActive": stats.uptime,
        ]
        return [
            "activeTorrentCount": stats.active, "pausedTorrentCount": paused, "torrentCount": stats.torrents,
            "downloadSpeed": stats.downloadRate, "uploadSpeed": stats.uploadRate,
            "cumulative-stats": figures, "current-stats": figures,
        ]
    }

    private func torrentAdd(_ a: [String: Any]) async throws -> [String: Any] {
        let source: TorrentSource
        if let meta = a["metainfo"] as? String {
            guard let bytes = Data(base64Encoded: meta, options: .ignoreUnknownCharacters) else {
                throw Refusal(message: "metainfo: expected a .torrent file in base64")
            }
            source = .torrentFile([UInt8](bytes))
        } else if let name = a["filename"] as? String {
            if name.lowercased().hasPrefix("magnet:") { source = .magnet(name) }
            else if name.hasPrefix("http://") || name.hasPrefix("https://") { source = .url(name) }
            else { throw Refusal(message: "filename: a magnet link or an http(s) URL (a file on this host is not read)") }
        } else {
            throw Refusal(message: "no filename or metainfo")
        }
        let paused = Self.bool(a["paused"]) ?? !self.startAdded.withLock { $0 }
        let options = AddOptions(savePath: a["download-dir"] as? String, paused: paused,
            tags: a["labels"] as? [String] ?? [])
        let added: Result<TorrentStatus, SessionError>
        do { added = .success(try await self.session.add(source, options: options)) } catch { added = .failure(error) }
        switch added {
        case .success(let t): return ["torrent-added": self.short(t)]
        case .failure(.alreadyAdded(let id)): return ["torrent-duplicate": self.short(try await self.session.status(id))]
        case .failure(let error): throw error
        }
    }

    private func short(_ t: TorrentStatus) -> [String: Any] {
        ["id": self.numbers.number(t.id), "name": t.name, "hashString": Self.hash(t)]
    }

    private func torrentSet(_ a: [String: Any]) async throws -> [String: Any] {
        for t in await self.select(a) {
            var u = TorrentUpdate()
            if let mode = Self.int(a["seedRatioMode"]) {
                // 0: the session's limit; 1: this torrent's own; 2: none (the session's, when it has none).
                u.ratioLimit = .some(mode == 1 ? Self.double(a["seedRatioLimit"]) ?? 2 : nil)
            } else if let r = Self.double(a["seedRatioLimit"]) {
                u.ratioLimit = .some(r)
            }
            if let labels = a["labels"] as? [String] { u.tags = labels }
            if let on = Self.bool(a["downloadLimited"]) {
                u.maxDownloadRate = .some(on ? Self.int(a["downloadLimit"]).map { Int64($0) * 1024 } : nil)
            } else if let kib = Self.int(a["downloadLimit"]) {
                u.maxDownloadRate = .some(Int64(kib) * 1024)
            }
            if let on = Self.bool(a["uploadLimited"]) {
                u.maxUploadRate = .some(on ? Self.int(a["uploadLimit"]).map { Int64($0) * 1024 } : nil)
            } else if let kib = Self.int(a["uploadLimit"]) {
                u.maxUploadRate = .some(Int64(kib) * 1024)
            }
            if let n = Self.int(a["queuePosition"]) { u.queuePosition = n }
            _ = try await self.session.update(t.id, u)
            var priorities: [Int: FilePriority] = [:]
            for (key, priority) in [("files-unwanted", FilePriority.skip), ("files-wanted", .normal),
                ("priority-low", .normal), ("priority-normal", .normal), ("priority-high", .high)]
            {
                for index in a[key] as? [Any] ?? [] { if let i = Self.int(index) { priorities[i] = priority } }
            }
            if !priorities.isEmpty { _ = try await self.session.setFilePriorities(t.id, priorities) }
            if let location = a["location"] as? String { _ = try await self.session.move(t.id, to: location) }
        }
        return [:]
    }

    private func queueMove(_ method: String, _ a: [String: Any]) async throws {
        let move: QueueMove = switch method {
        case "queue-move-top": .top
        case "queue-move-bottom": .bottom
        case "queue-move-up": .up
        default: .down
        }
        try await move.apply(to: await self.select(a).map(\.id), in: self.session)
    }

    // MARK: torrent-get

    /// The fields that need the torrent's detail (files, peers, pieces…), not only its summary.
    private static let detailFields: Set<String> = [
        "files", "fileStats", "priorities", "wanted", "peers", "peersSendingToUs", "peersGettingFromUs", "trackers",
        "trackerStats", "pieceCount", "pieceSize", "magnetLink", "seedRatioLimit", "seedRatioMode", "secondsSeeding",
        "queuePosition", "downloadLimit", "downloadLimited", "uploadLimit", "uploadLimited", "fileCount", "file-count",
        "isFinished",
    ]

    /// The fields read from the .torrent file.
    private static let metainfoFields: Set<String> = ["creator", "comment", "dateCreated", "isPrivate"]

    private func torrentGet(_ a: [String: Any]) async throws -> [String: Any] {
        guard let fields = a["fields"] as? [String] else { throw Refusal(message: "no fields") }
        let needDetail = !Self.detailFields.isDisjoint(with: fields)
        let settings = await self.session.currentSettings()
        var rows: [[String: Any]] = []
        for t in await self.select(a) {
            var d: TorrentDetail?
            if needDetail { d = try? await self.session.detail(t.id) }
            var all = self.fields(t, d, settings)
            if !Self.metainfoFields.isDisjoint(with: fields),
                let m = (try? await self.session.torrentFile(t.id)).flatMap({ try? TorrentMetainfo(bytes: $0) })
            {
                all["creator"] = m.createdBy ?? ""
                all["comment"] = m.comment ?? ""
                all["dateCreated"] = m.creationDate ?? 0
                all["isPrivate"] = m.isPrivate
            }
            rows.append(all.filter { fields.contains($0.key) })
        }
        return ["torrents": rows]
    }

    /// Every field this RPC knows, for one torrent (the detail's only when `d` is given).
    private func fields(_ t: TorrentStatus, _ d: TorrentDetail?, _ settings: SessionSettings) -> [String: Any] {
        let left = max(0, t.size - t.haveBytes)
        let now = Date()
        let epoch = { (date: Date?) -> Int64 in date.map { Int64($0.timeIntervalSince1970) } ?? 0 }
        let base = t.downloaded > 0 ? t.downloaded : t.haveBytes
        let ratio: Double = base > 0 ? Double(t.uploaded) / Double(base) : (t.uploaded > 0 ? -2 : -1)
        let active = t.downloadRate > 0 || t.uploadRate > 0
        // Added paused and never started: Transmission says 0 for its start and activity.
        let everRan = !t.paused || t.downloaded > 0 || t.uploaded > 0 || t.completedAt != nil
        var f: [String: Any] = [
            "id": self.numbers.number(t.id), "hashString": Self.hash(t), "name": t.name, "downloadDir": t.savePath,
            "totalSize": t.size, "sizeWhenDone": t.size, "leftUntilDone": left, "haveValid": t.haveBytes,
            "haveUnchecked": 0, "desiredAvailable": left, "percentDone": t.progress, "percentComplete": t.progress,
            "metadataPercentComplete": t.state == .metadata ? 0.0 : 1.0,
            "recheckProgress": t.state == .checking ? t.progress : 0.0,
            "isFinished": false, "isStalled": t.state == .downloading && !active,
            "eta": t.eta ?? -1, "etaIdle": -1, "status": Self.status(t), "error": t.error == nil ? 0 : 3,
            "errorString": t.error ?? "", "rateDownload": t.downloadRate, "rateUpload": t.uploadRate,
            "uploadRatio": ratio, "uploadedEver": t.uploaded, "downloadedEver": t.downloaded, "corruptEver": 0,
            "addedDate": epoch(t.addedAt), "startDate": everRan ? epoch(t.addedAt) : 0, "doneDate": epoch(t.completedAt),
            "activityDate": active ? epoch(now) : everRan ? epoch(t.completedAt ?? t.addedAt) : 0, "editDate": 0,
            // Time since it was added until it completed (or now): Peer does not count downloading time apart.
            "secondsDownloading": Int64((t.completedAt ?? now).timeIntervalSince(t.addedAt)),
            "peersConnected": t.peers, "labels": t.tags, "seedIdleLimit": 0, "seedIdleMode": 0,
            "bandwidthPriority": 0, "honorsSessionLimits": true, "peer-limit": 100, "isPrivate": false,
            "comment": "", "creator": "", "dateCreated": 0, "webseedsSendingToUs": 0, "manualAnnounceTime": -1,
            "primary-mime-type": "", "torrentFile": "", "sequentialDownload": t.sequential,
        ]
        guard let d else { return f }
        let files = d.files.filter { !$0.padding }
        let done = { (file: FileStatus) -> Int64 in Int64((file.progress * Double(file.length)).rounded()) }
        f["fileCount"] = files.count
        f["file-count"] = files.count
        f["files"] = files.map { ["name": $0.path, "length": $0.length, "bytesCompleted": done($0)] as [String: Any] }
        f["fileStats"] = files.map { file -> [String: Any] in
            ["bytesCompleted": done(file), "wanted": file.priority != .skip, "priority": file.priority == .high ? 1 : 0]
        }
        f["priorities"] = files.map { $0.priority == .high ? 1 : 0 }
        f["wanted"] = files.map { $0.priority == .skip ? 0 : 1 }
        f["peersSendingToUs"] = d.peers.filter { $0.downloadRate > 0 }.count
        f["peersGettingFromUs"] = t.uploadRate > 0 ? max(1, t.peers - d.peers.filter { $0.downloadRate > 0 }.count) : 0
        f["peers"] = d.peers.map { p -> [String: Any] in
            let (host, port) = Self.split(p.address)
            return ["address": host, "port": port, "clientName": p.client ?? "", "progress": p.progress,
                    "rateToClient": p.downloadRate, "rateToPeer": 0, "isEncrypted": false, "isIncoming": !p.outgoing,
                    "isUTP": p.transport == .utp, "flagStr": p.transport == .utp ? "T" : ""]
        }
        f["trackers"] = d.trackers.enumerated().map { i, tr -> [String: Any] in
            ["announce": tr.url, "id": i, "scrape": "", "tier": tr.tier, "sitename": URL(string: tr.url)?.host ?? ""]
        }
        f["trackerStats"] = d.trackers.enumerated().map { i, tr -> [String: Any] in
            ["announce": tr.url, "id": i, "tier": tr.tier, "host": URL(string: tr.url)?.host ?? "", "scrape": "",
             "lastAnnounceSucceeded": false, "lastAnnounceResult": "", "seederCount": -1, "leecherCount": -1,
             "announceState": 0, "scrapeState": 0, "isBackup": false, "sitename": URL(string: tr.url)?.host ?? ""]
        }
        f["pieceCount"] = d.pieces?.count ?? 0
        f["pieceSize"] = d.pieces?.length ?? 0
        f["magnetLink"] = d.magnet ?? "magnet:?xt=urn:btih:\(Self.hash(t))"
        f["seedRatioLimit"] = d.ratioLimit ?? settings.seedRatioLimit ?? 0
        f["seedRatioMode"] = d.ratioLimit != nil ? 1 : 0
        f["secondsSeeding"] = d.seedingSeconds
        // Stopped by a seed limit (the session pauses a torrent that reached one), not by hand.
        let ratioReached = (d.ratioLimit ?? settings.seedRatioLimit).map { ratio >= $0 } ?? false
        let timeReached = (d.seedTimeLimit ?? settings.seedTimeLimit).map { d.seedingSeconds >= $0 } ?? false
        f["isFinished"] = t.paused && t.progress >= 1 && (ratioReached || timeReached)
        f["queuePosition"] = d.queuePosition
        f["downloadLimit"] = (d.maxDownloadRate ?? 0) / 1024
        f["downloadLimited"] = d.maxDownloadRate != nil
        f["uploadLimit"] = (d.maxUploadRate ?? 0) / 1024
        f["uploadLimited"] = d.maxUploadRate != nil
        return f
    }

    /// Transmission's status numbers: 0 stopped, 1 queued to check, 2 checking, 3 queued to download,
    /// 4 downloading, 5 queued to seed, 6 seeding.
    static func status(_ t: TorrentStatus) -> Int {
        switch t.state {
        case .paused, .error: 0
        case .checking: 2
        case .queued: 3
        case .metadata, .downloading: 4
        case .seeding: 6
        }
    }

    static func hash(_ t: TorrentStatus) -> String { t.infoHashV1 ?? t.id }

    /// The torrents `ids` names: all when absent or "recently-active"; else a number, a hash, or a list of them.
    private func select(_ a: [String: Any]) async -> [TorrentStatus] {
        let all = await self.session.list()
        for t in all { _ = self.numbers.number(t.id) }
        guard let ids = a["ids"] else { return all }
        if let text = ids as? String, text == "recently-active" { return all }
        let wanted = (ids as? [Any]) ?? [ids]
        var numbers = Set<Int>()
        var hashes = Set<String>()
        for w in wanted {
            if let s = w as? String { hashes.insert(s.lowercased()) } else if let n = Self.int(w) { numbers.insert(n) }
        }
        return all.filter { t in
            numbers.contains(self.numbers.number(t.id)) || hashes.contains(t.id) || hashes.contains(Self.hash(t))
                || t.infoHashV2.map(hashes.contains) == true
        }
    }

    // MARK: helpers

    static func credentials(_ header: String?) -> (String, String)? {
        guard let header, header.lowercased().hasPrefix("basic "),
            let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces))
        else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func split(_ address: String) -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return (address, 0)
        }
        return (String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    static func int(_ v: Any?) -> Int? {
        if let n = v as? NSNumber { return n.intValue }
        if let s = v as? String { return Int(s) }
        return nil
    }

    static func double(_ v: Any?) -> Double? {
        if let n = v as? NSNumber { return n.doubleValue }
        if let s = v as? String { return Double(s) }
        return nil
    }

    static func bool(_ v: Any?) -> Bool? {
        if let b = v as? Bool { return b }
        if let n = v as? NSNumber { return n.intValue != 0 }
        if let s = v as? String { return ["true", "1", "yes"].contains(s.lowercased()) }
        return nil
    }

    static func answer(_ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=UTF-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Transmission's own error pages are small HTML.
    static func page(_ status: HTTPResponse.Status, _ message: String, _ headers: HTTPFields) -> Response {
        var h = headers
        h[.contentType] = "text/html; charset=UTF-8"
        let html = "<html><head><title>\(status.code): \(status.reasonPhrase)</title></head><body><h1>\(status.code): "
            + "\(status.reasonPhrase)</h1><p>\(message)</p></body></html>"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}
