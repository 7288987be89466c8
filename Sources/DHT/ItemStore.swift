// BEP 44: the items other nodes put on this node, checked before they are kept.
import PeerBase

/// Why a `put` was refused, with the BEP 44 error code the node answers with.
public enum ItemRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// 205: the bencoded value is longer than 1000 bytes.
    case valueTooBig(length: Int)
    /// 206: the signature does not verify.
    case invalidSignature
    /// 207: the salt is longer than 64 bytes.
    case saltTooBig(length: Int)
    /// 301: `cas` does not match the stored sequence number.
    case casMismatch(expected: Int64, stored: Int64)
    /// 302: the stored item's sequence number is higher (or equal, with another value).
    case sequenceTooOld(offered: Int64, stored: Int64)

    /// The KRPC error code (BEP 44).
    public var code: Int {
        switch self {
        case .valueTooBig: KRPCErrorCode.messageTooBig
        case .invalidSignature: KRPCErrorCode.invalidSignature
        case .saltTooBig: KRPCErrorCode.saltTooBig
        case .casMismatch: KRPCErrorCode.casMismatch
        case .sequenceTooOld: KRPCErrorCode.sequenceTooOld
        }
    }

    /// The short message sent with the code.
    public var description: String {
        switch self {
        case .valueTooBig: "message (v field) too big"
        case .invalidSignature: "invalid signature"
        case .saltTooBig: "salt (salt field) too big"
        case .casMismatch: "CAS mismatch, re-read value and try again"
        case .sequenceTooOld: "sequence number less than current"
        }
    }
}

/// BEP 44 items stored on this node, bounded and expiring.
///
/// A `put` is checked in this order: value size (205), salt size (207), signature (206), `cas` (301), sequence
/// number (302). A mutable put with the stored sequence number and the same value only refreshes the item's
/// lifetime; with another value it is refused (BEP 44: "lower than or equal ... MUST reject"). Items expire
/// `itemLifetime` (2 hours) after their last put. When full, the item put longest ago makes room.
public struct ItemStore: Sendable {
    public struct Limits: Equatable, Sendable {
        public var maxItems: Int
        public var itemLifetime: Duration

        /// 700 items as libtorrent's `max_dht_items`; 2 hours as BEP 44 allows.
        public init(maxItems: Int = 700, itemLifetime: Duration = .seconds(7200)) {
            precondition(maxItems > 0)
            self.maxItems = maxItems
            self.itemLifetime = itemLifetime
        }
    }

    private struct Stored: Sendable {
        var item: DHTItem
        var touched: Instant
    }

    public let limits: Limits
    private var items: [NodeID: Stored] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    public var count: Int { self.items.count }

    /// The item stored under `target`, if any.
    public func item(for target: NodeID) -> DHTItem? { self.items[target]?.item }

    /// Checks and stores `item`, returning the target it is stored under.
    public mutating func put(_ item: DHTItem, cas: Int64?, at now: Instant) -> Result<NodeID, ItemRefusal> {
        let length = item.value.encoded.count
        guard length <= DHTItem.maxValueLength else { return .failure(.valueTooBig(length: length)) }
        let target = item.target
        if case .mutable(let m) = item {
            guard m.salt.count <= DHTItem.maxSaltLength else { return .failure(.saltTooBig(length: m.salt.count)) }
            guard m.hasValidSignature else { return .failure(.invalidSignature) }
            if case .mutable(let old)? = self.items[target]?.item {
                if let cas, cas != old.sequence { return .failure(.casMismatch(expected: cas, stored: old.sequence)) }
                if m.sequence < old.sequence || (m.sequence == old.sequence && m.value != old.value) {
                    return .failure(.sequenceTooOld(offered: m.sequence, stored: old.sequence))
                }
            }
        }
        if self.items[target] == nil && self.items.count >= self.limits.maxItems {
            self.expire(at: now)
            if self.items.count >= self.limits.maxItems,
                let oldest = self.items.min(by: { ($0.value.touched, $0.key) < ($1.value.touched, $1.key) })?.key
            {
                self.items[oldest] = nil
            }
        }
        self.items[target] = Stored(item: item, touched: now)
        return .success(target)
    }

    /// Drops items not put again within `itemLifetime`.
    public mutating func expire(at now: Instant) {
        for key in Array(self.items.keys) where now - self.items[key]!.touched >= self.limits.itemLifetime {
            self.items[key] = nil
        }
    }
}
