/// Encodes values canonically: dictionary keys in ascending byte order (BEP 3), shortest integers.
public enum BencodeEncoder {
    /// The canonical encoding of `value`.
    public static func encode(_ value: BencodeValue) -> [UInt8] {
        var out: [UInt8] = []
        Self.append(value, to: &out)
        return out
    }

    /// Appends the canonical encoding of `value` to `out`.
    public static func append(_ value: BencodeValue, to out: inout [UInt8]) {
        switch value {
        case .integer(let v):
            out.append(UInt8(ascii: "i"))
            out.append(contentsOf: String(v).utf8)
            out.append(UInt8(ascii: "e"))
        case .string(let s):
            Self.appendString(s, to: &out)
        case .list(let items):
            out.append(UInt8(ascii: "l"))
            for item in items { Self.append(item, to: &out) }
            out.append(UInt8(ascii: "e"))
        case .dictionary(let d):
            out.append(UInt8(ascii: "d"))
            for (k, v) in d {
                Self.appendString(k, to: &out)
                Self.append(v, to: &out)
            }
            out.append(UInt8(ascii: "e"))
        }
    }

    /// Appends a raw, already encoded value (for example an info dictionary kept byte for byte).
    public static func appendString(_ s: [UInt8], to out: inout [UInt8]) {
        out.append(contentsOf: String(s.count).utf8)
        out.append(UInt8(ascii: ":"))
        out.append(contentsOf: s)
    }
}

extension BencodeValue {
    /// The canonical encoding of this value.
    public var encoded: [UInt8] { BencodeEncoder.encode(self) }
}
