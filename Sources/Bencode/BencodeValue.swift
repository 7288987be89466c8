// Bencode (BEP 3): values that keep their raw bytes, a bounded decoder, a canonical encoder.
// Pure: no I/O. Every length a document declares is checked against the input and the limits
// before anything is allocated for it.

/// A bencoded value: the data model of .torrent files, KRPC and extension messages.
///
/// Dictionaries are kept sorted by raw key bytes (the canonical order), so two values are
/// equal exactly when their canonical encodings are equal.
public indirect enum BencodeValue: Hashable, Sendable {
    case integer(Int64)
    case string([UInt8])
    case list([BencodeValue])
    case dictionary(BencodeDictionary)

    /// A byte string holding the UTF-8 bytes of `text`.
    public static func text(_ text: String) -> BencodeValue { .string(Array(text.utf8)) }

    public var integer: Int64? { if case .integer(let v) = self { v } else { nil } }
    public var bytes: [UInt8]? { if case .string(let v) = self { v } else { nil } }
    public var list: [BencodeValue]? { if case .list(let v) = self { v } else { nil } }
    public var dictionary: BencodeDictionary? { if case .dictionary(let v) = self { v } else { nil } }

    /// The byte string decoded as UTF-8, if it is a string and valid UTF-8.
    public var utf8: String? {
        guard case .string(let v) = self else { return nil }
        return String(validating: v, as: UTF8.self)
    }

    /// Looks a key up when this value is a dictionary.
    public subscript(key: String) -> BencodeValue? { self.dictionary?[key] }
}

/// A bencode dictionary: byte-string keys kept in canonical (raw byte) order, no duplicates.
public struct BencodeDictionary: Hashable, Sendable, Sequence {
    public typealias Element = (key: [UInt8], value: BencodeValue)

    private var keys: [[UInt8]] = []
    private var values: [BencodeValue] = []

    public init() {}

    /// Builds a dictionary from pairs; a later duplicate key replaces an earlier one.
    public init(_ pairs: some Sequence<(String, BencodeValue)>) {
        for (k, v) in pairs { self[Array(k.utf8)] = v }
    }

    public var count: Int { self.keys.count }
    public var isEmpty: Bool { self.keys.isEmpty }

    public subscript(key: [UInt8]) -> BencodeValue? {
        get {
            let i = self.insertionPoint(key)
            return i < self.keys.count && self.keys[i] == key ? self.values[i] : nil
        }
        set {
            let i = self.insertionPoint(key)
            let present = i < self.keys.count && self.keys[i] == key
            switch (present, newValue) {
            case (true, .some(let v)): self.values[i] = v
            case (true, .none):
                self.keys.remove(at: i)
                self.values.remove(at: i)
            case (false, .some(let v)):
                self.keys.insert(key, at: i)
                self.values.insert(v, at: i)
            case (false, .none): break
            }
        }
    }

    public subscript(key: String) -> BencodeValue? {
        get { self[Array(key.utf8)] }
        set { self[Array(key.utf8)] = newValue }
    }

    public func makeIterator() -> some IteratorProtocol<Element> {
        zip(self.keys, self.values).lazy.map { (key: $0.0, value: $0.1) }.makeIterator()
    }

    private func insertionPoint(_ key: [UInt8]) -> Int {
        var lo = 0
        var hi = self.keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self.keys[mid].lexicographicallyPrecedes(key) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

extension BencodeValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .string(Array(value.utf8)) }
    public init(arrayLiteral elements: BencodeValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, BencodeValue)...) {
        self = .dictionary(BencodeDictionary(elements))
    }
}

extension BencodeValue: CustomStringConvertible {
    /// A readable rendering for logs and test failures (strings that are not UTF-8 print as hex).
    public var description: String {
        switch self {
        case .integer(let v): return String(v)
        case .string(let v):
            if let s = String(validating: v, as: UTF8.self), s.unicodeScalars.allSatisfy({ $0.value >= 0x20 }) {
                return "\"\(s)\""
            }
            return "0x" + v.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        case .list(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        case .dictionary(let d):
            return "{" + d.map { "\(BencodeValue.string($0.key)): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}
