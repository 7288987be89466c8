import Foundation
import Hummingbird
import PeerKit

/// An error the API answers with: a status and `{"error": {"code", "message"}}` (docs/api.md).
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func badRequest(_ m: String) -> APIError { APIError(.badRequest, "bad_request", m) }
    static func notFound(_ m: String) -> APIError { APIError(.notFound, "not_found", m) }
    static let unauthorized = APIError(.unauthorized, "unauthorized",
        "send the token from STATE/api-token as 'Authorization: Bearer TOKEN', or log in at /login")
    static func forbidden(_ m: String) -> APIError { APIError(.forbidden, "forbidden", m) }
    static func tooLarge(_ limit: Int) -> APIError { Self.tooLarge("the body is larger than \(limit) bytes") }

    /// With `Connection: close`: the rest of the body is not read, so the connection cannot carry another
    /// request (and `CloseAfterResponse` closes it at once instead of reading the rest).
    static func tooLarge(_ message: String) -> APIError {
        var e = APIError(.contentTooLarge, "payload_too_large", message)
        e.headers[.connection] = "close"
        return e
    }

    /// The one place where the session's errors get their status and code.
    init(_ error: SessionError) {
        let (status, code): (HTTPResponse.Status, String) =
            switch error {
            case .torrentNotFound, .fileNotFound, .trackerNotFound, .itemNotFound, .searchNotFound, .channelNotFound,
                .categoryNotFound:
                (.notFound, "not_found")
            case .badRequest, .notAMagnetLink, .fetchFailed, .moveFailed, .channelRefused, .metadata(_, from: .upload),
                .metadata(_, from: .url):
                (.badRequest, "bad_request")
            case .alreadyAdded, .alreadyATracker, .noMetadataYet, .conflict, .dhtOff: (.conflict, "conflict")
            case .unavailable: (.serviceUnavailable, "unavailable")
            case .metadata(_, from: .peers), .metadata(_, from: .database), .storage, .database, .noMetadataSource,
                .engine, .internalError:
                (.internalServerError, "internal")
            }
        self.init(status, code, error.description)
    }

    /// The error an arbitrary thrown error becomes.
    init(any error: any Error) {
        switch error {
        case let e as APIError: self = e
        case let e as SessionError: self.init(e)
        case let e as IndexNodeError: self.init(e)
        case let e as LiveHubError:
            switch e {
            case .badLink: self = .badRequest(e.description)
            case .notFound: self = .notFound(e.description)
            case .tooMany: self.init(.conflict, "too_many_streams", e.description)
            }
        case let e as any HTTPResponseError where e.status == .notFound: self = .notFound("no such path")
        case let e as any HTTPResponseError where e.status == .contentTooLarge: self = .tooLarge("the body is too large")
        case let e as any HTTPResponseError where e.status == .methodNotAllowed:
            self.init(.methodNotAllowed, "method_not_allowed", "this path does not take that method")
        case let e as any HTTPResponseError:
            self.init(e.status, e.status.code < 500 ? "bad_request" : "internal", "\(e.status.reasonPhrase)")
        default: self.init(.internalServerError, "internal", "\(error)")
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        self.response
    }

    /// `{"error": {"code", "message"}}`.
    var body: ByteBuffer {
        struct Body: Encodable {
            struct Inner: Encodable { var code: String; var message: String }
            var error: Inner
        }
        return ByteBuffer(bytes: (try? JSON.encoder.encode(Body(error: .init(code: self.code, message: self.message)))) ?? Data())
    }

    var response: Response {
        var r = Response(status: self.status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: self.body))
        r.headers.append(contentsOf: self.headers)
        return r
    }
}

/// JSON in and out.
enum JSON {
    /// PeerKit's, which `DaemonClient` reads with.
    static var encoder: JSONEncoder { APIJSON.encoder }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try Self.encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A request's JSON body (at most `limit` bytes) as `T`; malformed JSON and wrong types are 400s that
    /// name the field.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int = 8 << 20) async throws -> T {
        let body = try await Self.body(of: request, limit: limit)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: body))
        } catch let DecodingError.typeMismatch(expected, context) {
            throw APIError.badRequest("\(Self.path(context.codingPath)): expected \(Self.name(expected))")
        } catch let DecodingError.valueNotFound(expected, context) {
            throw APIError.badRequest("\(Self.path(context.codingPath)): expected \(Self.name(expected)), got null")
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.badRequest("missing field \(key.stringValue)")
        } catch let DecodingError.dataCorrupted(context) {
            let detail = context.codingPath.isEmpty ? "the body is not valid JSON" : "\(Self.path(context.codingPath)): \(context.debugDescription)"
            throw APIError.badRequest(detail)
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError.badRequest("the body is not valid JSON: \(error)")
        }
    }

    static func body(of request: Request, limit: Int) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw APIError.tooLarge(limit) }
        do { return try await request.body.collect(upTo: limit) } catch { throw APIError.tooLarge(limit) }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the body" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func name(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Double.Type: "a number"
        default: "\(type)".contains("Dictionary") ? "an object" : "\(type)"
        }
    }
}
