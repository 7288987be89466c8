import Foundation

/// What went wrong with a search, in words a user can act on.
public enum SearchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The query is longer than `SearchQuery.maxBytes`.
    case queryTooLong(bytes: Int, limit: Int)
    /// The query has no letters or digits: nothing to look for.
    case noWords

    public var description: String {
        switch self {
        case .queryTooLong(let bytes, let limit):
            "the query is \(bytes) bytes long; a search takes at most \(limit) bytes (up to \(SearchQuery.maxTerms) words)"
        case .noWords: "the query has no words to search for (letters or digits)"
        }
    }
}

/// A user's search words, cleaned for the index. Whatever the user typed is plain words: the text is cut into
/// the same words the index cuts names into (runs of letters and digits; punctuation, `.`, `_`, `-` and brackets
/// separate) and each word is quoted for FTS5, so `NEAR(a b)`, `name:x`, `"`, `*` and `AND` are words or
/// separators, never operators — no prefix scans, no column filters, no syntax errors. A torrent matches when
/// it has every word (in its name or its first file paths), with case and diacritics folded.
public struct SearchQuery: Sendable, Equatable, CustomStringConvertible {
    /// Longer queries are refused, not cut: a query is a few words.
    public static let maxBytes = 512
    /// Words past this many are ignored (the rarest few already narrow a search).
    public static let maxTerms = 8
    /// Characters kept of a word.
    public static let maxTermLength = 64

    /// The words, lower-cased, NFC, without duplicates, in the order typed.
    public let terms: [String]

    public init(_ text: String) throws(SearchError) {
        let bytes = text.utf8.count
        guard bytes <= Self.maxBytes else { throw .queryTooLong(bytes: bytes, limit: Self.maxBytes) }
        var terms: [String] = []
        for word in Self.words(text) where !terms.contains(word) {
            terms.append(word)
            if terms.count == Self.maxTerms { break }
        }
        guard !terms.isEmpty else { throw .noWords }
        self.terms = terms
    }

    /// The FTS5 expression: each word a quoted string, all of them required.
    public var match: String { self.terms.map { "\"\($0)\"" }.joined(separator: " ") }

    public var description: String { self.terms.joined(separator: " ") }

    /// Cuts text into index words: runs of letters (L*), digits (N*) and private-use characters, the classes
    /// SQLite's unicode61 tokenizer keeps by default; everything else separates. Text is put in NFC first so a
    /// decomposed `é` (e + combining accent) is one letter, as in the names indexed.
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        func end() {
            guard !current.isEmpty else { return }
            out.append(String(String(current).lowercased().prefix(Self.maxTermLength)))
            current = String.UnicodeScalarView()
        }
        for scalar in text.precomposedStringWithCanonicalMapping.unicodeScalars {
            if Self.isWordScalar(scalar) { current.append(scalar) } else { end() }
        }
        end()
        return out
    }

    static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber,
            .letterNumber, .otherNumber, .privateUse:
            true
        default: false
        }
    }
}
