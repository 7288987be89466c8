import Bencode

/// Why a datagram is not an acceptable KRPC message, or why an item cannot be built.
///
/// Decoding never traps on a peer's input: it returns a message or throws one of these. A query whose
/// envelope (`t`, `y`, `q`) was readable but whose arguments were not throws `.invalidQuery`, which carries
/// the transaction id so that the node can answer with a short protocol error (203).
public indirect enum DHTError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The datagram is longer than `KRPCLimits.maxDatagramLength`; it was not decoded at all.
    case datagramTooLong(length: Int, limit: Int)
    /// The bytes are not bencode within the limits.
    case bencode(BencodeError)
    /// The top-level value (or an argument dictionary) is not a dictionary.
    case notADictionary(String)
    /// A required key is missing.
    case missingKey(String)
    /// A key holds the wrong bencode type.
    case wrongType(key: String, expected: String)
    /// A byte string has the wrong length.
    case badLength(key: String, length: Int, expected: String)
    /// A list or compact string holds more entries than the limit.
    case tooMany(key: String, count: Int, limit: Int)
    /// The transaction id is empty or longer than `KRPCLimits.maxTransactionIDLength`.
    case transactionIDLength(Int)
    /// `y` is not `q`, `r` or `e`.
    case unknownMessageType(String)
    /// A value is out of range or not canonical bencode.
    case invalidValue(key: String, reason: String)
    /// A query whose arguments are malformed; `reason` says how.
    case invalidQuery(transactionID: [UInt8], method: String, reason: DHTError)

    public var description: String {
        switch self {
        case .datagramTooLong(let n, let limit): "datagram of \(n) bytes is longer than the limit of \(limit)"
        case .bencode(let e): "not bencode: \(e)"
        case .notADictionary(let what): "\(what) is not a dictionary"
        case .missingKey(let k): "missing key \"\(k)\""
        case .wrongType(let k, let expected): "\"\(k)\" is not \(expected)"
        case .badLength(let k, let n, let expected): "\"\(k)\" has \(n) bytes, expected \(expected)"
        case .tooMany(let k, let n, let limit): "\"\(k)\" holds \(n) entries, more than the limit of \(limit)"
        case .transactionIDLength(let n): "transaction id of \(n) bytes (1 to 8 accepted)"
        case .unknownMessageType(let y): "unknown message type \"\(y)\""
        case .invalidValue(let k, let reason): "\"\(k)\": \(reason)"
        case .invalidQuery(_, let method, let reason): "invalid \(method) query: \(reason)"
        }
    }
}
