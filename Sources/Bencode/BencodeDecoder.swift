/// Decodes bencode with bounded depth, item count and string length.
///
/// The decoder checks every declared length against both the remaining input and the limits before
/// it allocates, so a 20-byte input that declares a 2 GiB string fails at once and costs nothing.
/// Integers must be canonical (`i0e`, no leading zeros, no `-0`) and fit in 64 bits. Dictionary keys
/// may be out of order unless `limits.requireSortedKeys` is set; such dictionaries are marked
/// `isCanonical == false`. Duplicate keys are always refused.
public struct BencodeDecoder: Sendable {
    public var limits: BencodeLimits

    public init(limits: BencodeLimits = .default) { self.limits = limits }

    /// Decodes one complete value; the input must hold nothing after it.
    public func decode(_ bytes: [UInt8]) throws(BencodeError) -> BencodeNode {
        let (node, end) = try self.decodePrefix(bytes)
        guard end == bytes.count else { throw .trailingData(offset: end) }
        return node
    }

    /// Decodes one complete value into a plain `BencodeValue`.
    public func decodeValue(_ bytes: [UInt8]) throws(BencodeError) -> BencodeValue {
        try self.decode(bytes).value
    }

    /// Decodes the value at the start of `bytes` and returns it with the offset just past it
    /// (for messages that carry raw data after a bencoded header, such as ut_metadata).
    public func decodePrefix(_ bytes: [UInt8]) throws(BencodeError) -> (BencodeNode, Int) {
        guard bytes.count <= self.limits.maxInputLength else {
            throw .inputTooLong(length: bytes.count, limit: self.limits.maxInputLength)
        }
        do {
            return try bytes.withUnsafeBufferPointer { buffer in
                var state = State(input: buffer, limits: self.limits)
                let node = try state.value(depth: 0)
                return (node, state.position)
            }
        } catch let e as BencodeError {
            throw e
        } catch {
            fatalError("internal inconsistency: unexpected error \(error)")
        }
    }
}

private struct State {
    let input: UnsafeBufferPointer<UInt8>
    let limits: BencodeLimits
    var position = 0
    var items = 0

    init(input: UnsafeBufferPointer<UInt8>, limits: BencodeLimits) {
        self.input = input
        self.limits = limits
    }

    private func peek(_ expected: String) throws(BencodeError) -> UInt8 {
        guard self.position < self.input.count else { throw .unexpectedEnd(expected: expected, offset: self.position) }
        return self.input[self.position]
    }

    private mutating func count() throws(BencodeError) {
        self.items += 1
        if self.items > self.limits.maxItems { throw .tooManyItems(limit: self.limits.maxItems, offset: self.position) }
    }

    mutating func value(depth: Int) throws(BencodeError) -> BencodeNode {
        let start = self.position
        let first = try self.peek("a value")
        try self.count()
        switch first {
        case UInt8(ascii: "i"):
            self.position += 1
            let v = try self.integer(terminator: UInt8(ascii: "e"), start: start)
            return BencodeNode(span: start..<self.position, kind: .integer(v))
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            let s = try self.string()
            return BencodeNode(span: start..<self.position, kind: .string(s))
        case UInt8(ascii: "l"):
            guard depth < self.limits.maxDepth else { throw .tooDeep(limit: self.limits.maxDepth, offset: start) }
            self.position += 1
            var items: [BencodeNode] = []
            while try self.peek("a list item or 'e'") != UInt8(ascii: "e") {
                items.append(try self.value(depth: depth + 1))
            }
            self.position += 1
            return BencodeNode(span: start..<self.position, kind: .list(items))
        case UInt8(ascii: "d"):
            guard depth < self.limits.maxDepth else { throw .tooDeep(limit: self.limits.maxDepth, offset: start) }
            self.position += 1
            var entries: [BencodeNode.Entry] = []
            var sorted = true
            var seen: Set<[UInt8]>? = nil  // built only once keys arrive out of order
            while try self.peek("a dictionary key or 'e'") != UInt8(ascii: "e") {
                let keyStart = self.position
                guard case UInt8(ascii: "0")...UInt8(ascii: "9") = self.input[keyStart] else {
                    throw .nonStringKey(offset: keyStart)
                }
                try self.count()
                let key = try self.string()
                if let last = entries.last?.key {
                    if key == last { throw .duplicateKey(key: String(decoding: key, as: UTF8.self), offset: keyStart) }
                    if sorted && !last.lexicographicallyPrecedes(key) {
                        if self.limits.requireSortedKeys { throw .unsortedKey(offset: keyStart) }
                        sorted = false
                        seen = Set(entries.map(\.key))
                    }
                    if !sorted {
                        if seen!.contains(key) {
                            throw .duplicateKey(key: String(decoding: key, as: UTF8.self), offset: keyStart)
                        }
                        seen!.insert(key)
                    }
                }
                let v = try self.value(depth: depth + 1)
                entries.append(.init(key: key, value: v))
            }
            self.position += 1
            return BencodeNode(span: start..<self.position, kind: .dictionary(entries), isCanonical: sorted)
        default:
            throw .unexpectedByte(first, expected: "'i', 'l', 'd' or a string length", offset: start)
        }
    }

    /// Reads a canonical signed decimal integer up to `terminator`.
    private mutating func integer(terminator: UInt8, start: Int) throws(BencodeError) -> Int64 {
        var negative = false
        if try self.peek("a digit or '-'") == UInt8(ascii: "-") {
            negative = true
            self.position += 1
        }
        let digitsStart = self.position
        var magnitude: UInt64 = 0
        while true {
            let c = try self.peek("a digit or 'e'")
            if c == terminator { break }
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else {
                throw .unexpectedByte(c, expected: "a digit or 'e'", offset: self.position)
            }
            let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 || m2 > UInt64(Int64.max) + (negative ? 1 : 0) { throw .integerOverflow(offset: start) }
            magnitude = m2
            self.position += 1
        }
        let digits = self.position - digitsStart
        if digits == 0 { throw .invalidInteger(reason: "no digits", offset: start) }
        if digits > 1 && self.input[digitsStart] == UInt8(ascii: "0") {
            throw .invalidInteger(reason: "leading zero", offset: start)
        }
        if negative && magnitude == 0 { throw .invalidInteger(reason: "negative zero", offset: start) }
        self.position += 1  // terminator
        return negative ? (magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)) : Int64(magnitude)
    }

    /// Reads `<length>:<bytes>`, checking the length before allocating.
    private mutating func string() throws(BencodeError) -> [UInt8] {
        let start = self.position
        var length: UInt64 = 0
        var digits = 0
        while true {
            let c = try self.peek("a digit or ':'")
            if c == UInt8(ascii: ":") { break }
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else {
                throw .unexpectedByte(c, expected: "a digit or ':'", offset: self.position)
            }
            let (m1, o1) = length.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 { throw .integerOverflow(offset: start) }
            length = m2
            digits += 1
            self.position += 1
        }
        if digits > 1 && self.input[start] == UInt8(ascii: "0") {
            throw .invalidInteger(reason: "string length with a leading zero", offset: start)
        }
        self.position += 1  // ':'
        let remaining = self.input.count - self.position
        if length > UInt64(self.limits.maxStringLength) {
            throw .stringTooLong(declared: length, limit: self.limits.maxStringLength, offset: start)
        }
        if length > UInt64(remaining) { throw .stringPastEnd(declared: length, remaining: remaining, offset: start) }
        let n = Int(length)
        let bytes = Array(self.input[self.position..<self.position + n])
        self.position += n
        return bytes
    }
}
