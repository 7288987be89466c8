import AsyncHTTPClient
import NIOCore
import PeerBase
import Tracker

/// Announces one torrent to one HTTP or HTTPS tracker (BEP 3, compact peers BEP 23) and hands the peers it
/// returns to the node. The URL and the response are the Tracker core's; this only moves the bytes, through
/// the node's shared `HTTPClient` (body bounded by `TrackerLimits.maxBodyLength`).
final class HTTPAnnouncer: @unchecked Sendable {
    let url: String
    private let engine: any PeerHost
    private let client: HTTPClient
    private let onPeers: @Sendable ([PeerAddress]) -> Void
    private var reannounce: Scheduled<Void>?
    private var failures = 0

    /// How long one announce may take, connect to last byte.
    static let timeout: Duration = .seconds(30)

    init(url: String, engine: any PeerHost, client: HTTPClient, onPeers: @escaping @Sendable ([PeerAddress]) -> Void) {
        self.url = url
        self.engine = engine
        self.client = client
        self.onPeers = onPeers
    }

    /// True for the URLs this announcer handles: http:// and https://.
    static func handles(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    func announce(_ event: AnnounceRequest.Event) {
        guard let request = self.engine.announceRequest(event: event) else { return }
        let target = HTTPTracker.announceURL(base: self.url, request: request)
        let client = self.client
        let loop = self.engine.eventLoop
        Task {
            let result: Result<AnnounceResponse, any Error>
            do {
                let body = try await PeerHTTP.get(client, url: target, limit: TrackerLimits.maxBodyLength,
                    timeout: Self.timeout).body
                result = .success(try AnnounceResponse(httpBody: body))
            } catch {
                result = .failure(error)
            }
            loop.execute { self.finished(event, result) }
        }
    }

    private func finished(_ event: AnnounceRequest.Event, _ result: Result<AnnounceResponse, any Error>) {
        switch result {
        case .success(let response):
            self.failures = 0
            if event != .stopped {
                self.onPeers(response.peers)
                self.schedule(max(response.interval ?? .seconds(1800), .seconds(60)))
            }
        case .failure(let error):
            self.failed("\(error)")
        }
    }

    func stop() {
        self.reannounce?.cancel()
        self.announce(.stopped)
    }

    private func failed(_ why: String) {
        self.engine.log("tracker \(self.url): \(why)")
        self.failures += 1
        self.schedule(.seconds(min(1800, 15 << min(self.failures - 1, 7))))  // 15 s, 30 s, … capped at 30 min
    }

    private func schedule(_ delay: Duration) {
        self.reannounce?.cancel()
        self.reannounce = self.engine.eventLoop.scheduleTask(in: .seconds(delay.components.seconds)) {
            self.announce(.none)
        }
    }
}
