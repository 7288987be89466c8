// BEP 3: the `bitfield` message: one bit per piece, the high bit of the first byte is piece 0,
// spare bits at the end are zero.

/// A fixed-size set of piece flags with the BEP 3 byte encoding (most significant bit first).
public struct Bitfield: Hashable, Sendable, CustomStringConvertible {
    /// The number of bits.
    public let count: Int
    /// The encoding: `(count + 7) / 8` bytes, spare bits zero.
    public private(set) var bytes: [UInt8]
    /// The number of bits set.
    public private(set) var setCount: Int

    /// A bitfield of `count` bits, all clear (or all set).
    public init(count: Int, allSet: Bool = false) {
        precondition(count >= 0, "a bitfield has a non-negative size")
        self.count = count
        self.bytes = [UInt8](repeating: allSet ? 0xFF : 0, count: (count + 7) / 8)
        self.setCount = allSet ? count : 0
        if allSet && count % 8 != 0 { self.bytes[self.bytes.count - 1] = Self.spareMask(count: count) ^ 0xFF }
    }

    /// Decodes a bitfield message payload for a torrent of `count` pieces.
    /// - Throws: `BitfieldError` when the length is not `(count + 7) / 8` or a spare bit is set.
    public init(bytes: [UInt8], count: Int) throws(BitfieldError) {
        precondition(count >= 0, "a bitfield has a non-negative size")
        let expected = (count + 7) / 8
        guard bytes.count == expected else {
            throw BitfieldError("\(bytes.count) bytes for \(count) pieces, expected \(expected)")
        }
        if count % 8 != 0, bytes[expected - 1] & Self.spareMask(count: count) != 0 {
            throw BitfieldError("spare bits after piece \(count - 1) are set")
        }
        self.count = count
        self.bytes = bytes
        self.setCount = bytes.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    /// The bits of the last byte that follow the last piece.
    private static func spareMask(count: Int) -> UInt8 { 0xFF >> UInt8(count % 8) }

    /// Reads or changes bit `index`.
    /// - Precondition: `0 <= index < count`.
    public subscript(index: Int) -> Bool {
        get {
            precondition(index >= 0 && index < self.count, "bit \(index) of \(self.count)")
            return self.bytes[index >> 3] & (0x80 >> UInt8(index & 7)) != 0
        }
        set {
            precondition(index >= 0 && index < self.count, "bit \(index) of \(self.count)")
            let mask: UInt8 = 0x80 >> UInt8(index & 7)
            let was = self.bytes[index >> 3] & mask != 0
            guard was != newValue else { return }
            self.bytes[index >> 3] ^= mask
            self.setCount += newValue ? 1 : -1
        }
    }

    /// True when every bit is set (and for an empty bitfield).
    public var allSet: Bool { self.setCount == self.count }
    /// True when no bit is set.
    public var noneSet: Bool { self.setCount == 0 }

    /// The indices of the bits set, in order.
    public var setIndices: [Int] { (0..<self.count).filter { self[$0] } }

    public var description: String {
        String((0..<self.count).map { self[$0] ? "1" : "0" })
    }
}

/// Why bytes are not a valid bitfield for a torrent.
public struct BitfieldError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Bitfield {
    /// A bitfield with every bit set.
    public static func full(_ count: Int) -> Bitfield { Bitfield(count: count, allSet: true) }

    /// The bits set here and clear in `other` (of the same size).
    public func subtracting(_ other: Bitfield) -> Bitfield {
        precondition(other.count == self.count, "bitfields of \(self.count) and \(other.count) bits")
        var result = self
        var set = 0
        for i in result.bytes.indices {
            result.bytes[i] &= ~other.bytes[i]
            set += result.bytes[i].nonzeroBitCount
        }
        result.setCount = set
        return result
    }
}
