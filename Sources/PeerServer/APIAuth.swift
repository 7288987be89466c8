import Foundation
import Hummingbird
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
        let code = APIAuth.randomHex(16)
        self.codes.withLock { _ = $0.insert(code) }
        return code
    }

    func useLoginCode(_ code: String) -> Bool {
        self.codes.withLock { $0.remove(code) != nil }
    }

    /// Compares in time that does not depend on where the first difference is.
    func isToken(_ candidate: String) -> Bool {
        let a = Array(candidate.utf8), b = Array(self.token.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
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

    /// The host part of a `Host` header or an origin's authority ("name:port", "[v6]:port").
    static func split(_ authority: String) -> (host: String, port: Int?) {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            let host = String(authority[authority.index(after: authority.startIndex)..<close])
            let rest = authority[authority.index(after: close)...]
            return (host, rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil)
        }
        if let colon = authority.lastIndex(of: ":") {
            return (String(authority[..<colon]), Int(authority[authority.index(after: colon)...]))
        }
        return (authority, nil)
    }

    /// IP addresses are always allowed: DNS rebinding needs a name.
    func allowsHost(_ host: String) -> Bool {
        let h = host.lowercased()
        if self.allowedNames.contains(h) { return true }
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, h, &v4) == 1 || inet_pton(AF_INET6, h, &v6) == 1
    }

    /// Why a request's `Host` or `Origin` is refused; nil when both are fine.
    func refusal(host: String?, origin: String?) -> String? {
        if let host {
            let (name, _) = Self.split(host)
            guard self.allowsHost(name) else {
                return "Host \(host) is not this daemon's; start it with --allow-host \(name) to use that name"
            }
        }
        if let origin {  // "null" too: a sandboxed frame or a file:// page is not the daemon's own
            // Same origin: the page was served by this server under the name the request uses.
            guard let host, origin.lowercased() == "http://" + host.lowercased() else {
                return "requests from pages at \(origin) are refused"
            }
        }
        return nil
    }

    // MARK: the token file

    /// Reads `STATE/api-token`, or creates it (64 hex characters, mode 0600) on first start.
    public static func loadOrCreateToken(stateDirectory: String) throws -> String {
        let path = stateDirectory + "/api-token"
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        if let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), text.count >= 32
        {
            chmod(path, 0o600)
            return text
        }
        let token = Self.randomHex(32)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw APIError(.internalServerError, "internal", "cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let bytes = Array((token + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw APIError(.internalServerError, "internal", "cannot write \(path): errno \(errno)")
        }
        return token
    }

    static func randomHex(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }
}

/// Checks every request against `APIAuth`, and turns every error into the API's JSON error.
struct GuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let auth: APIAuth

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let why = self.auth.refusal(host: request.head.authority, origin: request.headers[.origin]) {
            return APIError.forbidden(why).response
        }
        // By components, as the router matches: it skips empty ones, so "//api/torrents" and "/metrics/" reach
        // the same handlers as "/api/torrents" and "/metrics", and must need the token as much.
        let parts = request.uri.path.split(separator: "/")
        let open = parts == ["api", "login"] || parts == ["api", "openapi.json"]
        if (parts.first == "api" || parts.first == "metrics") && !open && !self.auth.authorized(request) {
            var e = APIError.unauthorized
            e.headers[.wwwAuthenticate] = "Bearer"
            return e.response
        }
        do {
            var response = try await next(request, context)
            response.headers[.xContentTypeOptions] = "nosniff"
            return response
        } catch {
            return APIError(any: error).response
        }
    }
}
