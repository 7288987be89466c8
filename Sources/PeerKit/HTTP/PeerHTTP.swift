#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// HTTP(S) for trackers and web seeds: the one client a node shares, and bounded GETs through it.
///
/// Every body is bounded before it is buffered (a `Content-Length` over the limit is refused before any byte
/// is read, and a body without one is cut off at the limit), every request has an overall deadline (connect,
/// TLS, head and body together), redirects are followed at most `maxRedirects` times, and nothing is
/// decompressed (no zip bombs).
public enum PeerHTTP {
    /// The `User-Agent` header sent with every request.
    public static let userAgent = "Peer/0.1"
    /// Most redirects followed for one request.
    public static let maxRedirects = 5
    /// The environment variable naming a PEM file of CA certificates to trust instead of the system's.
    public static let caFileVariable = "SSL_CERT_FILE"

    /// Builds a client on `group` whose connections leave from `bindHost` (each test node has its own
    /// 127.0.0.x).
    ///
    /// HTTPS trusts the system's CA bundle, or, when `SSL_CERT_FILE` is set, the certificates in that PEM
    /// file instead (as OpenSSL, curl and Python read the variable). Call `shutdown()` on the client before
    /// the group shuts down.
    public static func makeClient(group: any EventLoopGroup, bindHost: String?) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if case .success(let roots)? = Self.trust { tls.trustRoots = roots }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .follow(max: Self.maxRedirects, allowCycles: false),
            timeout: .init(connect: .seconds(10), read: .seconds(20)),
            decompression: .disabled)
        configuration.localAddress = bindHost
        // Fail at once when a connection cannot be made (refused, TLS refused): the tracker tiers move on to the
        // next tracker, and every caller retries on its own schedule.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
    }

    /// The trust roots `SSL_CERT_FILE` names: nil when unset, a failure when the file cannot be read.
    static let trust: Result<NIOSSLTrustRoots, HTTPFetchError>? = {
        guard let raw = getenv(caFileVariable) else { return nil }
        let path = String(cString: raw)
        guard !path.isEmpty else { return nil }
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            guard !certificates.isEmpty else {
                return .failure(.untrusted("\(caFileVariable)=\(path) holds no PEM certificate"))
            }
            return .success(.certificates(certificates))
        } catch {
            return .failure(.untrusted("\(caFileVariable)=\(path) cannot be read as PEM certificates: \(error)"))
        }
    }()

    /// A response whose body was read whole.
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    /// GETs `url` and reads the body, at most `limit` bytes, within `timeout` from start to end.
    /// - Parameters:
    ///   - headers: Extra request headers (`Range`, …).
    ///   - accept: The statuses whose body is wanted; any other fails with `.status`.
    /// - Throws: `HTTPFetchError`.
    public static func get(
        _ client: HTTPClient, url: String, headers: [(String, String)] = [], limit: Int, timeout: Duration,
        accept: Set<UInt> = [200]
    ) async throws -> Response {
        try await self.send(client, url: url, headers: headers, limit: limit, timeout: timeout, accept: accept)
    }

    /// Sends a request with `method` and `body` to `url` and reads the answer's body, at most `limit` bytes,
    /// within `timeout` from start to end (as `get`; redirects are followed only for GET).
    /// - Throws: `HTTPFetchError`.
    public static func send(
        _ client: HTTPClient, method: HTTPMethod = .GET, url: String, headers: [(String, String)] = [],
        body: [UInt8]? = nil, limit: Int, timeout: Duration, accept: Set<UInt> = [200]
    ) async throws -> Response {
        try await self.stream(client, method: method, url: url, headers: headers, body: body, timeout: timeout,
            accept: accept)
        {
            head, body in
            if let length = head.contentLength, length > limit { throw HTTPFetchError.tooLarge(limit: limit) }
            var bytes: [UInt8] = []
            for try await chunk in body {
                guard bytes.count + chunk.readableBytes <= limit else { throw HTTPFetchError.tooLarge(limit: limit) }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
            return Response(status: head.status, headers: head.headers, body: bytes)
        }
    }

    /// The status line and headers of a response whose body is still to be read.
    public struct Head: Sendable {
        public var status: HTTPResponseStatus
        public var headers: HTTPHeaders
        /// `Content-Length`, when the server sent one that parses.
        public var contentLength: Int? { self.headers.first(name: "content-length").flatMap { Int($0) } }
    }

    /// GETs `url` and hands the head and the body stream to `read`, all within `timeout`. The request is
    /// cancelled when `read` returns before the end of the body.
    /// - Throws: `HTTPFetchError`, or what `read` throws (its own errors pass through unchanged).
    public static func stream<T: Sendable>(
        _ client: HTTPClient, method: HTTPMethod = .GET, url: String, headers: [(String, String)] = [],
        body: [UInt8]? = nil, timeout: Duration, accept: Set<UInt> = [200],
        read: @escaping @Sendable (Head, HTTPClientResponse.Body) async throws -> T
    ) async throws -> T {
        if url.lowercased().hasPrefix("https:"), case .failure(let problem)? = Self.trust { throw problem }
        return try await Self.withTimeout(timeout) {
            var request = HTTPClientRequest(url: url)
            request.method = method
            if let body { request.body = .bytes(body) }
            request.headers.add(name: "User-Agent", value: Self.userAgent)
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: Self.timeAmount(timeout))
            } catch {
                throw HTTPFetchError(error)
            }
            guard accept.contains(response.status.code) else {
                throw HTTPFetchError.status(Int(response.status.code), response.status.reasonPhrase)
            }
            do {
                return try await read(Head(status: response.status, headers: response.headers), response.body)
            } catch {
                throw HTTPFetchError.fromTransport(error) ?? error  // the reader's own errors pass through
            }
        }
    }

    /// Runs `operation`, cancelling it and throwing `.timedOut` when `timeout` passes first.
    static func withTimeout<T: Sendable>(
        _ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw HTTPFetchError.timedOut(timeout)
            }
            return value
        }
    }

    static func timeAmount(_ d: Duration) -> TimeAmount {
        .nanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }
}

/// Why an HTTP(S) request to a tracker or web seed failed.
public enum HTTPFetchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with a status the request does not accept.
    case status(Int, String)
    /// The body is longer than the limit (by its `Content-Length` or by what arrived).
    case tooLarge(limit: Int)
    /// The body ended before the expected number of bytes.
    case shortBody(expected: Int, received: Int)
    /// The response does not fit the request (a `Content-Range` other than the one asked for, …).
    case badResponse(String)
    /// No complete answer within the request's deadline.
    case timedOut(Duration)
    /// HTTPS cannot be set up: the CA file in `SSL_CERT_FILE` is unreadable.
    case untrusted(String)
    /// The connection failed: refused, reset, TLS handshake or certificate error, bad URL.
    case transport(String)

    /// The error as an `HTTPFetchError` when it comes from the connection (AsyncHTTPClient, TLS, sockets), else nil.
    static func fromTransport(_ error: any Error) -> HTTPFetchError? {
        switch error {
        case is HTTPFetchError, is CancellationError, is HTTPClientError, is NIOSSLError, is NIOConnectionError,
            is IOError:
            HTTPFetchError(error)
        default: nil
        }
    }

    init(_ error: any Error) {
        if let e = error as? HTTPFetchError {
            self = e
        } else if error is CancellationError {
            self = .transport("cancelled")
        } else if let e = error as? HTTPClientError {
            self = .transport(Self.describe(e))
        } else if let e = error as? NIOSSLError, case .handshakeFailed = e {
            let text = "\(e)"
            self = text.contains("CERTIFICATE_VERIFY_FAILED")
                ? .transport("TLS: the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED; "
                    + "\(PeerHTTP.caFileVariable) can name a CA file to trust)")
                : .transport("TLS handshake failed: \(text)")
        } else if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first {
                self = .transport("cannot connect to \(first.target): \(Self.describe(first.error))")
            } else {
                self = .transport("cannot resolve \(e.host)")
            }
        } else if let e = error as? IOError {
            self = .transport(Self.describe(e))
        } else {
            self = .transport("\(error)")
        }
    }

    private static func describe(_ error: any Error) -> String {
        guard let e = error as? IOError else { return "\(error)" }
        return String(cString: strerror(e.errnoCode)).lowercased()
    }

    private static func describe(_ e: HTTPClientError) -> String {
        let known: [(HTTPClientError, String)] = [
            (.connectTimeout, "connect timed out"), (.readTimeout, "read timed out"),
            (.remoteConnectionClosed, "the server closed the connection"),
            (.redirectLimitReached, "more than \(PeerHTTP.maxRedirects) redirects"),
            (.redirectCycleDetected, "redirect cycle"), (.invalidURL, "invalid URL"), (.emptyHost, "invalid URL (no host)"),
        ]
        return known.first { $0.0 == e }?.1 ?? "\(e)"
    }

    public var description: String {
        switch self {
        case .status(let code, let reason): "HTTP status \(code) \(reason)"
        case .tooLarge(let limit): "response body larger than \(limit) bytes"
        case .shortBody(let expected, let received): "body ended after \(received) of \(expected) bytes"
        case .badResponse(let why): why
        case .timedOut(let d): "no answer within \(d.components.seconds) s"
        case .untrusted(let why): why
        case .transport(let why): why
        }
    }
}
