import Bencode

/// Why a torrent or magnet link cannot be used. Each says what was wrong and, where it applies,
/// the byte offset in the .torrent file.
public enum MetainfoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file is not valid bencode.
    case bencode(BencodeError)
    /// A required key is missing.
    case missingKey(String, offset: Int)
    /// A key holds a value of the wrong type.
    case wrongType(key: String, expected: String, found: String, offset: Int)
    /// A value is present and well-typed but not acceptable.
    case invalid(String, offset: Int?)
    /// A magnet link that cannot be parsed.
    case magnet(String)

    public var offset: Int? {
        switch self {
        case .bencode(let e): e.offset
        case .missingKey(_, let o): o
        case .wrongType(_, _, _, let o): o
        case .invalid(_, let o): o
        case .magnet: nil
        }
    }

    public var description: String {
        switch self {
        case .bencode(let e): "not a valid torrent: \(e)"
        case .missingKey(let k, let o): "missing key \"\(k)\" in the dictionary at byte \(o)"
        case .wrongType(let k, let expected, let found, let o):
            "\"\(k)\" at byte \(o) should be \(expected), found \(found)"
        case .invalid(let message, let o): o.map { "\(message) (at byte \($0))" } ?? message
        case .magnet(let message): "invalid magnet link: \(message)"
        }
    }
}

/// Something odd in a torrent that was accepted anyway: a sanitized path, a non-canonical dictionary.
public struct MetainfoWarning: Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { self.message }
}
