/// Why a byte string is not acceptable bencode. Every case names the byte offset where the problem is.
public enum BencodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended where `expected` should have been.
    case unexpectedEnd(expected: String, offset: Int)
    /// A byte that cannot start or continue the value being read.
    case unexpectedByte(UInt8, expected: String, offset: Int)
    /// An integer with leading zeros, `-0`, no digits, or another non-canonical form.
    case invalidInteger(reason: String, offset: Int)
    /// An integer that does not fit in 64 bits.
    case integerOverflow(offset: Int)
    /// A string length larger than the configured limit.
    case stringTooLong(declared: UInt64, limit: Int, offset: Int)
    /// A string length larger than what is left of the input.
    case stringPastEnd(declared: UInt64, remaining: Int, offset: Int)
    /// Lists and dictionaries nested deeper than the limit.
    case tooDeep(limit: Int, offset: Int)
    /// More values in the document than the limit.
    case tooManyItems(limit: Int, offset: Int)
    /// The input is longer than the limit.
    case inputTooLong(length: Int, limit: Int)
    /// A dictionary key that is not a string.
    case nonStringKey(offset: Int)
    /// A key that is not greater than the one before it (strict mode only).
    case unsortedKey(offset: Int)
    /// The same key twice in one dictionary.
    case duplicateKey(key: String, offset: Int)
    /// Bytes after the end of the top-level value.
    case trailingData(offset: Int)

    /// The byte offset the error refers to.
    public var offset: Int {
        switch self {
        case .unexpectedEnd(_, let o), .unexpectedByte(_, _, let o), .invalidInteger(_, let o),
            .integerOverflow(let o), .stringTooLong(_, _, let o), .stringPastEnd(_, _, let o), .tooDeep(_, let o),
            .tooManyItems(_, let o), .nonStringKey(let o), .unsortedKey(let o), .duplicateKey(_, let o),
            .trailingData(let o):
            return o
        case .inputTooLong(_, let limit): return limit
        }
    }

    public var description: String {
        switch self {
        case .unexpectedEnd(let expected, let o): "unexpected end of input at byte \(o): expected \(expected)"
        case .unexpectedByte(let b, let expected, let o):
            "unexpected byte \(Self.show(b)) at byte \(o): expected \(expected)"
        case .invalidInteger(let reason, let o): "invalid integer at byte \(o): \(reason)"
        case .integerOverflow(let o): "integer at byte \(o) does not fit in 64 bits"
        case .stringTooLong(let n, let limit, let o):
            "string at byte \(o) declares \(n) bytes, more than the limit of \(limit)"
        case .stringPastEnd(let n, let remaining, let o):
            "string at byte \(o) declares \(n) bytes but only \(remaining) remain"
        case .tooDeep(let limit, let o): "nesting deeper than \(limit) levels at byte \(o)"
        case .tooManyItems(let limit, let o): "more than \(limit) values (at byte \(o))"
        case .inputTooLong(let n, let limit): "input of \(n) bytes is larger than the limit of \(limit)"
        case .nonStringKey(let o): "dictionary key at byte \(o) is not a string"
        case .unsortedKey(let o): "dictionary key at byte \(o) is out of order"
        case .duplicateKey(let k, let o): "duplicate dictionary key \"\(k)\" at byte \(o)"
        case .trailingData(let o): "unexpected data after the end of the value at byte \(o)"
        }
    }

    private static func show(_ b: UInt8) -> String {
        if b >= 0x21 && b < 0x7f { return "'\(Character(Unicode.Scalar(b)))'" }
        return "0x" + (b < 16 ? "0" : "") + String(b, radix: 16)
    }
}
