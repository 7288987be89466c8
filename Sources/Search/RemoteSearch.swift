// The asking side of search between peers, with no I/O: whom to ask when (QueryFanout), how the answers merge
// and rank (RemoteResults), and whose hits are not to be trusted (HitLedger). PeerKit's SearchOverlay drives them.
import Crypto
import Foundation
import Metainfo
import PeerBase

/// One search over a node's neighbours, asked in widening waves (Gnutella's dynamic querying, GUESS): a probe
/// of a few, then twice as many each `widenEvery` (at once when all asked have answered), until enough
/// distinct results came, enough neighbours answered, everyone was asked and answered, or time ran out.
public struct QueryFanout<Key: Hashable & Sendable>: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var probe = 3
        public var widenEvery = Duration.milliseconds(1500)
        public var enoughResults = 150
        public var maxResponders = 64
        public var timeout = Duration.seconds(10)
        /// Times a busy neighbour is asked again.
        public var maxRetries = 2
        public init() {}
    }

    public enum Stop: String, Sendable, Codable, Equatable {
        case enoughResults = "enough_results", enoughResponders = "enough_responders", timeout, exhausted
    }

    public let configuration: Configuration
    public let started: Instant
    private var waiting: [Key]
    private var pending: Set<Key> = []
    private var wave: Int
    private var nextWiden: Instant
    private var results: Set<[UInt8]> = []
    /// Neighbours that said busy, with when to ask them again (at most `maxRetries` times each).
    private var retries: [(key: Key, at: Instant)] = []
    private var retried: [Key: Int] = [:]
    public private(set) var asked = 0
    public private(set) var answered = 0
    public private(set) var refused = 0
    public private(set) var stopped: Stop?

    /// `neighbours` in the order to ask them (the caller shuffles).
    public init(neighbours: [Key], at now: Instant, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.started = now
        self.waiting = neighbours
        self.wave = max(1, configuration.probe)
        self.nextWiden = now
    }

    public var distinctResults: Int { self.results.count }

    /// The neighbours to ask now.
    public mutating func poll(at now: Instant) -> [Key] {
        self.checkStop(at: now)
        guard self.stopped == nil else { return [] }
        let due = self.retries.filter { $0.at <= now }.map(\.key)
        self.retries.removeAll { $0.at <= now }
        self.pending.formUnion(due)
        guard !self.waiting.isEmpty, now >= self.nextWiden || self.pending.isEmpty else { return due }
        let ask = Array(self.waiting.prefix(min(self.wave, self.configuration.maxResponders - self.asked)))
        self.waiting.removeFirst(ask.count)
        self.pending.formUnion(ask)
        self.asked += ask.count
        self.wave *= 2
        self.nextWiden = now + self.configuration.widenEvery
        return due + ask
    }

    /// `key` answered with these info-hashes.
    public mutating func answered(_ key: Key, infoHashes: [[UInt8]], at now: Instant) {
        guard self.pending.remove(key) != nil else { return }
        self.answered += 1
        self.results.formUnion(infoHashes)
        self.checkStop(at: now)
    }

    /// `key` went away before answering.
    public mutating func refused(_ key: Key, at now: Instant) {
        guard self.pending.remove(key) != nil else { return }
        self.refused += 1
        self.checkStop(at: now)
    }

    /// `key` said busy: it is asked again `after` from now (at most `maxRetries` times), if the search still runs
    /// then.
    public mutating func busy(_ key: Key, after: Duration, at now: Instant) {
        guard self.pending.contains(key) else { return }
        let tries = self.retried[key, default: 0]
        guard tries < self.configuration.maxRetries, now + after < self.started + self.configuration.timeout else {
            return self.refused(key, at: now)
        }
        self.retried[key] = tries + 1
        self.pending.remove(key)
        self.retries.append((key, now + after))
    }

    /// When `poll` has something new to say: the next wave or the time-out.
    public var deadline: Instant? {
        guard self.stopped == nil else { return nil }
        let timeout = self.started + self.configuration.timeout
        let retry = self.retries.map(\.at).min() ?? timeout
        return min(retry, self.waiting.isEmpty ? timeout : min(self.nextWiden, timeout))
    }

    private mutating func checkStop(at now: Instant) {
        guard self.stopped == nil else { return }
        if self.results.count >= self.configuration.enoughResults {
            self.stopped = .enoughResults
        } else if self.answered >= self.configuration.maxResponders {
            self.stopped = .enoughResponders
        } else if now >= self.started + self.configuration.timeout {
            self.stopped = .timeout
        } else if self.pending.isEmpty && self.retries.isEmpty
            && (self.waiting.isEmpty || self.asked >= self.configuration.maxResponders)
        {
            self.stopped = .exhausted
        }
    }
}

/// The network a responder's address belongs to: hits vouched for by many networks rank above hits vouched for
/// by one, so that many addresses from one network count once.
public struct NetworkPrefix: Sendable, Equatable {
    /// Leading bits kept of an IPv4 and of an IPv6 address.
    public var v4Bits = 24
    public var v6Bits = 48
    public init(v4Bits: Int = 24, v6Bits: Int = 48) {
        self.v4Bits = max(0, min(32, v4Bits))
        self.v6Bits = max(0, min(128, v6Bits))
    }

    /// The prefix of a textual address, as text (`127.0.0.0/24`).
    public func of(_ address: String) -> String {
        var bytes: [UInt8]
        let bits: Int
        if let v4 = Self.parseV4(address) {
            bytes = v4
            bits = self.v4Bits
        } else if let v6 = Self.parseV6(address) {
            bytes = v6
            bits = self.v6Bits
        } else {
            return address
        }
        for i in bytes.indices {
            let keep = max(0, min(8, bits - 8 * i))
            bytes[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return Hex.encode(bytes) + "/\(bits)"
    }

    static func parseV4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    static func parseV6(_ s: String) -> [UInt8]? {
        var addr = in6_addr()
        guard inet_pton(AF_INET6, s, &addr) == 1 else { return nil }
        return withUnsafeBytes(of: &addr) { Array($0) }
    }
}

/// Every answer of one search, merged by info-hash, ranked, and checked: the top hits are verified by fetching
/// their info dictionary from a responder that claimed them; a hit whose dictionary does not hash to its
/// info-hash or whose name or size differ from the claim is dropped, and its responders are blamed.
public struct RemoteResults: Sendable {
    public enum Check: String, Sendable, Codable, Equatable {
        case unchecked, checking, verified, failed
    }

    public struct Entry: Sendable, Equatable {
        /// The first claim for this info-hash.
        public var hit: RemoteHit
        /// Addresses that claimed it, and their networks.
        public var responders: [String]
        public var networks: Set<String>
        public var check: Check
        public var relevance: Double
    }

    public let terms: [String]
    public let prefix: NetworkPrefix
    private var entries: [[UInt8]: Entry] = [:]
    /// Hits dropped on arrival because they lacked a word of the query.
    public private(set) var offTopic = 0

    public init(query: SearchQuery, prefix: NetworkPrefix = NetworkPrefix()) {
        self.terms = query.terms
        self.prefix = prefix
    }

    public var count: Int { self.entries.count }

    /// Takes `address`'s hits; returns those that are new.
    @discardableResult
    public mutating func add(_ hits: [RemoteHit], from address: String) -> [RemoteHit] {
        let relevance = Relevance(self.terms)
        var new: [RemoteHit] = []
        for hit in hits {
            if var e = self.entries[hit.infoHash] {
                if !e.responders.contains(address) {
                    e.responders.append(address)
                    e.networks.insert(self.prefix.of(address))
                }
                self.entries[hit.infoHash] = e
                continue
            }
            // A hit must have every word: a responder that answers with anything else is not to be shown.
            let words = relevance.matches(Data(hit.name.utf8))
            guard self.terms.indices.allSatisfy({ words.contains($0) }) else {
                self.offTopic += 1
                continue
            }
            self.entries[hit.infoHash] = Entry(hit: hit, responders: [address], networks: [self.prefix.of(address)],
                check: .unchecked, relevance: relevance.score(name: Data(hit.name.utf8), paths: nil))
            new.append(hit)
        }
        return new
    }

    /// Best first: verified hits, then those vouched for by more networks, then relevance. Failed hits are gone.
    public func ranked() -> [Entry] {
        self.entries.values.filter { $0.check != .failed }.sorted { a, b in
            if (a.check == .verified) != (b.check == .verified) { return a.check == .verified }
            if a.networks.count != b.networks.count { return a.networks.count > b.networks.count }
            if a.relevance != b.relevance { return a.relevance > b.relevance }
            return a.hit.infoHash.lexicographicallyPrecedes(b.hit.infoHash)
        }
    }

    /// The unchecked hits among the best `top` (counting those not failed), marked as being checked, each with
    /// the responder to fetch its info dictionary from.
    public mutating func nextToVerify(top: Int) -> [(hit: RemoteHit, from: String)] {
        var out: [(RemoteHit, String)] = []
        for e in self.ranked().prefix(top) where e.check == .unchecked {
            self.entries[e.hit.infoHash]?.check = .checking
            out.append((e.hit, e.responders[0]))
        }
        return out
    }

    public func entry(_ infoHash: [UInt8]) -> Entry? { self.entries[infoHash] }

    /// The outcome of a check; returns the responders of a hit that failed (to blame).
    @discardableResult
    public mutating func settle(_ infoHash: [UInt8], verified: Bool) -> [String] {
        guard var e = self.entries[infoHash] else { return [] }
        e.check = verified ? .verified : .failed
        self.entries[infoHash] = e
        return verified ? [] : e.responders
    }

    /// Whether `info` (an info dictionary) is the torrent `hit` claims: it hashes to the info-hash, and its name
    /// and total size are the claim's.
    public static func matches(_ hit: RemoteHit, info: [UInt8]) -> Bool {
        let hashed: [UInt8] = hit.infoHash.count == 20 ? Array(Insecure.SHA1.hash(data: info)) : Array(SHA256.hash(data: info))
        guard hashed == hit.infoHash, let t = try? TorrentMetainfo(infoBytes: info) else { return false }
        return t.name == hit.name && t.totalLength == hit.size
    }
}

/// What verification said of each neighbour's hits. A neighbour with more than half of its last `window`
/// checked hits failing (at least `minimum` of them) is refused for `banFor`.
public struct HitLedger<Key: Hashable & Sendable>: Sendable {
    public var window = 20
    public var minimum = 3
    public var banFor = Duration.seconds(24 * 3600)
    private var outcomes: [Key: [Bool]] = [:]
    private var banned: [Key: Instant] = [:]

    public init() {}

    /// Records a check of one of `key`'s hits; true when that makes it banned.
    public mutating func record(_ key: Key, verified: Bool, at now: Instant) -> Bool {
        var list = self.outcomes[key, default: []]
        list.append(verified)
        if list.count > self.window { list.removeFirst(list.count - self.window) }
        self.outcomes[key] = list
        let failed = list.count { !$0 }
        guard list.count >= self.minimum, failed * 2 > list.count else { return false }
        self.banned[key] = now + self.banFor
        self.outcomes[key] = nil
        return true
    }

    public func isBanned(_ key: Key, at now: Instant) -> Bool { self.bannedUntil(key, at: now) != nil }

    /// When `key`'s refusal ends, if it is refused now.
    public func bannedUntil(_ key: Key, at now: Instant) -> Instant? { self.banned[key].flatMap { now < $0 ? $0 : nil } }

    /// Forgets bans that ran out.
    public mutating func purge(at now: Instant) { self.banned = self.banned.filter { now < $0.value } }
}
