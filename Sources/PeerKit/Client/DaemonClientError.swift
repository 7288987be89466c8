import Foundation

/// Why a call to a running daemon failed; `description` says it in one line.
public enum DaemonClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// STATE/api-address is missing: no daemon runs on that state folder. `state` is nil for the default folder.
    case noDaemon(addressFile: String, state: String?)
    /// STATE/api-token cannot be read.
    case unreadableToken(path: String, exists: Bool)
    /// STATE/api-address holds something other than an http(s) URL.
    case badAddress(file: String, contents: String)
    /// Nothing listens at the address (a daemon that stopped without removing api-address).
    case connectionRefused(base: String)
    case timedOut(base: String)
    /// Any other failure to get an answer.
    case transport(base: String, reason: String)
    /// The API's own error, `{"error": {"code", "message"}}`, with its status.
    case api(status: UInt, code: String?, message: String)
    /// A non-2xx answer that is not the API's error JSON (a proxy, or another server on the port).
    case http(status: UInt, reason: String, body: String)
    /// A 2xx answer that does not decode as the type docs/api.md gives it.
    case unexpectedAnswer(reason: String)
    /// A torrent named by text that cannot be an id or a prefix of one.
    case notATorrentID(String)
    case idTooShort(String)
    case noMatch(prefix: String)
    /// The prefix names several torrents: their short ids and names.
    case ambiguous(prefix: String, matches: [Match])

    public struct Match: Sendable, Equatable {
        public var shortID: String
        public var name: String
    }

    /// The HTTP status of an answer the daemon gave; nil when there was none.
    public var status: UInt? {
        switch self {
        case .api(let status, _, _), .http(let status, _, _): status
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .noDaemon(let file, let state):
            "no daemon: \(file) is missing; start one with `peer serve\(state.map { " --state \($0)" } ?? "")`"
        case .unreadableToken(let path, let exists):
            "cannot read \(path) (the daemon's API token): \(exists ? "permission denied" : "no such file")"
        case .badAddress(let file, let contents): "\(file) holds \"\(contents)\", not an http:// address"
        case .connectionRefused(let base):
            "cannot connect to the daemon at \(base): connection refused (is `peer serve` running? "
                + "api-address may be left over from a daemon that has stopped)"
        case .timedOut(let base): "the daemon at \(base) did not answer in time"
        case .transport(let base, let reason): "cannot talk to the daemon at \(base): \(reason)"
        case .api(let status, let code, let message):
            message + " (HTTP \(status)" + (code.map { " \($0)" } ?? "") + ")"
                + (status == 401 ? "; the token in api-token was refused" : "")
        case .http(let status, let reason, let body):
            "the daemon answered HTTP \(status) \(reason)" + (body.isEmpty ? "" : ": \(body)")
        case .unexpectedAnswer(let reason): "the daemon's answer is not what docs/api.md describes: \(reason)"
        case .notATorrentID(let text): "\"\(text)\" is not a torrent id: ids are hexadecimal (see `peer ls`)"
        case .idTooShort(let text): "\"\(text)\" is too short: give at least 4 characters of the id (see `peer ls`)"
        case .noMatch(let prefix): "no torrent has an id starting with \(prefix) (see `peer ls`)"
        case .ambiguous(let prefix, let matches):
            "\(prefix) matches \(matches.count) torrents ("
                + matches.map { "\($0.shortID) \($0.name)" }.joined(separator: ", ") + "); give more of the id"
        }
    }
}
