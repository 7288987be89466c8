import Bencode

/// Why a tracker exchange failed. Each case says what was wrong and where (`key` is a path in the
/// response such as `peers[3].port`, or a UDP field name).
public enum TrackerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tracker refused the request: an HTTP `failure reason` or a UDP error message (action 3).
    case failure(String)
    /// The body is not valid bencode.
    case bencode(BencodeError)
    /// A value has the wrong bencode type.
    case wrongType(key: String, expected: String, found: String)
    /// A required value is absent.
    case missingKey(String)
    /// A value is present and well-typed but not acceptable (port 0, a negative interval, a bad address).
    case invalidValue(key: String, reason: String)
    /// A length that does not fit the format: a compact peer string that is not a multiple of its stride,
    /// a datagram shorter than its header.
    case badLength(what: String, length: Int, expected: String)
    /// More of something than `TrackerLimits` allows.
    case tooLarge(what: String, count: Int, limit: Int)
    /// No answer after every retransmission BEP 15 allows.
    case timedOut(request: String, attempts: Int)

    public var description: String {
        switch self {
        case .failure(let reason): "tracker failure: \(reason)"
        case .bencode(let e): "tracker response is not valid bencode: \(e)"
        case .wrongType(let key, let expected, let found): "\"\(key)\" should be \(expected), found \(found)"
        case .missingKey(let key): "missing \"\(key)\" in the tracker response"
        case .invalidValue(let key, let reason): "invalid \"\(key)\": \(reason)"
        case .badLength(let what, let length, let expected): "\(what) has \(length) bytes, expected \(expected)"
        case .tooLarge(let what, let count, let limit): "\(what): \(count) is more than the limit of \(limit)"
        case .timedOut(let request, let attempts): "no answer to the \(request) request after \(attempts) attempts"
        }
    }
}
