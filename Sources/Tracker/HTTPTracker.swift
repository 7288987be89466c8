// BEP 3 (HTTP announce), BEP 23 (compact=1), BEP 48 (scrape URL and response).
import Bencode

/// The HTTP tracker protocol without the HTTP: builds announce and scrape URLs and reads response bodies.
///
/// A driver sends a GET to the URL these functions return, then hands the body to
/// `AnnounceResponse(httpBody:)` or `ScrapeResponse(httpBody:)`.
public enum HTTPTracker {
    /// Most problems a lenient parse records in `ignored`.
    public static let maxReportedProblems = 32

    /// The announce URL: `base` with the request's query appended.
    ///
    /// A `base` that already has a query gets `&` before the new parameters (none when it already ends in
    /// `?` or `&`); a fragment is dropped. Binary values (`info_hash`, `peer_id`, `trackerid`) are
    /// percent-encoded byte by byte. `compact=1` is always sent; `event` only when it is not `.none`.
    /// - Parameters:
    ///   - base: The tracker's announce URL, as the torrent lists it.
    ///   - request: What to announce.
    /// - Returns: The URL to GET.
    public static func announceURL(base: String, request: AnnounceRequest) -> String {
        var params: [(String, String)] = [
            ("info_hash", self.percentEncode(request.infoHash)),
            ("peer_id", self.percentEncode(request.peerID)),
            ("port", String(request.port)),
            ("uploaded", String(request.uploaded)),
            ("downloaded", String(request.downloaded)),
            ("left", String(request.left)),
        ]
        if request.event != .none { params.append(("event", request.event.rawValue)) }
        if let n = request.numWant, n >= 0 { params.append(("numwant", String(n))) }
        params.append(("key", self.hex8(request.key)))
        params.append(("compact", "1"))
        if let id = request.trackerID { params.append(("trackerid", self.percentEncode(id))) }
        if let ip = request.ip { params.append(("ip", self.percentEncode(Array(ip.utf8)))) }
        if let ip6 = request.ipv6 { params.append(("ipv6", self.percentEncode(Array(ip6.utf8)))) }
        return self.appendQuery(params.map { "\($0.0)=\($0.1)" }.joined(separator: "&"), to: base)
    }

    /// The scrape URL for an announce URL (BEP 48 convention), with one `info_hash` per hash.
    ///
    /// The last path component must start with `announce`; that prefix becomes `scrape`
    /// (`/announce` → `/scrape`, `/x/announce.php?a=b` → `/x/scrape.php?a=b`). Only http and https URLs
    /// qualify: UDP trackers scrape through `UDPTrackerSession`.
    /// - Parameters:
    ///   - announce: The announce URL.
    ///   - infoHashes: 20-byte info-hashes to ask about; empty asks for a full scrape.
    /// - Returns: The URL to GET, or nil when the tracker has no conventional scrape URL.
    public static func scrapeURL(announce: String, infoHashes: [[UInt8]] = []) -> String? {
        let u = Array(announce.utf8)
        let separator = Array("://".utf8)
        guard let schemeEnd = self.index(of: separator, in: u) else { return nil }
        let scheme = String(decoding: u[0..<schemeEnd], as: UTF8.self).lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let afterScheme = schemeEnd + separator.count
        let isDelimiter = { (c: UInt8) in c == UInt8(ascii: "?") || c == UInt8(ascii: "#") }
        // The path starts at the first '/' after the authority and ends at '?' or '#'.
        guard let pathStart = u[afterScheme...].firstIndex(where: { $0 == UInt8(ascii: "/") || isDelimiter($0) }),
            u[pathStart] == UInt8(ascii: "/")
        else { return nil }
        let pathEnd = u[pathStart...].firstIndex(where: isDelimiter) ?? u.count
        guard let lastSlash = u[pathStart..<pathEnd].lastIndex(of: UInt8(ascii: "/")) else { return nil }
        let announceWord = Array("announce".utf8)
        let component = u[(lastSlash + 1)..<pathEnd]
        guard component.starts(with: announceWord) else { return nil }
        let replaced = u[0...lastSlash] + Array("scrape".utf8) + u[(lastSlash + 1 + announceWord.count)...]
        let base = String(decoding: replaced, as: UTF8.self)
        guard !infoHashes.isEmpty else { return base }
        let query = infoHashes.map { "info_hash=" + self.percentEncode($0) }.joined(separator: "&")
        return self.appendQuery(query, to: base)
    }

    /// Percent-encodes bytes for a query string: `A-Z a-z 0-9 . - _ ~` stay, every other byte becomes
    /// `%XX` with upper-case hex digits (how BEP 3 clients send `info_hash` and `peer_id`).
    public static func percentEncode(_ bytes: some Sequence<UInt8>) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 3)
        for b in bytes {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Internals shared by the response parsers

    /// Appends `query` to `url`'s query string (dropping any fragment).
    static func appendQuery(_ query: String, to url: String) -> String {
        var base = Substring(url)
        if let hash = base.firstIndex(of: "#") { base = base[..<hash] }
        guard base.contains("?") else { return base + "?" + query }
        if base.hasSuffix("?") || base.hasSuffix("&") { return base + query }
        return base + "&" + query
    }

    /// Decodes a response body into its top-level dictionary; throws the tracker's `failure reason`.
    static func decodeBody(_ body: [UInt8]) throws(TrackerError) -> BencodeNode {
        guard body.count <= TrackerLimits.maxBodyLength else {
            throw .tooLarge(what: "response body bytes", count: body.count, limit: TrackerLimits.maxBodyLength)
        }
        let root: BencodeNode
        let end: Int
        do {
            (root, end) = try BencodeDecoder(limits: TrackerLimits.bencode).decodePrefix(body)
        } catch {
            throw .bencode(error)
        }
        // Some trackers end the body with a newline; anything else after the dictionary is an error.
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0d, 0x0a]
        guard body[end...].allSatisfy(whitespace.contains) else { throw .bencode(.trailingData(offset: end)) }
        guard root.entries != nil else {
            throw .wrongType(key: "(response)", expected: "a dictionary", found: root.typeName)
        }
        if let failure = root["failure reason"] { throw .failure(self.text(failure)) }
        return root
    }

    /// A tracker-supplied message as text: UTF-8 with invalid bytes replaced; non-strings are described.
    static func text(_ node: BencodeNode) -> String {
        if let bytes = node.bytes { return String(decoding: bytes, as: UTF8.self) }
        return "(\(node.typeName) \(node.value))"
    }

    private static func hex8(_ v: UInt32) -> String {
        let digits = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    private static func index(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
    }
}
