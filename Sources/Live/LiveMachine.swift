// Issue 17: a live stream's relay and player, sans I/O.
import Crypto
import DequeModule
import PeerBase

/// One node's part in a live stream, sans I/O: the source that cuts and signs chunks, or a viewer that plays them
/// and relays them to other viewers. It opens no socket and reads no clock.
///
/// The driver tells it of neighbours (`connected`, `disconnected`), hands it their `peer_live` messages
/// (`received`), the source's input (`publish`), and calls `tick` every few tens of milliseconds; after each it
/// drains `pollAction()`.
///
/// How chunks spread:
/// - **Push.** A node that gets a new chunk (and has checked its signature) sends it unasked to up to `pushFanout`
///   neighbours that lack it, those it has pushed least to first, while its uplink has room (`maxUploads` chunks
///   going out at once; the driver says when each has gone, `sent(to:)`), and tells every neighbour what it holds
///   (`have`). The source pushes each chunk to `sourceFanout` neighbour(s) whatever its uplink holds, announces
///   only every `sourceHaveEvery` chunks, and sends no chunk more than `sourceCopies` times in all: its upload
///   stays under that multiple of the stream's rate, and the viewers carry the rest.
/// - **Pull.** A chunk a neighbour has (or the source, which made every chunk up to the newest here) and this node
///   lacks is asked for once `pullDelay` has passed without a push, nearest its play-out deadline first, from the
///   neighbour with the fewest requests outstanding; the source last, after four times that. A node serves
///   requests as its uplink frees, nearest deadline first, queues at most `maxQueued` and refuses the rest, so
///   the asker turns to a neighbour that got the chunk meanwhile; unanswered, asked again of another after
///   `requestTimeout`.
/// - **No chunk twice.** A push is preceded by `coming`, a few bytes that outrun it: the receiver asks nobody else
///   for that chunk meanwhile, and withdraws (`cancel`) a request it made before; a request answered by another
///   neighbour, or given up on, is withdrawn too, and a holder drops a withdrawn request it has not started. With
///   one chunk going out at a time, the simulation's duplicates fell from about 0.75 to 0.3 per chunk per viewer on
///   uplinks of twice the stream's rate, which is what kept the queues short enough to play every chunk.
/// - **Play.** Chunks are played in order. A missing one is waited for at most `maxWait` while later ones are
///   here, then skipped (with every missing one up to the next that is here). A viewer joins at the newest chunk
///   its neighbours announce, and comes back to the newest signed one here if that number was beyond it.
/// - **Window.** Chunks more than `window` behind the newest are dropped.
/// - **Trust.** A chunk whose signature fails, that differs from the one held under its number, or that is older
///   than the window unasked, gets its sender dropped; it is never played or relayed.
public struct LiveMachine: Sendable {
    public struct Configuration: Sendable {
        /// Chunks kept behind the newest (30 s of 200 ms chunks), for neighbours that are behind.
        public var window = 150
        public var pushFanout = 3
        /// The source pushes each chunk to one neighbour, and sends a second copy only when asked.
        public var sourceFanout = 1
        public var sourceCopies = 2
        /// The source tells its neighbours what it holds on every this many chunks.
        public var sourceHaveEvery = 5
        public var pullDelay: Duration = .milliseconds(50)
        public var requestTimeout: Duration = .milliseconds(500)
        public var maxRequestsPerPeer = 4
        public var maxWait: Duration = .milliseconds(1200)
        /// Chunks being sent at once (the driver says when each has gone, `sent`): more wait their turn, and a
        /// push goes only while the uplink has room. What keeps queues short, and pushes from landing where a
        /// neighbour got the chunk meanwhile.
        public var maxUploads = 1
        /// Requests waiting for the uplink, beyond which they are refused (the asker goes to another holder: one
        /// that got the chunk meanwhile, not a queue the whole swarm waits in).
        public var maxQueued = 4
        public init() {}
    }

    public enum Action: Equatable, Sendable {
        case send(peer: Int, LiveMessage)
        /// The next chunk in order, checked: for the player.
        case play(LiveChunk)
        /// A chunk given up on (never came in time): the player goes on without it.
        case skipped(UInt64)
        /// A neighbour that sent what no honest one would.
        case drop(peer: Int, reason: String)
    }

    private struct Neighbour {
        var held: Set<UInt64> = []
        /// Chunks sent to it (pushed or asked for), so none goes twice.
        var sent: Set<UInt64> = []
        var pushed = 0
        var requests = 0
        /// Chunks being sent to it.
        var uploading = 0
        /// It said it is the stream's source (a signed chunk proves nothing of who sent it; this only orders pulls).
        var isSource = false
    }

    public let configuration: Configuration
    public let stream: [UInt8]
    private let publicKey: Curve25519.Signing.PublicKey
    private let signingKey: Curve25519.Signing.PrivateKey?
    private var neighbours: [Int: Neighbour] = [:]
    private var chunks: [UInt64: LiveChunk] = [:]
    public private(set) var newest: UInt64?
    /// The next chunk to play; nil until the first is known.
    public private(set) var nextToPlay: UInt64?
    private var stalledSince: Instant?
    /// The stream's newest header chunk, kept beyond the window for viewers who join late, and its number as
    /// neighbours announce it (before it is here).
    public private(set) var header: LiveChunk?
    private var headerNumber: UInt64?
    /// A viewer has begun playing: after the header, at a start, when the stream has a header.
    private var started = false
    /// When a neighbour first announced each chunk not yet here.
    private var announced: [UInt64: Instant] = [:]
    /// Outstanding requests: chunk, neighbour, when.
    private var requested: [UInt64: (peer: Int, at: Instant)] = [:]
    /// Chunks a neighbour said it is pushing (`coming`): asked of nobody else for `requestTimeout`.
    private var incoming: [UInt64: (peer: Int, at: Instant)] = [:]
    /// The source's copies sent of each chunk.
    private var copies: [UInt64: Int] = [:]
    private var actions: Deque<Action> = []
    private var uploading = 0
    /// Requests waiting for the uplink: neighbour and chunk.
    private var queued: [(peer: Int, n: UInt64)] = []

    /// Counters for the API and tests.
    public private(set) var played = 0
    public private(set) var skipped = 0
    public private(set) var duplicates = 0
    public private(set) var uploadedBytes = 0

    /// A viewer of the stream `link`.
    public init(viewing link: LiveLink, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.stream = link.streamID
        self.publicKey = link.publicKey
        self.signingKey = nil
    }

    /// The source of the stream `link`, which `key` signs.
    public init(publishing link: LiveLink, key: Curve25519.Signing.PrivateKey,
        configuration: Configuration = Configuration())
    {
        self.configuration = configuration
        self.stream = link.streamID
        self.publicKey = link.publicKey
        self.signingKey = key
    }

    public var isSource: Bool { self.signingKey != nil }
    /// Some neighbour has announced a chunk (a viewer that has none yet knows where to get one).
    public var hasAnnouncements: Bool { self.neighbours.values.contains { !$0.held.isEmpty } }
    /// The neighbour that said it is the source.
    public var sourceNeighbour: Int? { self.neighbours.first { $0.value.isSource }?.key }
    /// How many chunks a neighbour announced it holds (what it has to offer).
    public func heldCount(_ peer: Int) -> Int { self.neighbours[peer]?.held.count ?? 0 }
    public var neighbourCount: Int { self.neighbours.count }

    public mutating func pollAction() -> Action? { self.actions.popFirst() }

    // MARK: inputs

    public mutating func connected(_ peer: Int) {
        self.neighbours[peer] = Neighbour()
        if let have = self.have { self.actions.append(.send(peer: peer, have)) }
    }

    public mutating func disconnected(_ peer: Int) {
        self.uploading -= self.neighbours[peer]?.uploading ?? 0
        self.neighbours[peer] = nil
        self.queued.removeAll { $0.peer == peer }
        for (n, r) in self.requested where r.peer == peer { self.requested[n] = nil }
        for (n, r) in self.incoming where r.peer == peer { self.incoming[n] = nil }
    }

    /// The source's next chunk: cut from `payload`, stamped `time` (microseconds since the Unix epoch), signed and
    /// pushed. Returns it (the source plays nothing).
    @discardableResult
    public mutating func publish(_ payload: [UInt8], time: UInt64, kind: LiveChunk.Kind = .media, at now: Instant) throws
        -> LiveChunk
    {
        guard let key = self.signingKey else { throw LiveError.badMessage("only the source publishes") }
        guard payload.count <= LiveLimits.maxPayload else {
            throw LiveError.badMessage("a chunk of \(payload.count) bytes (at most \(LiveLimits.maxPayload))")
        }
        let chunk = try LiveChunk(number: self.newest.map { $0 + 1 } ?? 0, time: time, kind: kind, payload: payload,
            stream: self.stream, signedBy: key)
        self.store(chunk, from: nil, at: now)
        return chunk
    }

    public mutating func received(_ message: LiveMessage, from peer: Int, at now: Instant) {
        guard self.neighbours[peer] != nil else { return }
        switch message {
        case .have(let newest, let bits, let source, let header):
            var held = LiveMessage.held(newest: newest, bits: bits)
            if let header {
                held.insert(header)
                if self.headerNumber.map({ header > $0 }) ?? true { self.headerNumber = header }
                if self.header.map({ header > $0.number }) ?? true, self.announced[header] == nil {
                    self.announced[header] = now
                }
            }
            self.neighbours[peer]!.held = held
            self.neighbours[peer]!.isSource = source
            if self.nextToPlay == nil && !self.isSource { self.nextToPlay = newest }
            for n in held where self.chunks[n] == nil && self.announced[n] == nil && self.wanted(n) {
                self.announced[n] = now
            }
            self.pull(at: now)
        case .request(let n):
            guard let chunk = self.servable(n, to: peer),
                self.uploading < self.configuration.maxUploads || self.queued.count < self.configuration.maxQueued
            else {
                return self.actions.append(.send(peer: peer, .reject(n)))
            }
            if self.uploading < self.configuration.maxUploads {
                self.send(chunk, to: peer)
            } else {
                self.queued.append((peer, n))
            }
        case .coming(let n):
            self.neighbours[peer]!.held.insert(n)
            guard self.chunks[n] == nil, self.wanted(n) else { return }
            self.incoming[n] = (peer, now)
            self.withdraw(n, except: peer)
        case .cancel(let n):
            self.queued.removeAll { $0.peer == peer && $0.n == n }
        case .peers:
            break  // addresses: the driver's business
        case .reject(let n):
            self.neighbours[peer]!.held.remove(n)
            if self.requested[n]?.peer == peer {
                self.requested[n] = nil
                self.neighbours[peer]!.requests -= 1
            }
            self.pull(at: now)
        case .chunk(let chunk):
            let asked = self.requested[chunk.number]?.peer == peer
            if asked {
                self.requested[chunk.number] = nil
                self.neighbours[peer]!.requests -= 1
            }
            if self.incoming[chunk.number]?.peer == peer { self.incoming[chunk.number] = nil }
            // Asked of another, which need not send it now.
            self.withdraw(chunk.number, except: peer)
            self.neighbours[peer]!.held.insert(chunk.number)
            let window = UInt64(self.configuration.window)
            if asked, chunk.kind == .header, chunk.number == self.headerNumber,
                self.header.map({ $0.number < chunk.number }) ?? true,
                self.nextToPlay.map({ chunk.number < $0 }) ?? false
                    || (self.newest ?? self.nextToPlay).map({ chunk.number + window <= $0 }) ?? false
            {
                // The header a late joiner asked for, from before where it plays (or the window): kept as the
                // header, neither windowed, played in order, nor passed on.
                guard chunk.isSigned(by: self.publicKey, stream: self.stream) else {
                    return self.drop(peer, "header chunk \(chunk.number) is not signed by the stream's source")
                }
                self.header = chunk
                self.announced[chunk.number] = nil
                return self.play(at: now)
            }
            if let held = self.chunks[chunk.number] {
                // The source signs one chunk per number: another with the same number is forged.
                guard held == chunk else { return self.drop(peer, "chunk \(chunk.number) differs from the source's") }
                self.duplicates += 1
                return
            }
            if let newest = self.newest, chunk.number + UInt64(self.configuration.window) <= newest {
                // An answer that came after the window moved on is late, not hostile.
                guard asked else {
                    return self.drop(peer, "chunk \(chunk.number) is older than the window (newest \(newest))")
                }
                return
            }
            guard chunk.isSigned(by: self.publicKey, stream: self.stream) else {
                return self.drop(peer, "chunk \(chunk.number) is not signed by the stream's source")
            }
            self.store(chunk, from: peer, at: now)
        }
    }

    /// A chunk sent to `peer` has gone out (or its connection failed): the uplink has room for the next, the
    /// waiting request nearest its deadline first.
    public mutating func sent(to peer: Int) {
        guard self.neighbours[peer] != nil, self.neighbours[peer]!.uploading > 0 else { return }
        self.neighbours[peer]!.uploading -= 1
        self.uploading -= 1
        while self.uploading < self.configuration.maxUploads,
            let i = self.queued.indices.min(by: { self.queued[$0].n < self.queued[$1].n })
        {
            let (to, n) = self.queued.remove(at: i)
            if let chunk = self.servable(n, to: to) { self.send(chunk, to: to) }
        }
    }

    /// Requests that timed out go to another neighbour; a chunk waited on too long is skipped.
    public mutating func tick(at now: Instant) {
        for (n, r) in self.requested where now - r.at >= self.configuration.requestTimeout {
            self.requested[n] = nil
            self.neighbours[r.peer]?.requests -= 1
            self.neighbours[r.peer]?.held.remove(n)
            if self.neighbours[r.peer] != nil { self.actions.append(.send(peer: r.peer, .cancel(n))) }
        }
        for (n, r) in self.incoming where now - r.at >= self.configuration.requestTimeout { self.incoming[n] = nil }
        self.pull(at: now)
        self.play(at: now)
    }

    // MARK: the work

    private var have: LiveMessage? {
        LiveMessage.have(self.chunks.keys, window: self.configuration.window, source: self.isSource,
            header: self.header?.number)
    }

    /// Whether a chunk not here is worth having: not played past, not out of the window, and not a window or more
    /// beyond the newest signed chunk here (no honest neighbour is that far ahead of the source).
    private func wanted(_ n: UInt64) -> Bool {
        if n == self.headerNumber, self.header.map({ $0.number < n }) ?? true { return true }
        if let next = self.nextToPlay, n < next { return false }
        if let newest = self.newest {
            let window = UInt64(self.configuration.window)
            if n + window <= newest || n >= newest + window { return false }
        }
        return true
    }

    private mutating func store(_ chunk: LiveChunk, from peer: Int?, at now: Instant) {
        let n = chunk.number
        self.announced[n] = nil
        if chunk.kind == .header, self.header.map({ n > $0.number }) ?? true {
            self.header = chunk
            if self.headerNumber.map({ n > $0 }) ?? true { self.headerNumber = n }
        }
        self.chunks[n] = chunk
        if self.newest.map({ n > $0 }) ?? true {
            // A gap below it: those chunks exist (the source numbers them in order), whoever has them.
            if let newest = self.newest, n > newest + 1 {
                for k in (newest + 1)..<n where self.announced[k] == nil && self.wanted(k) { self.announced[k] = now }
            }
            self.newest = n
            let window = UInt64(self.configuration.window)
            if n >= window {
                for old in self.chunks.keys where old + window <= n { self.chunks[old] = nil }
                for old in self.announced.keys where old + window <= n { self.announced[old] = nil }
                for old in self.copies.keys where old + window <= n { self.copies[old] = nil }
                for key in self.neighbours.keys {
                    self.neighbours[key]!.held = self.neighbours[key]!.held.filter { $0 + window > n }
                    self.neighbours[key]!.sent = self.neighbours[key]!.sent.filter { $0 + window > n }
                }
            }
        }
        // A viewer starts at the newest chunk a neighbour announced, a number nothing signs: past the newest signed
        // chunk here it was a lie (or a neighbour far ahead), and play starts from what is real.
        if !self.isSource, let newest = self.newest, self.nextToPlay.map({ $0 > newest + 1 }) ?? true {
            self.nextToPlay = newest
        }
        // Push: to the neighbours that lack it, those pushed to least first, while the uplink has room. The
        // source's push goes whatever its uplink holds: it is how a chunk enters the swarm (and the source
        // announces only now and then).
        let fanout = self.isSource ? self.configuration.sourceFanout
            : min(self.configuration.pushFanout, max(0, self.configuration.maxUploads - self.uploading))
        // Never to the source: it made every chunk (its `have` comes only now and then, so it looks as if it lacked them).
        let targets = self.neighbours.filter {
            $0.key != peer && !$0.value.isSource && !$0.value.held.contains(n) && !$0.value.sent.contains(n)
        }
            .sorted { ($0.value.pushed, $0.key) < ($1.value.pushed, $1.key) }
            .prefix(fanout)
        for (key, _) in targets {
            self.neighbours[key]!.pushed += 1
            self.send(chunk, to: key, push: true)
        }
        // Everyone hears of it; from the source, once a second is enough (its copies are spent on the push and
        // one rescue, and its upload is what the stream is measured against).
        if let have = self.have, !self.isSource || n % UInt64(self.configuration.sourceHaveEvery) == 0 {
            for key in self.neighbours.keys.sorted() { self.actions.append(.send(peer: key, have)) }
        }
        self.play(at: now)
    }

    /// The chunk, if it may go to `peer` now: held, not sent to it already, and (from the source) a copy left.
    private func servable(_ n: UInt64, to peer: Int) -> LiveChunk? {
        guard let chunk = self.chunks[n] ?? (self.header?.number == n ? self.header : nil),
            let neighbour = self.neighbours[peer], !neighbour.sent.contains(n),
            !self.isSource || self.copies[n, default: 0] < self.configuration.sourceCopies
        else { return nil }
        return chunk
    }

    private mutating func send(_ chunk: LiveChunk, to peer: Int, push: Bool = false) {
        // Told first, in a few bytes that outrun the chunk's, so the neighbour asks nobody else meanwhile.
        if push { self.actions.append(.send(peer: peer, .coming(chunk.number))) }
        self.uploading += 1
        self.neighbours[peer]!.uploading += 1
        self.neighbours[peer]!.sent.insert(chunk.number)
        self.neighbours[peer]!.held.insert(chunk.number)
        if self.isSource { self.copies[chunk.number, default: 0] += 1 }
        self.uploadedBytes += chunk.payload.count
        self.actions.append(.send(peer: peer, .chunk(chunk)))
    }

    /// Takes back the request for `n` made of a neighbour other than `peer`, which is bringing it.
    private mutating func withdraw(_ n: UInt64, except peer: Int) {
        guard let r = self.requested[n], r.peer != peer else { return }
        self.requested[n] = nil
        self.neighbours[r.peer]?.requests -= 1
        self.actions.append(.send(peer: r.peer, .cancel(n)))
    }

    /// Asks for what neighbours have and no push brought, nearest the play-out deadline first.
    private mutating func pull(at now: Instant) {
        guard !self.isSource else { return }
        for n in self.announced.keys.sorted() {
            guard self.wanted(n) else {
                self.announced[n] = nil
                continue
            }
            guard self.requested[n] == nil, self.incoming[n] == nil, let since = self.announced[n],
                now - since >= self.configuration.pullDelay
            else { continue }
            // The source last, and only once the viewers have had time to pass the chunk on.
            let sourceToo = now - since >= self.configuration.pullDelay * 4
            // The source made every chunk up to the newest here, whether or not it said so lately.
            let holders = self.neighbours.filter {
                ($0.value.held.contains(n) || $0.value.isSource && n <= self.newest ?? 0) && !$0.value.sent.contains(n)
                    && $0.value.requests < self.configuration.maxRequestsPerPeer && (sourceToo || !$0.value.isSource)
            }
            guard let (peer, _) = holders.min(by: {
                ($0.value.isSource ? 1 : 0, $0.value.requests, $0.key) < ($1.value.isSource ? 1 : 0, $1.value.requests, $1.key)
            }) else {
                continue
            }
            self.neighbours[peer]!.requests += 1
            self.requested[n] = (peer, now)
            self.actions.append(.send(peer: peer, .request(n)))
        }
    }

    private mutating func play(at now: Instant) {
        guard var next = self.nextToPlay, let newest = self.newest else { return }
        let window = UInt64(self.configuration.window)
        if next + window <= newest { next = newest + 1 - window }
        if !self.started && !self.isSource {
            // With a header, a viewer begins with it and then a start (a WebM cluster); one that joined before the
            // header plays it in order.
            if let wanted = self.headerNumber {
                guard let header = self.header, header.number >= wanted else { return }
                if header.number < next {
                    guard next <= newest, let start = (next...newest).first(where: { self.chunks[$0]?.kind == .start })
                    else { return }
                    self.actions.append(.play(header))
                    self.played += 1
                    next = start
                } else {
                    next = header.number
                }
            }
            self.started = true
        }
        while next <= newest {
            if let chunk = self.chunks[next] {
                self.actions.append(.play(chunk))
                self.played += 1
                self.stalledSince = nil
                next += 1
                continue
            }
            // Missing, with later ones here: wait a while, then go on without it (and without every missing one up
            // to the next that is here: they had the same while to come).
            guard let since = self.stalledSince else {
                self.stalledSince = now
                break
            }
            guard now - since >= self.configuration.maxWait else { break }
            while self.chunks[next] == nil && next < newest {
                self.actions.append(.skipped(next))
                self.skipped += 1
                if let r = self.requested.removeValue(forKey: next) { self.neighbours[r.peer]?.requests -= 1 }
                next += 1
            }
            self.stalledSince = nil
        }
        self.nextToPlay = next
    }

    private mutating func drop(_ peer: Int, _ reason: String) {
        self.disconnected(peer)
        self.actions.append(.drop(peer: peer, reason: reason))
    }
}
