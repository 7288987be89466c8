import Bencode
import Crypto
import DHT

/// A channel's pointer: the BEP 44 mutable item under the channel's key and salt whose value is BEP 46's
/// `{"ih": <the current revision's info-hash>}` and whose `seq` is the revision number. A subscriber checks it
/// whole, here, before it fetches anything; the same signed item is what subscribers put again and pass on.
public struct ChannelPointer: Sendable, Equatable {
    public let link: ChannelLink
    public let item: MutableItem

    public var sequence: Int64 { self.item.sequence }
    /// The revision's info-hash (v1).
    public var infoHash: [UInt8] { self.item.value["ih"]!.bytes! }

    /// Checks `item` as the pointer of `link`, newer than the revision `held` (nil: none yet).
    public init(item: MutableItem, link: ChannelLink, newerThan held: Int64? = nil) throws(ChannelRefusal) {
        guard item.publicKey == link.publicKey, item.salt == link.salt else {
            throw .badPointer("it is under another key or salt")
        }
        let size = item.value.encoded.count
        guard size <= DHTItem.maxValueLength else {
            throw .badPointer("its value is \(size) bytes, over BEP 44's \(DHTItem.maxValueLength)")
        }
        guard item.hasValidSignature else { throw .badSignature }
        if let held, item.sequence <= held { throw .staleSequence(got: item.sequence, have: held) }
        guard let ih = item.value["ih"]?.bytes, ih.count == 20 else {
            throw .badPointer("its value is not {\"ih\": <20-byte info-hash>}")
        }
        self.link = link
        self.item = item
    }

    /// The publisher's pointer to revision `sequence`.
    public static func signed(
        link: ChannelLink, infoHash: [UInt8], sequence: Int64, key: Curve25519.Signing.PrivateKey
    ) throws(ChannelRefusal) -> ChannelPointer {
        guard Array(key.publicKey.rawRepresentation) == link.publicKey else {
            throw .badPointer("the key is not the channel's")
        }
        let item: MutableItem
        do {
            item = try MutableItem.signed(
                value: ["ih": .string(infoHash)], sequence: sequence, salt: link.salt, privateKey: key)
        } catch { throw .badPointer("\(error)") }
        return try ChannelPointer(item: item, link: link)
    }
}
