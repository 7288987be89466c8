import Bencode

/// Bounds on what a tracker may send, worked out from the protocols.
public enum TrackerLimits {
    /// Most peers kept from one announce response (IPv4 and IPv6 together); the rest are dropped.
    public static let maxPeers = 10_000
    /// Most torrents kept from one scrape response.
    public static let maxScrapeEntries = 10_000
    /// Largest HTTP response body accepted (a full 10 000-peer dictionary-form list fits well below).
    public static let maxBodyLength = 2 << 20
    /// Largest UDP datagram accepted: the UDP length field cannot describe more.
    public static let maxDatagramLength = 64 << 10
    /// Most info-hashes in one UDP scrape request (BEP 15: "up to about 74").
    public static let maxUDPScrapeHashes = 74

    /// Decoder limits for tracker bodies: shallow, with room for `maxPeers` dictionary-form peers
    /// (seven values each) and an 18-byte-per-peer `peers6` string.
    public static let bencode = BencodeLimits(
        maxDepth: 16,
        maxItems: 100_000,
        maxStringLength: 256 << 10,
        maxInputLength: maxBodyLength
    )
}
