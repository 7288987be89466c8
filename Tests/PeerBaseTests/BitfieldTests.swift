import PeerBase
import Testing

/// The error `body` throws as a BitfieldError, or nil.
private func bitfieldError(_ body: () throws -> Void) -> BitfieldError? {
    do { try body() } catch { return error as? BitfieldError }
    return nil
}

@Suite struct BitfieldTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var count: Int
        var set: [Int]
        var bytes: [UInt8]
        var testDescription: String { "\(self.count) bits \(self.set)" }
    }

    static let vectors: [Vector] = [
        Vector(count: 0, set: [], bytes: []),
        Vector(count: 1, set: [0], bytes: [0x80]),
        Vector(count: 8, set: [0, 7], bytes: [0x81]),
        Vector(count: 10, set: [0, 9], bytes: [0x80, 0x40]),
        Vector(count: 12, set: [1, 3, 8, 11], bytes: [0x50, 0x90]),
        Vector(count: 16, set: Array(0..<16), bytes: [0xFF, 0xFF]),
        Vector(count: 17, set: [16], bytes: [0x00, 0x00, 0x80]),
    ]

    @Test(arguments: Self.vectors)
    func encodesMostSignificantBitFirst(vector: Vector) throws {
        var field = Bitfield(count: vector.count)
        for i in vector.set { field[i] = true }
        #expect(field.bytes == vector.bytes)
        #expect(field.setCount == vector.set.count)
        #expect(field.setIndices == vector.set)
        #expect(field.allSet == (vector.set.count == vector.count))
        let decoded = try Bitfield(bytes: vector.bytes, count: vector.count)
        #expect(decoded == field)
        #expect(decoded.setCount == vector.set.count)
    }

    @Test func rejectsWrongLengthsAndSpareBits() {
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x80], count: 10) }
            == BitfieldError("1 bytes for 10 pieces, expected 2"))
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x80, 0x00, 0x00], count: 10) } != nil)
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x00], count: 0) } != nil)
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x80, 0x20], count: 10) }
            == BitfieldError("spare bits after piece 9 are set"))
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x01], count: 7) } != nil)
        #expect(bitfieldError { _ = try Bitfield(bytes: [0x01], count: 8) } == nil)
    }

    @Test func setAndClear() {
        var field = Bitfield(count: 11, allSet: true)
        #expect(field.allSet && field.bytes == [0xFF, 0xE0])
        field[3] = false
        field[3] = false
        #expect(field.setCount == 10 && !field.allSet && !field[3] && field[4])
        field[3] = true
        #expect(field.allSet)
        #expect(Bitfield(count: 5).noneSet)
        #expect(Bitfield(count: 3, allSet: true).description == "111")
    }
}
