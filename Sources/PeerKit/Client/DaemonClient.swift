// The client of a running daemon's HTTP API (docs/api.md): what `peer add|ls|show|pause|resume|rm|stats` and
// `peer dht` call, and what a program that drives a daemon can use. It reads PeerKit's own model types.
import AsyncHTTPClient
import Foundation
import Search
import NIOCore

/// Calls a daemon's API with its token and decodes the answers as PeerKit's models (`TorrentStatus`,
/// `TorrentDetail`, `SessionStats`, …), written by the server with `APIJSON.encoder`.
public struct DaemonClient: Sendable {
    /// Where a daemon answers and the token it takes.
    public struct Endpoint: Sendable, Equatable {
        /// `http://HOST:PORT`, without a trailing slash.
        public var base: String
        public var token: String

        public init(base: String, token: String) {
            self.base = base
            self.token = token
        }

        /// The file in a daemon's state folder that names its API; `peer serve` writes it once it listens.
        public static let addressFile = "api-address"
        /// The file in a daemon's state folder that holds its API token.
        public static let tokenFile = "api-token"

        /// The daemon of a state folder, from STATE/api-address and STATE/api-token.
        /// - Parameter isDefault: `state` is the default folder (an error then suggests no `--state`).
        public init(state: String, isDefault: Bool = false) throws(DaemonClientError) {
            let addressFile = state + "/" + Self.addressFile
            guard let address = FileManager.default.contents(atPath: addressFile) else {
                throw .noDaemon(addressFile: addressFile, state: isDefault ? nil : state)
            }
            let tokenFile = state + "/" + Self.tokenFile
            guard let token = FileManager.default.contents(atPath: tokenFile) else {
                throw .unreadableToken(path: tokenFile, exists: FileManager.default.fileExists(atPath: tokenFile))
            }
            self.base = String(decoding: address, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            self.token = String(decoding: token, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard self.base.hasPrefix("http://") || self.base.hasPrefix("https://") else {
                throw .badAddress(file: addressFile, contents: self.base)
            }
        }
    }

    /// The methods the API uses (NIOHTTP1's `HTTPMethod` without depending on NIOHTTP1).
    public enum Method: String, Sendable {
        case GET, POST, PUT, PATCH, DELETE
    }

    /// An answer's body as it came, and the model it decodes to (decoded only when asked: `--json` prints
    /// the body).
    public struct Answer<Value: Decodable>: Sendable {
        public let bytes: [UInt8]

        public func decode() throws(DaemonClientError) -> Value { try DaemonClient.decode(Value.self, self.bytes) }
    }

    public let endpoint: Endpoint
    private let http: HTTPClient

    public var base: String { self.endpoint.base }

    /// A client on `http`, which the caller shuts down.
    public init(_ endpoint: Endpoint, http: HTTPClient) {
        self.endpoint = endpoint
        self.http = http
    }

    /// Runs `body` with a client on an HTTP client of its own, shut down afterwards (also when `body` throws).
    public static func with<T: Sendable>(_ endpoint: Endpoint, _ body: (DaemonClient) async throws -> T)
        async throws -> T
    {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let result: Result<T, any Error>
        do { result = .success(try await body(DaemonClient(endpoint, http: http))) } catch { result = .failure(error) }
        try? await http.shutdown()
        return try result.get()
    }

    // MARK: torrents

    /// `GET /api/torrents`: every torrent (or those of a category, or with a tag), in queue order.
    public func torrents(category: String? = nil, tag: String? = nil) async throws(DaemonClientError)
        -> Answer<TorrentList>
    {
        let query = [category.map { "category=" + Self.escape($0) }, tag.map { "tag=" + Self.escape($0) }].compactMap { $0 }
        return Answer(bytes: try await self.send(.GET, "/api/torrents" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))))
    }

    /// `GET /api/torrents/{id}`: the summary with files, peers, trackers and pieces.
    public func detail(_ id: String) async throws(DaemonClientError) -> Answer<TorrentDetail> {
        Answer(bytes: try await self.send(.GET, "/api/torrents/\(id)"))
    }

    /// `POST /api/torrents`: a magnet link or URL goes as it is (the daemon fetches the URL); a .torrent file's
    /// bytes are uploaded, so the daemon need not see the caller's folders.
    public func add(_ source: TorrentSource, options: AddOptions = AddOptions())
        async throws(DaemonClientError) -> Answer<TorrentStatus>
    {
        let (paused, sequential) = (options.paused ? true : nil, options.sequential ? true : nil)
        switch source {
        case .magnet(let link):
            let body = AddRequest(magnet: link, savePath: options.savePath, paused: paused, sequential: sequential,
                category: options.category, tags: options.tags.isEmpty ? nil : options.tags)
            return Answer(bytes: try await self.send(.POST, "/api/torrents", json: body, timeout: .seconds(90)))
        case .url(let url):
            let body = AddRequest(url: url, savePath: options.savePath, paused: paused, sequential: sequential,
                category: options.category, tags: options.tags.isEmpty ? nil : options.tags)
            return Answer(bytes: try await self.send(.POST, "/api/torrents", json: body, timeout: .seconds(90)))
        case .torrentFile(let bytes):
            var query: [String] = []
            if let savePath = options.savePath { query.append("save_path=" + Self.escape(savePath)) }
            if options.paused { query.append("paused=true") }
            if options.sequential { query.append("sequential=true") }
            if let category = options.category { query.append("category=" + Self.escape(category)) }
            if !options.tags.isEmpty { query.append("tags=" + Self.escape(options.tags.joined(separator: ","))) }
            let path = "/api/torrents" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
            return Answer(bytes: try await self.send(.POST, path, body: bytes, contentType: "application/x-bittorrent"))
        }
    }

    /// `POST /api/torrents/{id}/pause`.
    public func pause(_ id: String) async throws(DaemonClientError) -> Answer<TorrentStatus> {
        Answer(bytes: try await self.send(.POST, "/api/torrents/\(id)/pause"))
    }

    /// `POST /api/torrents/{id}/resume`.
    public func resume(_ id: String) async throws(DaemonClientError) -> Answer<TorrentStatus> {
        Answer(bytes: try await self.send(.POST, "/api/torrents/\(id)/resume"))
    }

    /// `DELETE /api/torrents/{id}`; with `deleteData`, its files too.
    public func remove(_ id: String, deleteData: Bool = false) async throws(DaemonClientError) {
        _ = try await self.send(.DELETE, "/api/torrents/\(id)" + (deleteData ? "?delete_data=true" : ""))
    }

    /// `GET /api/session`: figures over the whole session.
    public func stats() async throws(DaemonClientError) -> Answer<SessionStats> {
        Answer(bytes: try await self.send(.GET, "/api/session"))
    }

    /// `GET /api/search`: the daemon's index, best first.
    /// With `remote`, also among the daemon's neighbours: follow `remote` with `remoteSearch`.
    public func search(_ text: String, limit: Int, remote: Bool = false) async throws(DaemonClientError)
        -> Answer<SearchResults>
    {
        Answer(bytes: try await self.send(.GET, "/api/search?q=\(Self.escape(text))&limit=\(limit)"
            + (remote ? "&remote=1" : "")))
    }

    /// `GET /api/search/{id}`: a remote search's report as it stands.
    public func remoteSearch(_ id: String) async throws(DaemonClientError) -> Answer<RemoteSearchReport> {
        Answer(bytes: try await self.send(.GET, "/api/search/\(Self.escape(id))"))
    }

    /// `GET /api/index`: what the daemon's index holds.
    public func indexStatistics() async throws(DaemonClientError) -> Answer<SearchIndex.Statistics> {
        Answer(bytes: try await self.send(.GET, "/api/index"))
    }

    /// The full id of the torrent that `text` names: a whole id is taken as it is, a shorter prefix is looked up.
    public func resolve(_ text: String) async throws(DaemonClientError) -> String {
        let lower = text.lowercased()
        if (lower.count == 40 || lower.count == 64) && lower.allSatisfy(\.isHexDigit) { return lower }
        return try await self.torrent(matching: text).id
    }

    /// The one torrent whose id (or other info-hash) starts with `text`, at least 4 hex digits.
    public func torrent(matching text: String) async throws(DaemonClientError) -> TorrentStatus {
        let prefix = text.lowercased()
        guard prefix.allSatisfy(\.isHexDigit), !prefix.isEmpty else { throw .notATorrentID(text) }
        let list = try await self.torrents().decode().torrents
        if prefix.count == 40 || prefix.count == 64, let exact = list.first(where: { $0.hashes.contains(prefix) }) {
            return exact
        }
        guard prefix.count >= 4 else { throw .idTooShort(text) }
        let matches = list.filter { $0.hashes.contains { $0.hasPrefix(prefix) } }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw .noMatch(prefix: prefix)
        default: throw .ambiguous(prefix: prefix, matches: matches.map { .init(shortID: $0.shortID, name: $0.name) })
        }
    }

    // MARK: requests

    /// Sends a request with the token and returns the body of a 2xx answer; anything else throws what went
    /// wrong (the API's own message where there is one).
    public func send(
        _ method: Method, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
        timeout: TimeAmount = .seconds(30)
    ) async throws(DaemonClientError) -> [UInt8] {
        var request = HTTPClientRequest(url: self.base + path)
        request.method = .init(rawValue: method.rawValue)
        request.headers.add(name: "Authorization", value: "Bearer \(self.endpoint.token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let bytes: [UInt8]
        let status: (code: UInt, reason: String)
        do {
            let response = try await self.http.execute(request, timeout: timeout)
            status = (response.status.code, response.status.reasonPhrase)
            bytes = Array(buffer: try await response.body.collect(upTo: 64 << 20))
        } catch {
            throw self.failure(error)
        }
        guard (200..<300).contains(status.code) else { throw Self.refusal(status.code, status.reason, bytes) }
        return bytes
    }

    /// Sends `json`, encoded as the API reads it.
    public func send(
        _ method: Method, _ path: String, json: some Encodable, timeout: TimeAmount = .seconds(30)
    ) async throws(DaemonClientError) -> [UInt8] {
        let body: [UInt8]
        do { body = Array(try APIJSON.encoder.encode(json)) } catch {
            throw .transport(base: self.base, reason: "cannot encode the request: \(error)")
        }
        return try await self.send(method, path, body: body, timeout: timeout)
    }

    /// An answer's body as `T`, read with `APIJSON.decoder`.
    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws(DaemonClientError) -> T {
        do { return try APIJSON.decoder.decode(type, from: Data(bytes)) } catch {
            throw .unexpectedAnswer(reason: "\(error)")
        }
    }

    /// Why a request got no answer.
    private func failure(_ error: any Error) -> DaemonClientError {
        let text = String(describing: error)
        if text.localizedCaseInsensitiveContains("refused") { return .connectionRefused(base: self.base) }
        if let e = error as? HTTPClientError, e == .deadlineExceeded || e == .connectTimeout || e == .readTimeout {
            return .timedOut(base: self.base)
        }
        return .transport(base: self.base, reason: text)
    }

    /// A non-2xx answer: the API's `{"error": {"code", "message"}}`, else the status and the start of the body.
    static func refusal(_ status: UInt, _ reason: String, _ body: [UInt8]) -> DaemonClientError {
        struct Envelope: Decodable {
            struct Inner: Decodable { var code: String?; var message: String? }
            var error: Inner
        }
        if let e = try? JSONDecoder().decode(Envelope.self, from: Data(body)), let message = e.error.message {
            return .api(status: status, code: e.error.code, message: message)
        }
        let raw = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return .http(status: status, reason: reason, body: raw)
    }

    /// Percent-encodes a query parameter value.
    static func escape(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

extension TorrentStatus {
    /// The first 8 characters of the id, as lists show it.
    public var shortID: String { String(self.id.prefix(8)) }

    /// The id and both info-hashes, lowercase: what a prefix may match.
    var hashes: [String] { [self.id, self.infoHashV1, self.infoHashV2].compactMap { $0?.lowercased() } }
}
