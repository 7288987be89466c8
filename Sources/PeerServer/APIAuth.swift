import Foundation
import Hummingbird
import PeerKit
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Who may use the API: the token, the hosts a request may name, and one-time login codes.
///
/// Every `/api/...` path (but login) and `/metrics` need the token, as `Authorization: Bearer TOKEN` or
/// as the `peer_token` cookie the login sets. `Host` must be an IP address, `localhost`, or a name given
/// with `--allow-host` (a web page under another name that resolves here — DNS rebinding — is refused), and
/// an `Origin`, when there is one, must be the page's own: the scheme, host and port the request names.
public final class APIAuth: Sendable {
    public let token: String
    let allowedNames: Set<String>
    private let codes = Mutex<Set<String>>([])

    public init(token: String, allowedHosts: [String]) {
        self.token = token
        self.allowedNames = Set(["localhost"] + allowedHosts.map { $0.lowercased() })
    }

    /// A code that logs a browser in once (`/login?code=CODE`).
    public func makeLoginCode() -> String {
        let code = SecretFile.randomHex(16)
        self.codes.withLock { _ = $0.insert(code) }
        return code
    }

    func useLoginCode(_ code: String) -> Bool {
        self.codes.withLock { $0.remove(code) != nil }
    }

    func isToken(_ candidate: String) -> Bool { Self.same(candidate, self.token) }

    /// Compares two secrets in time that does not depend on where the first difference is (nor on whether their
    /// lengths differ): the API token, the compat login.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }

    func authorized(_ request: Request) -> Bool {
        if let header = request.headers[.authorization], header.hasPrefix("Bearer "), self.isToken(String(header.dropFirst(7))) {
            return true
        }
        if let cookie = request.cookies[APIAuth.cookieName]?.value, self.isToken(cookie) { return true }
        return false
    }

    static let cookieName = "peer_token"

    /// The host of a `Host` header (RFC 9110 §7.2): `name`, `1.2.3.4` or `[v6]`, then an optional `:port` of
    /// at most 65535. Nil for anything else: a reader that takes the part before the last colon lets
    /// `127.0.0.1:9091@evil.com` pass as 127.0.0.1.
    static func host(ofAuthority authority: String) -> String? {
        let host: Substring
        let rest: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, String(host), &v6) == 1 else { return nil }
            rest = authority[authority.index(after: close)...]
        } else {
            let colon = authority.firstIndex(of: ":") ?? authority.endIndex
            host = authority[..<colon]
            rest = authority[colon...]
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
            else { return nil }
        }
        guard !rest.isEmpty else { return String(host) }
        let digits = rest.dropFirst()
        guard rest.first == ":", (1...5).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(digits), port <= 65535
        else { return nil }
        return String(host)
    }

    /// IP addresses are always allowed: DNS rebinding needs a name.
    func allowsHost(_ host: String) -> Bool {
        let h = host.lowercased()
        if self.allowedNames.contains(h) { return true }
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, h, &v4) == 1 || inet_pton(AF_INET6, h, &v6) == 1
    }

    /// The error a request's `Host` values (`hosts`) and `Origin` get; nil when both are fine.
    ///
    /// Exactly one well-formed `Host`, as RFC 9112 §3.2 demands of HTTP/1.1 (400 otherwise; HTTP/1.0 needs
    /// one too here: every browser and client sends it): two could be read one way here and another by a
    /// proxy in front. A well-formed name that is not ours is 403.
    func refusal(hosts: [String], origin: String?) -> APIError? {
        guard hosts.count == 1, let host = hosts.first else {
            return .badRequest(hosts.isEmpty ? "the request has no Host header" : "the request has \(hosts.count) Host headers")
        }
        guard let name = Self.host(ofAuthority: host) else {
            return .badRequest("Host \(host) is not NAME or NAME:PORT")
        }
        guard self.allowsHost(name) else {
            return .forbidden("Host \(host) is not this daemon's; start it with --allow-host \(name) to use that name")
        }
        if let origin {  // "null" too: a sandboxed frame or a file:// page is not the daemon's own
            // Same origin: the page was served by this server under the name the request uses.
            guard origin.lowercased() == "http://" + host.lowercased() else {
                return .forbidden("requests from pages at \(origin) are refused")
            }
        }
        return nil
    }

    // MARK: the token file

    /// Reads `STATE/api-token`, or creates it (64 hex characters, mode 0600) on first start.
    public static func loadOrCreateToken(stateDirectory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        do { return try SecretFile.loadOrCreate(stateDirectory + "/api-token") } catch {
            throw APIError(.internalServerError, "internal", "\(error)")
        }
    }

}

/// Checks every request against `APIAuth`, and turns every error into the API's JSON error.
struct GuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let auth: APIAuth
    /// qBittorrent's Web API (`/api/v2/`) is served: it has a login of its own (its SID cookie), not the token.
    var compatOn = false

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Hummingbird makes the first Host the authority and leaves any other among the fields.
        let others = request.headers.filter { $0.name.canonicalName == "host" }.map(\.value)
        let hosts = [request.head.authority].compactMap { $0 } + others
        if let refused = self.auth.refusal(hosts: hosts, origin: request.headers[.origin]) {
            return refused.response
        }
        // By components, as the router matches: it skips empty ones, so "//api/torrents" and "/metrics/" reach
        // the same handlers as "/api/torrents" and "/metrics", and must need the token as much.
        let parts = request.uri.path.split(separator: "/")
        let open = parts == ["api", "login"] || parts == ["api", "openapi.json"]
            || (self.compatOn && parts.count > 1 && parts[1] == "v2")
        if (parts.first == "api" || parts.first == "metrics") && !open && !self.auth.authorized(request) {
            var e = APIError.unauthorized
            e.headers[.wwwAuthenticate] = "Bearer"
            return e.response
        }
        return try await JSONErrorMiddleware().handle(request, context: context, next: next)
    }
}

/// Every error as the API's JSON error, and `nosniff` on every answer: the API's and the index node's.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            var response = try await next(request, context)
            response.headers[.xContentTypeOptions] = "nosniff"
            return response
        } catch {
            return APIError(any: error).response
        }
    }
}
