// Channels (issue 15): signed news that propagates from peer to peer. Pure: no I/O, no clock.

/// Why a channel's pointer, revision, item or post was refused. Each case names what was wrong, so that a
/// subscriber can say it and a test can assert it; nothing is fetched or changed after one of these.
public enum ChannelRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// A link or key that cannot be read.
    case badLink(String)
    /// The pointer's signature does not verify under the channel's key.
    case badSignature
    /// The pointer's sequence number is not above the revision already held.
    case staleSequence(got: Int64, have: Int64)
    /// The pointer's value is not `{"ih": <20 bytes>}`, or is over BEP 44's 1000 bytes.
    case badPointer(String)
    /// The revision (its info dictionary or metadata) breaks a limit or the feed layout.
    case badRevision(String)
    /// A post that cannot be read, is over its limits, or whose signature fails.
    case badPost(String)
    /// A post by a key that the group does not list.
    case notAMember(author: String)
    /// The key is on the local block list.
    case blocked(String)
    /// The revision would take more disk than the subscription's quota allows.
    case overQuota(needed: Int64, quota: Int64)

    public var description: String {
        switch self {
        case .badLink(let why): "not a channel link: \(why)"
        case .badSignature: "the pointer's signature does not verify under the channel's key"
        case .staleSequence(let got, let have): "sequence \(got) is not newer than the revision held (\(have))"
        case .badPointer(let why): "not a channel pointer: \(why)"
        case .badRevision(let why): "revision refused: \(why)"
        case .badPost(let why): "post refused: \(why)"
        case .notAMember(let author): "post refused: \(author) is not a member of the group"
        case .blocked(let key): "\(key) is on the block list"
        case .overQuota(let needed, let quota): "revision needs \(needed) bytes, over the quota of \(quota)"
        }
    }
}
