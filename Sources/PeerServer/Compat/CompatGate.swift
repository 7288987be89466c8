import Foundation
import PeerKit
import Synchronization

/// The login of the surfaces other tools speak (Transmission's RPC, qBittorrent's Web API): a user name and
/// password set with `peer serve --compat-user NAME --compat-password-file FILE`. Without them both surfaces are
/// off; there is no default password.
public struct CompatLogin: Sendable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// Checks compat logins, and refuses every login for a while after repeated failures.
final class CompatGate: Sendable {
    enum Verdict: Equatable { case ok, wrong, blocked(seconds: Int) }

    let login: CompatLogin
    /// Failures in the current window, and until when logins are refused.
    private let failures = Mutex<(count: Int, since: ContinuousClock.Instant, blockedUntil: ContinuousClock.Instant?)>(
        (0, .now, nil))
    /// Failures within `window` before logins are refused for `block`.
    static let maxFailures = 5
    static let window = Duration.seconds(60)
    static let block = Duration.seconds(60)

    init(_ login: CompatLogin) { self.login = login }

    func check(user: String, password: String) -> Verdict {
        let now = ContinuousClock.now
        if let until = self.failures.withLock({ $0.blockedUntil }), now < until {
            return .blocked(seconds: Int((until - now).components.seconds) + 1)
        }
        // Both compared whole, in time that does not depend on where they differ.
        let userRight = APIAuth.same(user, self.login.user)
        let passwordRight = APIAuth.same(password, self.login.password)
        if userRight && passwordRight { return .ok }
        return self.failures.withLock { f in
            if now - f.since > Self.window { f = (0, now, nil) }
            f.count += 1
            if f.count >= Self.maxFailures {
                f.blockedUntil = now + Self.block
                f.count = 0
                f.since = now
            }
            return .wrong
        }
    }
}

/// Small integer ids for torrents (Transmission's `id`), stable while the daemon runs: the first time a torrent
/// is seen it gets the next number.
final class TorrentNumbers: Sendable {
    private let state = Mutex<(next: Int, byID: [String: Int], byNumber: [Int: String])>((1, [:], [:]))

    func number(_ id: String) -> Int {
        self.state.withLock { s in
            if let n = s.byID[id] { return n }
            let n = s.next
            s.next += 1
            s.byID[id] = n
            s.byNumber[n] = id
            return n
        }
    }

    func id(_ number: Int) -> String? { self.state.withLock { $0.byNumber[number] } }
}

/// Moves in the download queue, as both compat surfaces name them (Transmission's `queue-move-*`, qBittorrent's
/// `topPrio`…).
enum QueueMove {
    case top, bottom, up, down

    /// Moves each of `ids`, keeping their order among themselves at the top and the bottom.
    func apply(to ids: [String], in session: Session) async throws {
        let order = (self == .top || self == .up) ? Array(ids.reversed()) : ids
        for id in order {
            let position = try await session.detail(id).queuePosition
            var u = TorrentUpdate()
            switch self {
            case .top: u.queuePosition = 0
            case .bottom: u.queuePosition = Int(Int32.max)
            case .up: u.queuePosition = max(0, position - 1)
            case .down: u.queuePosition = position + 1
            }
            _ = try await session.update(id, u)
        }
    }
}
