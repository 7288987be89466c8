/// A decoded bencode value together with where it came from.
///
/// Every node knows the byte range it occupied in the input (`span`), so that a .torrent's
/// info dictionary is hashed from its raw bytes, never from a re-encoding, and so that errors found
/// later (in `Metainfo`) can name the byte offset of the offending value.
public struct BencodeNode: Sendable {
    public enum Kind: Sendable {
        case integer(Int64)
        case string([UInt8])
        case list([BencodeNode])
        /// Entries in the order they appeared in the input.
        case dictionary([Entry])
    }

    public struct Entry: Sendable {
        public var key: [UInt8]
        public var value: BencodeNode
    }

    /// The value's bytes in the input, from its first byte to one past its last.
    public var span: Range<Int>
    public var kind: Kind
    /// False when this dictionary's keys were not in strictly ascending byte order in the input.
    /// (Only dictionaries can be non-canonical: the decoder refuses non-canonical integers and strings.)
    public var isCanonical: Bool

    public init(span: Range<Int>, kind: Kind, isCanonical: Bool = true) {
        self.span = span
        self.kind = kind
        self.isCanonical = isCanonical
    }

    public var integer: Int64? { if case .integer(let v) = self.kind { v } else { nil } }
    public var bytes: [UInt8]? { if case .string(let v) = self.kind { v } else { nil } }
    public var list: [BencodeNode]? { if case .list(let v) = self.kind { v } else { nil } }
    public var entries: [Entry]? { if case .dictionary(let v) = self.kind { v } else { nil } }

    /// The byte string as UTF-8 text, or nil if it is not a string or not valid UTF-8.
    public var utf8: String? { self.bytes.flatMap { String(validating: $0, as: UTF8.self) } }

    /// The first value stored under `key` when this node is a dictionary.
    public subscript(key: String) -> BencodeNode? {
        guard case .dictionary(let entries) = self.kind else { return nil }
        let k = Array(key.utf8)
        return entries.first(where: { $0.key == k })?.value
    }

    /// A short name of this node's type, for error messages.
    public var typeName: String {
        switch self.kind {
        case .integer: "integer"
        case .string: "string"
        case .list: "list"
        case .dictionary: "dictionary"
        }
    }

    /// True when this node and all nodes below it are in canonical form.
    public var isCanonicalDeep: Bool {
        guard self.isCanonical else { return false }
        switch self.kind {
        case .list(let items): return items.allSatisfy(\.isCanonicalDeep)
        case .dictionary(let entries): return entries.allSatisfy(\.value.isCanonicalDeep)
        default: return true
        }
    }

    /// The plain value, without source positions.
    public var value: BencodeValue {
        switch self.kind {
        case .integer(let v): return .integer(v)
        case .string(let v): return .string(v)
        case .list(let items): return .list(items.map(\.value))
        case .dictionary(let entries):
            var d = BencodeDictionary()
            for e in entries where d[e.key] == nil { d[e.key] = e.value.value }
            return .dictionary(d)
        }
    }
}
