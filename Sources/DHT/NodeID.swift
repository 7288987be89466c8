import PeerBase

/// A 160-bit identifier: a node ID, an info-hash or a BEP 44 target (they share one key space, BEP 5).
///
/// Ordered as an unsigned big-endian number. `distance(to:)` is the Kademlia XOR metric, itself a `NodeID`,
/// so that "closer" is plain `<` on distances.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    // The 20 bytes as three big-endian words: bytes 0..<8, 8..<16 and 16..<20.
    var high: UInt64
    var middle: UInt64
    var low: UInt32

    /// The number of bits in an ID.
    public static let bitWidth = 160

    /// All zero bits.
    public static let zero = NodeID(high: 0, middle: 0, low: 0)
    /// All one bits (the largest ID).
    public static let max = NodeID(high: .max, middle: .max, low: .max)

    init(high: UInt64, middle: UInt64, low: UInt32) {
        self.high = high
        self.middle = middle
        self.low = low
    }

    /// Builds an ID from exactly 20 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 20 else { return nil }
        var h: UInt64 = 0
        var m: UInt64 = 0
        var l: UInt32 = 0
        for (i, b) in bytes.enumerated() {
            switch i {
            case 0..<8: h = h << 8 | UInt64(b)
            case 8..<16: m = m << 8 | UInt64(b)
            default: l = l << 8 | UInt32(b)
            }
        }
        self.init(high: h, middle: m, low: l)
    }

    /// Parses 40 hexadecimal digits; nil otherwise.
    public init?(hex: some StringProtocol) {
        guard let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    /// A uniformly random ID.
    public static func random(using rng: inout some RandomNumberGenerator) -> NodeID {
        NodeID(high: rng.next(), middle: rng.next(), low: UInt32(truncatingIfNeeded: rng.next() as UInt64))
    }

    /// A random ID that shares its first `bits` bits with `prefix` (0 ≤ bits ≤ 160).
    public static func random(sharingFirst bits: Int, with prefix: NodeID, using rng: inout some RandomNumberGenerator)
        -> NodeID
    {
        precondition(bits >= 0 && bits <= 160)
        let r = NodeID.random(using: &rng)
        let mask = NodeID.prefixMask(bits)
        return (prefix & mask) | (r & ~mask)
    }

    /// The ID with its first `bits` bits set and the rest clear.
    static func prefixMask(_ bits: Int) -> NodeID {
        func word<T: FixedWidthInteger & UnsignedInteger>(_ n: Int, _: T.Type) -> T {
            if n <= 0 { return 0 }
            if n >= T.bitWidth { return T.max }
            return ~(T.max >> T(n))
        }
        return NodeID(high: word(bits, UInt64.self), middle: word(bits - 64, UInt64.self), low: word(bits - 128, UInt32.self))
    }

    /// The 20 bytes, big-endian.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        self.append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: self.high >> (56 - 8 * i))) }
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: self.middle >> (56 - 8 * i))) }
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: self.low >> (24 - 8 * i))) }
    }

    /// The byte at `index` (0 ≤ index < 20).
    public subscript(byte index: Int) -> UInt8 {
        switch index {
        case 0..<8: UInt8(truncatingIfNeeded: self.high >> (56 - 8 * index))
        case 8..<16: UInt8(truncatingIfNeeded: self.middle >> (56 - 8 * (index - 8)))
        case 16..<20: UInt8(truncatingIfNeeded: self.low >> (24 - 8 * (index - 16)))
        default: preconditionFailure("byte index \(index) out of range")
        }
    }

    /// The XOR distance between this ID and `other` (BEP 5).
    public func distance(to other: NodeID) -> NodeID { self ^ other }

    /// The number of leading zero bits (160 for zero).
    public var leadingZeroBitCount: Int {
        if self.high != 0 { return self.high.leadingZeroBitCount }
        if self.middle != 0 { return 64 + self.middle.leadingZeroBitCount }
        return 128 + self.low.leadingZeroBitCount
    }

    /// How many leading bits this ID shares with `other` (160 when equal).
    public func commonPrefixLength(with other: NodeID) -> Int { (self ^ other).leadingZeroBitCount }

    /// True when this ID is closer to `target` than `other` is.
    public func isCloser(to target: NodeID, than other: NodeID) -> Bool {
        (self ^ target) < (other ^ target)
    }

    public static func < (a: NodeID, b: NodeID) -> Bool {
        if a.high != b.high { return a.high < b.high }
        if a.middle != b.middle { return a.middle < b.middle }
        return a.low < b.low
    }

    public static func ^ (a: NodeID, b: NodeID) -> NodeID {
        NodeID(high: a.high ^ b.high, middle: a.middle ^ b.middle, low: a.low ^ b.low)
    }

    static func & (a: NodeID, b: NodeID) -> NodeID {
        NodeID(high: a.high & b.high, middle: a.middle & b.middle, low: a.low & b.low)
    }

    static func | (a: NodeID, b: NodeID) -> NodeID {
        NodeID(high: a.high | b.high, middle: a.middle | b.middle, low: a.low | b.low)
    }

    static prefix func ~ (a: NodeID) -> NodeID { NodeID(high: ~a.high, middle: ~a.middle, low: ~a.low) }

    /// 40 lower-case hexadecimal digits.
    public var description: String { Hex.encode(self.bytes) }
}

/// A node's contact: its ID and UDP endpoint ("compact node info", 26 bytes for IPv4, 38 for IPv6).
public struct NodeInfo: Hashable, Sendable, CustomStringConvertible {
    public var id: NodeID
    public var endpoint: DHTEndpoint

    public init(id: NodeID, endpoint: DHTEndpoint) {
        self.id = id
        self.endpoint = endpoint
    }

    /// Reads one compact node info entry (26 or 38 bytes); nil for other lengths.
    public init?(compact bytes: some Collection<UInt8>) {
        guard bytes.count == 26 || bytes.count == 38 else { return nil }
        let b = Array(bytes)
        guard let id = NodeID(bytes: b[0..<20]), let endpoint = DHTEndpoint(compact: b[20...]) else { return nil }
        self.init(id: id, endpoint: endpoint)
    }

    /// The compact form: ID, address, port.
    public var compact: [UInt8] {
        var out: [UInt8] = []
        self.appendCompact(to: &out)
        return out
    }

    func appendCompact(to out: inout [UInt8]) {
        self.id.append(to: &out)
        self.endpoint.appendCompact(to: &out)
    }

    public var description: String { "\(self.id.description.prefix(8))…@\(self.endpoint)" }
}
