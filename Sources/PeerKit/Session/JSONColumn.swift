import Foundation

/// Values the database keeps as JSON text in a column: a torrent's tags, tracker tiers and file priorities, a
/// channel's member keys, links and rule.
enum JSONColumn {
    static func text(_ value: some Encodable) -> String? {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// nil when there is no text or it does not decode as `type`.
    static func value<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        text.flatMap { try? JSONDecoder().decode(type, from: Data($0.utf8)) }
    }
}
