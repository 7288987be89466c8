import Bencode
import PropertyBased

/// Generators of bencode values for property tests.
enum BencodeGen {
    /// Integers across the whole 64-bit range, with the extremes and small numbers well represented.
    static let integer = Gen<Int64>.oneOf(
        Gen<Int64>.value(in: .min ... .max),
        Gen<Int64>.value(in: -300...300),
        Gen.always(Int64.min),
        Gen.always(Int64.max),
        Gen.always(Int64(0)),
        Gen.element(of: [Int64.min + 1, Int64.max - 1, -1, 1, 9, 10, -10]).map { $0! }
    )

    /// Byte strings of any bytes (so often not UTF-8).
    static let byteString = Gen<UInt8>.value(in: 0...255).array(of: 0...24)

    /// Dictionary keys from a small alphabet so that keys share prefixes and sometimes collide.
    static let key = Gen<UInt8?>.element(of: [0x00, 0x61, 0x62, 0x7f, 0x80, 0xff] as [UInt8]).map { $0! }
        .array(of: 0...3)

    /// A value nested at most `depth` levels deep (depth 0: integers and strings only).
    static func value(depth: Int) -> Generator<BencodeValue, AnySequence<(index: Int, value: Any)>> {
        let integer = Self.integer.map { BencodeValue.integer($0) }
        let string = Self.byteString.map { BencodeValue.string($0) }
        guard depth > 0 else { return Gen<BencodeValue>.oneOf(integer, string) }
        let child = Self.value(depth: depth - 1)
        let list = child.array(of: 0...4).map { BencodeValue.list($0) }
        let dictionary = zip(Self.key, child).array(of: 0...4).map { pairs -> BencodeValue in
            var d = BencodeDictionary()
            for (k, v) in pairs { d[k] = v }
            return .dictionary(d)
        }
        return Gen<BencodeValue>.oneOf(integer, string, list, dictionary)
    }

    /// Values nested up to four levels.
    static let anyValue = Self.value(depth: 4)

    /// Random bytes, from 0 to 512 of them, over an alphabet biased towards bencode's own characters.
    static let noise = Gen<UInt8>.oneOf(
        Gen<UInt8>.value(in: 0...255),
        Gen.element(of: Array("ilde0123456789:-".utf8)).map { $0! }
    ).array(of: 0...512)
}

extension BencodeValue {
    /// Nesting depth: 0 for integers and strings.
    var depth: Int {
        switch self {
        case .integer, .string: 0
        case .list(let items): 1 + (items.map(\.depth).max() ?? 0)
        case .dictionary(let d): 1 + (d.map(\.value.depth).max() ?? 0)
        }
    }
}
