// Issue 17: the live extension of the peer wire (BEP 10, "peer_live").
import Bencode

/// A message of the `peer_live` extension: a bencoded dictionary `{t: kind, …}`, followed for a chunk by its bytes
/// (as ut_metadata carries a piece).
///
/// - `have` `{t: 0, h: newest, b: bitmap[, s: 1][, i: header]}`: the chunks the sender holds, and the number of the
///   stream's newest header chunk (`LiveChunk.Kind.header`), held beyond the window for viewers who join late. Bit i of byte j (high bit first)
///   says whether it holds chunk `newest - (8j + i)`; bit 0 is the newest itself. Sent to every neighbour on each
///   new chunk, so it is the whole state, never a change. `s: 1` says the sender is the source, which viewers ask
///   only when no other neighbour has a chunk (its upload is the one to spare).
/// - `request` `{t: 1, n}`, `reject` `{t: 3, n}` (not held, or the source's copies of it are spent).
/// - `coming` `{t: 4, n}`: a chunk pushed unasked follows; the receiver asks nobody else for it meanwhile.
/// - `cancel` `{t: 5, n}`: a request no longer wanted (the chunk came from elsewhere, or the asker gave up on this
///   holder); a holder that has not started sending it drops it from its queue.
/// - `peers` `{t: 6, p: ["host:port", …][, s: "host:port"]}`: some of the sender's neighbours (their listen
///   addresses, at most `maxPeers`), and the stream's source when it is one of them: a viewer whose neighbours found
///   each other before they found the source learns where it is.
/// - `chunk` `{t: 2, n, ts, sig[, k: kind]}` and the payload: sent when asked, or pushed unasked to a neighbour that lacks it.
public enum LiveMessage: Equatable, Sendable {
    case have(newest: UInt64, bits: [UInt8], source: Bool = false, header: UInt64? = nil)
    case request(UInt64)
    case chunk(LiveChunk)
    case reject(UInt64)
    case coming(UInt64)
    case cancel(UInt64)
    case peers([String], source: String?)

    /// Addresses a `peers` message carries at most, and the longest one.
    public static let maxPeers = 20
    static let maxAddressLength = 64

    /// The extension's name in the BEP 10 `m` dictionary.
    public static let name = "peer_live"

    public init(decoding bytes: [UInt8]) throws(LiveError) {
        let header: BencodeNode
        let end: Int
        do { (header, end) = try BencodeDecoder(limits: .message).decodePrefix(bytes) } catch {
            throw .badMessage("\(error)")
        }
        let d = header.value
        guard let kind = d["t"]?.integer else { throw .badMessage("no t") }
        func number(_ key: String) throws(LiveError) -> UInt64 {
            guard let n = d[key]?.integer, n >= 0 else { throw .badMessage("no \(key), or a negative one") }
            return UInt64(n)
        }
        guard kind == 2 || end == bytes.count else { throw .badMessage("bytes after a message that carries none") }
        switch kind {
        case 0:
            guard let bits = d["b"]?.bytes, bits.count <= LiveLimits.maxHaveWindow / 8 else {
                throw .badMessage("a have's bitmap is missing or longer than \(LiveLimits.maxHaveWindow / 8) bytes")
            }
            self = .have(newest: try number("h"), bits: bits, source: d["s"]?.integer == 1,
                header: d["i"] == nil ? nil : try number("i"))
        case 1: self = .request(try number("n"))
        case 3: self = .reject(try number("n"))
        case 4: self = .coming(try number("n"))
        case 5: self = .cancel(try number("n"))
        case 6:
            guard let list = d["p"]?.list, list.count <= Self.maxPeers else {
                throw .badMessage("peers: p is missing or names more than \(Self.maxPeers)")
            }
            func address(_ v: BencodeValue?) throws(LiveError) -> String {
                guard let b = v?.bytes, b.count <= Self.maxAddressLength, let s = String(validating: b, as: UTF8.self)
                else { throw .badMessage("peers: an address is not text of at most \(Self.maxAddressLength) bytes") }
                return s
            }
            var peers: [String] = []
            for v in list { peers.append(try address(v)) }
            self = .peers(peers, source: d["s"] == nil ? nil : try address(d["s"]))
        case 2:
            guard let signature = d["sig"]?.bytes, signature.count == LiveLimits.signatureLength else {
                throw .badMessage("a chunk's signature must be \(LiveLimits.signatureLength) bytes")
            }
            guard bytes.count - end <= LiveLimits.maxPayload else {
                throw .badMessage("a chunk of \(bytes.count - end) bytes (at most \(LiveLimits.maxPayload))")
            }
            guard let kind = LiveChunk.Kind(rawValue: UInt8(clamping: d["k"]?.integer ?? 0)), (d["k"]?.integer ?? 0) >= 0
            else { throw .badMessage("unknown chunk kind \(d["k"]?.integer ?? 0)") }
            self = .chunk(LiveChunk(number: try number("n"), time: try number("ts"), kind: kind,
                payload: Array(bytes[end...]), signature: signature))
        default:
            throw .badMessage("unknown t \(kind)")
        }
    }

    public func encoded() -> [UInt8] {
        func int(_ v: UInt64) -> BencodeValue { .integer(Int64(clamping: v)) }
        switch self {
        case .have(let newest, let bits, let source, let header):
            var d = BencodeDictionary([("t", .integer(0)), ("h", int(newest)), ("b", .string(bits))])
            if source { d["s"] = 1 }
            if let header { d["i"] = int(header) }
            return BencodeEncoder.encode(.dictionary(d))
        case .request(let n): return BencodeEncoder.encode(["t": 1, "n": int(n)])
        case .reject(let n): return BencodeEncoder.encode(["t": 3, "n": int(n)])
        case .coming(let n): return BencodeEncoder.encode(["t": 4, "n": int(n)])
        case .cancel(let n): return BencodeEncoder.encode(["t": 5, "n": int(n)])
        case .peers(let peers, let source):
            var d = BencodeDictionary([("t", .integer(6)), ("p", .list(peers.map { .text($0) }))])
            if let source { d["s"] = .text(source) }
            return BencodeEncoder.encode(.dictionary(d))
        case .chunk(let c):
            var d = BencodeDictionary([("t", .integer(2)), ("n", int(c.number)), ("ts", int(c.time)),
                ("sig", .string(c.signature))])
            if c.kind != .media { d["k"] = .integer(Int64(c.kind.rawValue)) }
            return BencodeEncoder.encode(.dictionary(d)) + c.payload
        }
    }

    /// The `have` of a set of chunks: the newest and a bitmap of at most `window` below it.
    public static func have(_ held: some Sequence<UInt64>, window: Int, source: Bool = false, header: UInt64? = nil)
        -> LiveMessage?
    {
        let held = Array(held)
        guard let newest = held.max() else { return nil }
        let span = min(window, LiveLimits.maxHaveWindow)
        var bits = [UInt8](repeating: 0, count: (span + 7) / 8)
        for n in held where newest - n < UInt64(span) {
            let i = Int(newest - n)
            bits[i / 8] |= 0x80 >> UInt8(i % 8)
        }
        return .have(newest: newest, bits: bits, source: source, header: header)
    }

    /// The chunks a `have` says are held.
    public static func held(newest: UInt64, bits: [UInt8]) -> Set<UInt64> {
        var out: Set<UInt64> = []
        for i in 0..<bits.count * 8 where bits[i / 8] & (0x80 >> UInt8(i % 8)) != 0 && UInt64(i) <= newest {
            out.insert(newest - UInt64(i))
        }
        return out
    }
}
