import AsyncHTTPClient
import NIOCore
import PeerBase
import Tracker

/// Announces one torrent to its trackers in BEP 12 tier order and hands the peers they return to the node.
///
/// A thin driver: `TieredAnnounceSchedule` decides which tracker, when and with which event; this owns the
/// transports (UDP sockets, the node's HTTP client) and one timer, on the host's event loop.
final class TrackerAnnouncer: @unchecked Sendable {
    private let host: any PeerHost
    private let makeTransport: (String) -> (any TrackerTransport)?
    private let onPeers: @Sendable ([PeerAddress]) -> Void
    /// Changes a request before it goes (the node's mapped external port and address).
    private let adjust: @Sendable (inout AnnounceRequest) -> Void
    private var plan: TieredAnnounceSchedule
    private var transports: [String: any TrackerTransport] = [:]
    private var timer: Scheduled<Void>?
    private var finished: EventLoopPromise<Void>?
    private let epoch = ContinuousClock.now

    /// How long a regular announce may take (HTTP: connect to last byte; UDP gives up on its own after 35 s).
    static let announceTimeout: Duration = .seconds(30)
    /// How long `stopped` may take: the node does not wait longer when it shuts down.
    static let stoppedTimeout: Duration = .seconds(2)

    /// - Parameters:
    ///   - tiers: Tracker URLs by tier (only udp, http and https ones), shuffled within each tier here.
    ///   - makeTransport: Opens a transport for a URL (on the host's loop).
    init(
        host: any PeerHost, tiers: [[String]], makeTransport: @escaping (String) -> (any TrackerTransport)?,
        onPeers: @escaping @Sendable ([PeerAddress]) -> Void,
        adjust: @escaping @Sendable (inout AnnounceRequest) -> Void = { _ in }
    ) {
        self.host = host
        self.makeTransport = makeTransport
        self.onPeers = onPeers
        self.adjust = adjust
        var rng = SystemRandomNumberGenerator()
        self.plan = TieredAnnounceSchedule(tiers: TrackerTiers(tiers, using: &rng))
    }

    private var now: Instant { Instant(offset: ContinuousClock.now - self.epoch) }

    /// The loop it runs on: its torrent's.
    var eventLoop: any EventLoop { self.host.eventLoop }

    /// Whether it announces `host`.
    func announces(_ host: any PeerHost) -> Bool { self.host === host }

    /// Sends `started` to the first tracker that answers, then keeps announcing. Call on the loop.
    func start() {
        self.host.eventLoop.preconditionInEventLoop()
        self.plan.start(at: self.now)
        self.pump()
    }

    /// The download finished: `completed` is sent once.
    func downloadCompleted() {
        self.host.eventLoop.preconditionInEventLoop()
        self.plan.downloadCompleted(at: self.now)
        self.pump()
    }

    /// Sends `stopped` to the tracker that last answered; the future completes when that is done (or was not
    /// needed), within about `stoppedTimeout` of the announce in flight ending.
    func stop() -> EventLoopFuture<Void> {
        self.host.eventLoop.preconditionInEventLoop()
        let promise = self.finished ?? self.host.eventLoop.makePromise(of: Void.self)
        self.finished = promise
        self.plan.stop(at: self.now)
        self.pump()
        return promise.futureResult
    }

    private func pump() {
        while let (url, event) = self.plan.pollAnnounce(at: self.now) {
            self.send(event, to: url)
        }
        self.timer?.cancel()
        self.timer = nil
        if self.plan.isFinished {
            for t in self.transports.values { t.close() }
            self.transports.removeAll()
            self.finished?.succeed(())
            self.finished = nil
            return
        }
        if let due = self.plan.nextTimeout {
            self.timer = self.host.eventLoop.scheduleTask(in: PeerHTTP.timeAmount(max(.zero, due - self.now))) {
                self.pump()
            }
        }
    }

    private func send(_ event: AnnounceRequest.Event, to url: String) {
        guard var request = self.host.announceRequest(event: event) else {
            self.failed(url, "the listening port is not known yet")
            return
        }
        self.adjust(&request)
        guard let transport = self.transport(url) else {
            self.failed(url, "not a udp://, http:// or https:// URL")
            return
        }
        let timeout = event == .stopped ? Self.stoppedTimeout : Self.announceTimeout
        transport.announce(request, timeout: timeout).hop(to: self.host.eventLoop).whenComplete { result in
            switch result {
            case .success(let response):
                if let warning = response.warning { self.host.log("tracker \(url): warning: \(warning)") }
                self.plan.announceSucceeded(url, response: response, at: self.now)
                if event != .stopped { self.onPeers(response.peers) }
                self.pump()
            case .failure(let error):
                self.failed(url, "\(error)")
                self.pump()
            }
        }
    }

    /// Reports a failure to the plan (the caller pumps).
    private func failed(_ url: String, _ why: String) {
        self.host.log("tracker \(url): \(why)")
        self.plan.announceFailed(url, at: self.now)
    }

    private func transport(_ url: String) -> (any TrackerTransport)? {
        if let t = self.transports[url] { return t }
        guard let t = self.makeTransport(url) else { return nil }
        self.transports[url] = t
        return t
    }
}
