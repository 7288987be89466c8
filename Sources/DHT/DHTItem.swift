// BEP 44: storing arbitrary data in the DHT. Immutable items live under the SHA-1 of their bencoded value;
// mutable items under the SHA-1 of an ed25519 public key and an optional salt, signed by that key.
import Bencode
import Crypto

/// A BEP 44 item: an immutable value, or a mutable value signed by its publisher.
public enum DHTItem: Equatable, Sendable {
    case immutable(BencodeValue)
    case mutable(MutableItem)

    /// The largest bencoded value a node stores (BEP 44: "MAY reject ... longer than 1000 bytes").
    public static let maxValueLength = 1000
    /// The longest salt (BEP 44: "MUST NOT be longer than 64 bytes").
    public static let maxSaltLength = 64

    /// The value (`v`).
    public var value: BencodeValue {
        switch self {
        case .immutable(let v): v
        case .mutable(let m): m.value
        }
    }

    /// The key the item is stored under.
    public var target: NodeID {
        switch self {
        case .immutable(let v): Self.immutableTarget(for: v)
        case .mutable(let m): m.target
        }
    }

    /// SHA-1 of the value's bencoding: where an immutable item lives.
    public static func immutableTarget(for value: BencodeValue) -> NodeID {
        NodeID(bytes: Array(Insecure.SHA1.hash(data: value.encoded)))!
    }
}

/// A BEP 44 mutable item: a value signed with ed25519, versioned by a sequence number.
public struct MutableItem: Equatable, Sendable {
    /// `k`: the publisher's ed25519 public key (32 bytes).
    public var publicKey: [UInt8]
    /// `salt`: lets one key publish many items (0 to 64 bytes; empty means none).
    public var salt: [UInt8]
    /// `seq`: increases with every update.
    public var sequence: Int64
    /// `v`: the value.
    public var value: BencodeValue
    /// `sig`: ed25519 signature (64 bytes) over `signedBytes`.
    public var signature: [UInt8]

    /// An item as received; `hasValidSignature` says whether to believe it.
    public init(publicKey: [UInt8], salt: [UInt8] = [], sequence: Int64, value: BencodeValue, signature: [UInt8]) {
        self.publicKey = publicKey
        self.salt = salt
        self.sequence = sequence
        self.value = value
        self.signature = signature
    }

    /// Signs `value` with `privateKey`.
    /// - Throws: `DHTError.invalidValue` when the value's bencoding is longer than 1000 bytes, the salt longer
    ///   than 64 bytes, or the sequence number negative.
    public static func signed(
        value: BencodeValue, sequence: Int64, salt: [UInt8] = [], privateKey: Curve25519.Signing.PrivateKey
    ) throws(DHTError) -> MutableItem {
        let encoded = value.encoded
        guard encoded.count <= DHTItem.maxValueLength else {
            throw .invalidValue(key: "v", reason: "\(encoded.count) bytes, more than \(DHTItem.maxValueLength)")
        }
        guard salt.count <= DHTItem.maxSaltLength else {
            throw .invalidValue(key: "salt", reason: "\(salt.count) bytes, more than \(DHTItem.maxSaltLength)")
        }
        guard sequence >= 0 else { throw .invalidValue(key: "seq", reason: "negative") }
        let message = Self.signedBytes(salt: salt, sequence: sequence, encodedValue: encoded)
        let signature: [UInt8]
        do {
            signature = Array(try privateKey.signature(for: message))
        } catch {
            throw .invalidValue(key: "sig", reason: "signing failed: \(error)")
        }
        return MutableItem(
            publicKey: Array(privateKey.publicKey.rawRepresentation), salt: salt, sequence: sequence, value: value,
            signature: signature)
    }

    /// SHA-1 of the public key followed by the salt: where the item lives.
    public static func target(publicKey: [UInt8], salt: [UInt8] = []) -> NodeID {
        NodeID(bytes: Array(Insecure.SHA1.hash(data: publicKey + salt)))!
    }

    public var target: NodeID { Self.target(publicKey: self.publicKey, salt: self.salt) }

    /// What BEP 44 signs: `4:salt<len>:<salt>` (only for a non-empty salt), then `3:seqi<seq>e1:v` and the
    /// value's bencoding, e.g. `3:seqi1e1:v12:Hello World!`.
    public static func signedBytes(salt: [UInt8], sequence: Int64, encodedValue: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(salt.count + encodedValue.count + 40)
        if !salt.isEmpty {
            out.append(contentsOf: Array("4:salt".utf8))
            BencodeEncoder.appendString(salt, to: &out)
        }
        out.append(contentsOf: Array("3:seqi\(sequence)e1:v".utf8))
        out.append(contentsOf: encodedValue)
        return out
    }

    /// The bytes this item's signature covers.
    public var signedBytes: [UInt8] {
        Self.signedBytes(salt: self.salt, sequence: self.sequence, encodedValue: self.value.encoded)
    }

    /// True when the key is a valid ed25519 key and the signature verifies over `signedBytes`.
    public var hasValidSignature: Bool {
        guard self.publicKey.count == 32, self.signature.count == 64,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: self.publicKey)
        else { return false }
        return key.isValidSignature(self.signature, for: self.signedBytes)
    }
}
