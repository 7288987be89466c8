import PeerBase

@testable import UTP

/// Two `UTPEndpoint`s ("a" and "b") joined by a simulated path in virtual time: each direction has a one-way
/// delay, a rate (a bottleneck whose queue holds at most `queueLimit` of waiting) and a loss rate, and jitter that
/// reorders. Applications read what arrives (`consume` decides whether they free the window) and can be driven
/// from `onEvent`.
struct UTPNetwork {
    struct Direction {
        var delay: Duration = .milliseconds(10)
        /// Bytes per second; nil: no bottleneck.
        var rate: Double?
        var queueLimit: Duration = .seconds(1)
        var loss = 0.0
        var jitter: Duration = .zero
        var busyUntil: Instant = .zero
        /// Queueing delays met by the datagrams sent, and their times (for the LEDBAT test).
        var queueing: [(Instant, Duration)] = []
        var sent = 0
        var droppedByQueue = 0
        /// The largest datagram the path carries (nil: any), what it dropped for being bigger, and the largest it
        /// carried.
        var mtu: Int?
        var droppedBySize = 0
        var largest = 0
    }

    typealias Key = UTPEndpoint<String>.ConnectionKey

    var now = Instant.zero
    var a: UTPEndpoint<String>
    var b: UTPEndpoint<String>
    var toB = Direction()
    var toA = Direction()
    var rng = SeededGenerator(seed: 42)
    /// Datagrams on the wire: arrival time, destination, source, bytes.
    var wire: [(at: Instant, to: String, from: String, bytes: [UInt8])] = []
    var received: [Key: [UInt8]] = [:]
    var events: [(String, UTPEndpoint<String>.Event)] = []
    /// Whether each side's application takes what arrives (and so reopens its window).
    var consumeA = true
    var consumeB = true
    var onEvent: ((inout UTPNetwork, String, UTPEndpoint<String>.Event) -> Void)?

    init(configuration: UTPEndpoint<String>.Configuration = .init()) {
        self.a = UTPEndpoint(configuration: configuration, seed: 1, at: .zero)
        self.b = UTPEndpoint(configuration: configuration, seed: 2, at: .zero)
    }

    mutating func drain() {
        var moved = true
        while moved {
            moved = false
            while let (to, bytes) = self.a.pollTransmit() { self.send(bytes, from: "a", to: to); moved = true }
            while let (to, bytes) = self.b.pollTransmit() { self.send(bytes, from: "b", to: to); moved = true }
            while let e = self.a.pollEvent() { self.handle(e, at: "a"); moved = true }
            while let e = self.b.pollEvent() { self.handle(e, at: "b"); moved = true }
        }
    }

    private mutating func handle(_ e: UTPEndpoint<String>.Event, at side: String) {
        self.events.append((side, e))
        if case .connection(let key, .data(let bytes)) = e {
            self.received[key, default: []] += bytes
            if side == "a" ? self.consumeA : self.consumeB {
                if side == "a" { self.a.handle(.consumed(bytes.count), for: key, at: self.now) }
                else { self.b.handle(.consumed(bytes.count), for: key, at: self.now) }
            }
        }
        if let onEvent = self.onEvent { onEvent(&self, side, e) }
    }

    mutating func send(_ bytes: [UInt8], from: String, to: String) {
        var d = from == "a" ? self.toB : self.toA
        defer { if from == "a" { self.toB = d } else { self.toA = d } }
        d.sent += 1
        if d.loss > 0 && Double.random(in: 0..<1, using: &self.rng) < d.loss { return }
        if let mtu = d.mtu, bytes.count > mtu {
            d.droppedBySize += 1
            return
        }
        d.largest = max(d.largest, bytes.count)
        var departs = self.now
        if let rate = d.rate {
            let start = max(self.now, d.busyUntil)
            let waiting = start - self.now
            guard waiting <= d.queueLimit else {
                d.droppedByQueue += 1
                return
            }
            d.queueing.append((self.now, waiting))
            departs = start + .seconds(Double(bytes.count + 28) / rate)
            d.busyUntil = departs
        }
        var arrives = departs + d.delay
        if d.jitter > .zero {
            arrives = arrives + .nanoseconds(Int64.random(in: 0...Int64(d.jitter.seconds * 1e9), using: &self.rng))
        }
        self.wire.append((arrives, to, from, bytes))
    }

    /// Runs until `until` returns true or `limit` of virtual time has passed; false on the latter.
    @discardableResult
    mutating func run(for limit: Duration, until: (UTPNetwork) -> Bool = { _ in false }) -> Bool {
        let end = self.now + limit
        self.drain()
        while !until(self) {
            let next = [self.wire.map(\.at).min(), self.a.nextTimeout, self.b.nextTimeout].compactMap { $0 }.min()
            guard let next, next <= end else {
                self.now = end
                return until(self)
            }
            self.now = max(self.now, next)
            let due = self.wire.enumerated().filter { $0.element.at <= self.now }.sorted { $0.element.at < $1.element.at }
            self.wire.removeAll { $0.at <= self.now }
            for (_, d) in due {
                if d.to == "a" { self.a.receive(d.bytes, from: d.from, at: self.now) }
                else { self.b.receive(d.bytes, from: d.from, at: self.now) }
            }
            self.a.handleTimeout(at: self.now)
            self.b.handleTimeout(at: self.now)
            self.drain()
        }
        return true
    }

    /// The key b holds for a's connection `key` (b's receive id is a's send id).
    func peerKey(_ key: Key) -> Key { Key(address: key.address == "b" ? "a" : "b", receiveID: key.receiveID &+ 1) }

    func closed(_ side: String, _ key: Key) -> UTPConnection.CloseReason? {
        for (s, e) in self.events where s == side {
            if case .connection(key, .closed(let reason)) = e { return reason }
        }
        return nil
    }
}
