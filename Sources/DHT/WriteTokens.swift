// BEP 5: write tokens. "The BitTorrent implementation uses the SHA1 hash of the IP address concatenated onto a
// secret that changes every five minutes and tokens up to ten minutes old are accepted."
import Crypto
import PeerBase

/// Issues and checks the opaque tokens that `get_peers` and `get` hand out and `announce_peer` and `put` must
/// bring back.
///
/// A token is the first 8 bytes of SHA-1(secret ‖ requester IP). The secret is replaced every `interval`
/// (5 minutes); tokens made with the current or the previous secret are accepted, so a token stays good for
/// 5 to 10 minutes. Tokens are bound to the IP only, not the port, as in BEP 5: a NAT may change the port.
public struct WriteTokens: Sendable {
    /// Length of the tokens issued.
    public static let tokenLength = 8

    public let interval: Duration
    private var current: [UInt8]
    private var previous: [UInt8]
    private var rotatedAt: Instant

    /// Creates the first secret (and a previous one no token was made with) from `rng`.
    public init(interval: Duration = .seconds(300), at now: Instant, using rng: inout some RandomNumberGenerator) {
        precondition(interval > .zero)
        self.interval = interval
        self.current = Self.secret(&rng)
        self.previous = Self.secret(&rng)
        self.rotatedAt = now
    }

    /// When the secret is next due to change.
    public var nextRotation: Instant { self.rotatedAt + self.interval }

    /// Replaces the secret if `interval` has passed (both secrets if two intervals have). Early calls do nothing.
    public mutating func rotate(at now: Instant, using rng: inout some RandomNumberGenerator) {
        guard now >= self.nextRotation else { return }
        if now >= self.rotatedAt + self.interval * 2 {
            self.previous = Self.secret(&rng)
        } else {
            self.previous = self.current
        }
        self.current = Self.secret(&rng)
        self.rotatedAt = now
    }

    /// The token for a requester at `ip`.
    public func token(for ip: DHTEndpoint.IP) -> [UInt8] { Self.token(secret: self.current, ip: ip) }

    /// True when `token` was issued to `ip` under the current or the previous secret.
    public func isValid(_ token: [UInt8], for ip: DHTEndpoint.IP) -> Bool {
        guard token.count == Self.tokenLength else { return false }
        return token == Self.token(secret: self.current, ip: ip) || token == Self.token(secret: self.previous, ip: ip)
    }

    private static func token(secret: [UInt8], ip: DHTEndpoint.IP) -> [UInt8] {
        var sha = Insecure.SHA1()
        sha.update(data: secret)
        sha.update(data: ip.bytes)
        return Array(sha.finalize().prefix(Self.tokenLength))
    }

    private static func secret(_ rng: inout some RandomNumberGenerator) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<2 {
            let w: UInt64 = rng.next()
            for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: w >> (8 * i))) }
        }
        return out
    }
}
