import Foundation

/// The JSON of the daemon's API (docs/api.md): the server writes with `encoder`, clients read with `decoder`,
/// so that what a client decodes is what the session held.
///
/// The models spell the API's snake_case names in their coding keys, so neither side converts keys. Dates
/// are ISO 8601 in whole seconds (the session keeps its dates whole, so they survive the trip).
public enum APIJSON {
    /// Sorted keys and unescaped slashes: stable for scripts and diffs.
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// A date as the API writes it: `2026-05-04T12:34:56Z`.
    public static func format(_ date: Date) -> String { date.formatted(.iso8601) }

    /// Now, in whole seconds: a date the API can carry without losing any of it.
    static func now() -> Date { Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)) }
}
