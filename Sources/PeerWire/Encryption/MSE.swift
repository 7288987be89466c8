import BigInt
import Crypto

/// Message stream encryption (MSE, also "protocol encryption"), the handshake Azureus introduced and every
/// major client speaks (https://wiki.vuze.com/w/Message_Stream_Encryption):
///
///     1 A->B: Ya, PadA
///     2 B->A: Yb, PadB
///     3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
///             ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA), IA)
///     4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
///     5 A->B: ENCRYPT2(payload)
///
/// Y is a 768-bit Diffie-Hellman public key, S the shared secret, SKEY the torrent's info hash (which B learns
/// from step 3), HASH SHA-1, ENCRYPT RC4 keyed with HASH('keyA'|'keyB', S, SKEY) after 1024 discarded bytes,
/// and ENCRYPT2 the method B selected: RC4 on, or plaintext. Sans-I/O: bytes in, bytes to send out.
public enum MSE {
    /// The 768-bit prime of the exchange; the generator is 2.
    static let prime = BigUInt(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
        radix: 16)!
    static let keyLength = 96
    static let maxPadding = 512
    static let verificationConstant = [UInt8](repeating: 0, count: 8)

    /// The methods of step 3's `crypto_provide` and step 4's `crypto_select`.
    public struct Methods: OptionSet, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let plaintext = Methods(rawValue: 1)
        public static let rc4 = Methods(rawValue: 2)

        public var description: String {
            self == .rc4 ? "rc4" : self == .plaintext ? "plaintext" : "0x" + String(self.rawValue, radix: 16)
        }
    }

    /// What a finished handshake leaves: the torrent, the method, the ciphers for the rest of the stream (nil
    /// for plaintext), and the peer's bytes that came after the handshake (the initial payload first), already
    /// decrypted.
    public struct Established: Sendable {
        public var infoHash: [UInt8]
        public var method: Methods
        public var decryptor: RC4?
        public var encryptor: RC4?
        public var payload: [UInt8]
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case noSync(String)
        case unknownTorrent
        case badVerification
        case noCommonMethod(offered: UInt32)
        case badPadding(Int)

        public var description: String {
            switch self {
            case .noSync(let what): "encrypted handshake: no \(what) within the padding"
            case .unknownTorrent: "encrypted handshake for a torrent we do not have"
            case .badVerification: "encrypted handshake: wrong verification constant"
            case .noCommonMethod(let offered): "encrypted handshake: no method in common (offered 0x\(String(offered, radix: 16)))"
            case .badPadding(let n): "encrypted handshake: padding of \(n) bytes (at most 512)"
            }
        }
    }

    static func sha1(_ parts: [UInt8]...) -> [UInt8] {
        var h = Insecure.SHA1()
        for part in parts { h.update(data: part) }
        return Array(h.finalize())
    }

    /// HASH('req2', SKEY): what a responder matches its torrents against.
    public static func skeyHash(_ infoHash: [UInt8]) -> [UInt8] { sha1(Array("req2".utf8), infoHash) }

    /// One side's Diffie-Hellman key pair (a 160-bit private exponent, as libtorrent and others use).
    struct KeyPair {
        let secret: BigUInt
        let publicKey: [UInt8]

        init(using rng: inout some RandomNumberGenerator) {
            let bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }
            self.secret = bytes.withUnsafeBytes { BigUInt($0) }
            self.publicKey = MSE.fixed(BigUInt(2).power(self.secret, modulus: MSE.prime))
        }

        /// S from the other side's Y (96 bytes).
        func shared(with other: ArraySlice<UInt8>) -> [UInt8] {
            MSE.fixed(Array(other).withUnsafeBytes { BigUInt($0) }.power(self.secret, modulus: MSE.prime))
        }
    }

    /// A number as 96 big-endian bytes.
    static func fixed(_ n: BigUInt) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: keyLength)
        for (w, word) in n.words.enumerated() {
            for b in 0..<UInt.bitWidth / 8 {
                let at = keyLength - 1 - (w * UInt.bitWidth / 8 + b)
                if at >= 0 { bytes[at] = UInt8(truncatingIfNeeded: word >> (8 * b)) }
            }
        }
        return bytes
    }

    static func cipher(_ name: String, _ s: [UInt8], _ skey: [UInt8]) -> RC4 {
        var c = RC4(key: sha1(Array(name.utf8), s, skey))
        c.discard(1024)
        return c
    }

    static func padding(using rng: inout some RandomNumberGenerator) -> [UInt8] {
        (0..<Int.random(in: 0...maxPadding, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// S, once the peer's public key (its first 96 bytes) is in `buffer`, which then loses them; nil before.
    static func sharedSecret(_ keys: KeyPair, from buffer: inout [UInt8]) -> [UInt8]? {
        guard buffer.count >= keyLength else { return nil }
        defer { buffer.removeFirst(keyLength) }
        return keys.shared(with: buffer[0..<keyLength])
    }

    /// Drops `buffer` up to and including `mark`, which must come after at most 512 bytes of padding: true once
    /// found, false while it may still come.
    /// - Throws: `Failure.noSync(what)` when the padding allowance is spent.
    static func skip(to mark: [UInt8], in buffer: inout [UInt8], what: String) throws(Failure) -> Bool {
        if let at = buffer.firstRange(of: mark) {
            buffer.removeFirst(at.upperBound)
            return true
        }
        guard buffer.count < maxPadding + mark.count else { throw .noSync(what) }
        return false
    }

    /// The first `count` bytes of `buffer`, taken off it and run through `cipher`; nil until that many are in.
    static func take(_ count: Int, from buffer: inout [UInt8], through cipher: inout RC4) -> [UInt8]? {
        guard buffer.count >= count else { return nil }
        var bytes = Array(buffer[0..<count])
        buffer.removeFirst(count)
        cipher.apply(&bytes)
        return bytes
    }

    static func be16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    static func int(_ bytes: ArraySlice<UInt8>) -> Int { bytes.reduce(0) { $0 << 8 | Int($1) } }
}

/// The receiving side (B) of an encrypted handshake: an incoming connection whose first bytes are not the
/// plaintext BitTorrent handshake.
public struct MSEResponder {
    private enum State {
        case publicKey
        case sync(s: [UInt8])
        case skey(s: [UInt8])
        case provide(decrypt: RC4, encrypt: RC4, skey: [UInt8])
        case padC(decrypt: RC4, encrypt: RC4, skey: [UInt8], provided: MSE.Methods, length: Int)
        case initialPayload(decrypt: RC4, encrypt: RC4, skey: [UInt8], provided: MSE.Methods, length: Int)
        case done
    }

    private var state = State.publicKey
    private var buffer: [UInt8] = []
    private let keys: MSE.KeyPair
    private let padB: [UInt8]
    private let allowed: MSE.Methods
    private let lookup: ([UInt8]) -> [UInt8]?

    /// - Parameters:
    ///   - allowed: the methods this side accepts; plaintext is selected when both are offered and allowed.
    ///   - lookup: maps HASH('req2', SKEY) (`MSE.skeyHash`) to the info hash of a torrent this side serves.
    public init(allowed: MSE.Methods = [.plaintext, .rc4], using rng: inout some RandomNumberGenerator,
        lookup: @escaping ([UInt8]) -> [UInt8]?)
    {
        self.keys = MSE.KeyPair(using: &rng)
        self.padB = MSE.padding(using: &rng)
        self.allowed = allowed
        self.lookup = lookup
    }

    /// Takes the peer's next bytes; returns the bytes to send back (possibly none) and, once the handshake is
    /// over, what it established. Bytes after that belong to the caller.
    /// - Throws: `MSE.Failure` (drop the connection).
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws -> (send: [UInt8], established: MSE.Established?) {
        self.buffer.append(contentsOf: bytes)
        var out: [UInt8] = []
        while true {
            switch self.state {
            case .publicKey:
                guard let s = MSE.sharedSecret(self.keys, from: &self.buffer) else { return (out, nil) }
                out += self.keys.publicKey + self.padB
                self.state = .sync(s: s)
            case .sync(let s):
                // PadA (at most 512 bytes), then HASH('req1', S).
                let mark = MSE.sha1(Array("req1".utf8), s)
                guard try MSE.skip(to: mark, in: &self.buffer, what: "HASH('req1', S)") else { return (out, nil) }
                self.state = .skey(s: s)
            case .skey(let s):
                guard self.buffer.count >= 20 else { return (out, nil) }
                let req3 = MSE.sha1(Array("req3".utf8), s)
                let req2 = zip(self.buffer[0..<20], req3).map { $0 ^ $1 }
                self.buffer.removeFirst(20)
                guard let skey = self.lookup(req2) else { throw MSE.Failure.unknownTorrent }
                self.state = .provide(decrypt: MSE.cipher("keyA", s, skey), encrypt: MSE.cipher("keyB", s, skey), skey: skey)
            case .provide(var decrypt, let encrypt, let skey):
                guard let head = MSE.take(14, from: &self.buffer, through: &decrypt) else { return (out, nil) }
                guard head[0..<8].allSatisfy({ $0 == 0 }) else { throw MSE.Failure.badVerification }
                let provided = MSE.Methods(rawValue: UInt32(MSE.int(head[8..<12])))
                let length = MSE.int(head[12..<14])
                guard length <= MSE.maxPadding else { throw MSE.Failure.badPadding(length) }
                self.state = .padC(decrypt: decrypt, encrypt: encrypt, skey: skey, provided: provided, length: length)
            case .padC(var decrypt, let encrypt, let skey, let provided, let length):
                guard let bytes = MSE.take(length + 2, from: &self.buffer, through: &decrypt) else { return (out, nil) }
                self.state = .initialPayload(decrypt: decrypt, encrypt: encrypt, skey: skey, provided: provided,
                    length: MSE.int(bytes[length...]))
            case .initialPayload(var decrypt, var encrypt, let skey, let provided, let length):
                guard self.buffer.count >= length else { return (out, nil) }
                let common = provided.intersection(self.allowed)
                let method: MSE.Methods = common.contains(.plaintext) ? .plaintext : common.contains(.rc4) ? .rc4 : []
                guard !method.isEmpty else { throw MSE.Failure.noCommonMethod(offered: provided.rawValue) }
                let payload = MSE.take(length, from: &self.buffer, through: &decrypt)!
                var rest = self.buffer
                if method == .rc4 { decrypt.apply(&rest) }
                var answer = MSE.verificationConstant + MSE.be32(method.rawValue) + MSE.be16(0)
                encrypt.apply(&answer)
                out += answer
                self.buffer = []
                self.state = .done
                return (out, MSE.Established(infoHash: skey, method: method,
                    decryptor: method == .rc4 ? decrypt : nil, encryptor: method == .rc4 ? encrypt : nil,
                    payload: payload + rest))
            case .done:
                preconditionFailure("the handshake is over: the stream belongs to the caller")
            }
        }
    }
}

/// The initiating side (A) of an encrypted handshake, for an outgoing connection to a known torrent.
public struct MSEInitiator {
    private enum State {
        case publicKey
        case sync(decrypt: RC4, encrypt: RC4, mark: [UInt8])
        case select(decrypt: RC4, encrypt: RC4)
        case padD(decrypt: RC4, encrypt: RC4, method: MSE.Methods, length: Int)
        case done
    }

    private var state = State.publicKey
    private var buffer: [UInt8] = []
    private let keys: MSE.KeyPair
    private let padA: [UInt8]
    private let infoHash: [UInt8]
    private let provide: MSE.Methods
    private let initialPayload: [UInt8]

    /// - Parameters:
    ///   - provide: the methods offered; the responder picks one.
    ///   - initialPayload: sent inside step 3 (usually the BitTorrent handshake), at most 65535 bytes.
    public init(infoHash: [UInt8], provide: MSE.Methods = [.plaintext, .rc4], initialPayload: [UInt8] = [],
        using rng: inout some RandomNumberGenerator)
    {
        precondition(initialPayload.count <= 0xFFFF, "the initial payload is at most 65535 bytes")
        self.keys = MSE.KeyPair(using: &rng)
        self.padA = MSE.padding(using: &rng)
        self.infoHash = infoHash
        self.provide = provide
        self.initialPayload = initialPayload
    }

    /// Step 1: what to send first.
    public func start() -> [UInt8] { self.keys.publicKey + self.padA }

    /// Takes the peer's next bytes; returns the bytes to send and, once over, what the handshake established.
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws -> (send: [UInt8], established: MSE.Established?) {
        self.buffer.append(contentsOf: bytes)
        var out: [UInt8] = []
        while true {
            switch self.state {
            case .publicKey:
                guard let s = MSE.sharedSecret(self.keys, from: &self.buffer) else { return (out, nil) }
                var encrypt = MSE.cipher("keyA", s, self.infoHash)
                var decrypt = MSE.cipher("keyB", s, self.infoHash)
                let req3 = MSE.sha1(Array("req3".utf8), s)
                var sealed = MSE.verificationConstant + MSE.be32(self.provide.rawValue) + MSE.be16(0)
                    + MSE.be16(self.initialPayload.count) + self.initialPayload
                encrypt.apply(&sealed)
                out += MSE.sha1(Array("req1".utf8), s) + zip(MSE.skeyHash(self.infoHash), req3).map { $0 ^ $1 } + sealed
                // PadB, then ENCRYPT(VC): the first 8 bytes of B's keystream, which `decrypt` now stands past.
                var mark = MSE.verificationConstant
                decrypt.apply(&mark)
                self.state = .sync(decrypt: decrypt, encrypt: encrypt, mark: mark)
            case .sync(let decrypt, let encrypt, let mark):
                guard try MSE.skip(to: mark, in: &self.buffer, what: "verification constant") else { return (out, nil) }
                self.state = .select(decrypt: decrypt, encrypt: encrypt)
            case .select(var decrypt, let encrypt):
                guard let head = MSE.take(6, from: &self.buffer, through: &decrypt) else { return (out, nil) }
                let method = MSE.Methods(rawValue: UInt32(MSE.int(head[0..<4])))
                let length = MSE.int(head[4..<6])
                guard method == .plaintext || method == .rc4, self.provide.contains(method) else {
                    throw MSE.Failure.noCommonMethod(offered: self.provide.rawValue)
                }
                guard length <= MSE.maxPadding else { throw MSE.Failure.badPadding(length) }
                self.state = .padD(decrypt: decrypt, encrypt: encrypt, method: method, length: length)
            case .padD(var decrypt, let encrypt, let method, let length):
                guard MSE.take(length, from: &self.buffer, through: &decrypt) != nil else { return (out, nil) }
                var rest = self.buffer
                if method == .rc4 { decrypt.apply(&rest) }
                self.buffer = []
                self.state = .done
                return (out, MSE.Established(infoHash: self.infoHash, method: method,
                    decryptor: method == .rc4 ? decrypt : nil, encryptor: method == .rc4 ? encrypt : nil, payload: rest))
            case .done:
                preconditionFailure("the handshake is over: the stream belongs to the caller")
            }
        }
    }
}
