// BEP 15: UDP tracker protocol wire formats (all integers big-endian). BEP 7/15: 18-byte peers over IPv6.

/// The address family of the socket a UDP tracker exchange runs over; it decides the peer format of
/// announce responses (BEP 15: 6 bytes per peer over IPv4, 18 over IPv6).
public enum AddressFamily: Hashable, Sendable {
    case ipv4, ipv6

    /// Bytes per peer in a compact list of this family.
    public var compactPeerLength: Int { self == .ipv4 ? 6 : 18 }
}

/// The `action` field of a UDP tracker message.
public enum UDPTrackerAction: UInt32, Sendable, CustomStringConvertible {
    case connect = 0
    case announce = 1
    case scrape = 2
    case error = 3

    public var description: String {
        switch self {
        case .connect: "connect"
        case .announce: "announce"
        case .scrape: "scrape"
        case .error: "error"
        }
    }
}

/// A request a client sends to a UDP tracker.
public enum UDPTrackerRequest: Equatable, Sendable {
    /// Asks for a connection id (16 bytes).
    case connect(transactionID: UInt32)
    /// Announces (98 bytes).
    case announce(connectionID: UInt64, transactionID: UInt32, request: AnnounceRequest)
    /// Asks for swarm counts of up to 74 torrents (16 + 20 per hash bytes).
    case scrape(connectionID: UInt64, transactionID: UInt32, infoHashes: [[UInt8]])

    /// The magic constant that opens a connect request.
    public static let protocolID: UInt64 = 0x417_2710_1980

    /// The datagram.
    ///
    /// In an announce, the 32-bit `IP address` field carries `request.ip` when it is an IPv4 literal and
    /// 0 otherwise; `num_want` is -1 when `request.numWant` is nil.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .connect(let tid):
            out.reserveCapacity(16)
            out.appendBigEndian(Self.protocolID)
            out.appendBigEndian(UDPTrackerAction.connect.rawValue)
            out.appendBigEndian(tid)
        case .announce(let cid, let tid, let r):
            out.reserveCapacity(98)
            out.appendBigEndian(cid)
            out.appendBigEndian(UDPTrackerAction.announce.rawValue)
            out.appendBigEndian(tid)
            out.append(contentsOf: r.infoHash)
            out.append(contentsOf: r.peerID)
            out.appendBigEndian(r.downloaded)
            out.appendBigEndian(r.left)
            out.appendBigEndian(r.uploaded)
            out.appendBigEndian(r.event.udpValue)
            var ip: UInt32 = 0
            if let text = r.ip, case .v4(let v)? = try? PeerAddress.IP(parsing: text) { ip = v }
            out.appendBigEndian(ip)
            out.appendBigEndian(r.key)
            out.appendBigEndian(UInt32(bitPattern: r.numWant ?? -1))
            out.appendBigEndian(r.port)
        case .scrape(let cid, let tid, let hashes):
            out.reserveCapacity(16 + 20 * hashes.count)
            out.appendBigEndian(cid)
            out.appendBigEndian(UDPTrackerAction.scrape.rawValue)
            out.appendBigEndian(tid)
            for h in hashes { out.append(contentsOf: h) }
        }
        return out
    }
}

/// A message a UDP tracker sends back.
public enum UDPTrackerResponse: Equatable, Sendable {
    /// A connection id, valid for a minute.
    case connect(transactionID: UInt32, connectionID: UInt64)
    /// An announce answer (interval, counts, peers).
    case announce(transactionID: UInt32, response: AnnounceResponse)
    /// Counts for each scraped hash, in the order they were asked for.
    case scrape(transactionID: UInt32, stats: [ScrapeStats])
    /// The tracker refused the request.
    case error(transactionID: UInt32, message: String)
    /// An action this client does not know (a future extension): not an error, nothing to do.
    case unknown(action: UInt32, transactionID: UInt32)

    /// The transaction id every response carries at offset 4.
    public var transactionID: UInt32 {
        switch self {
        case .connect(let t, _), .announce(let t, _), .scrape(let t, _), .error(let t, _), .unknown(_, let t): t
        }
    }

    /// Decodes a datagram from a tracker.
    ///
    /// Extra bytes after the known fields are allowed (BEP 15: "do not expect packets to be exactly of a
    /// certain size"); a trailing partial peer or scrape entry is dropped. Peers with port 0 are dropped
    /// and at most `TrackerLimits.maxPeers` are kept, as for HTTP.
    /// - Parameters:
    ///   - datagram: The UDP payload, at most `TrackerLimits.maxDatagramLength` bytes.
    ///   - addressFamily: The family of the socket it arrived on (decides 6- or 18-byte peers).
    /// - Throws: `.tooLarge` for an oversized datagram, `.badLength` when it is shorter than its header.
    public static func decode(_ datagram: [UInt8], addressFamily: AddressFamily) throws(TrackerError)
        -> UDPTrackerResponse
    {
        let n = datagram.count
        guard n <= TrackerLimits.maxDatagramLength else {
            throw .tooLarge(what: "datagram bytes", count: n, limit: TrackerLimits.maxDatagramLength)
        }
        guard n >= 8 else { throw .badLength(what: "datagram", length: n, expected: "at least 8") }
        let action = datagram.readBigEndian(UInt32.self, at: 0)
        let tid = datagram.readBigEndian(UInt32.self, at: 4)
        switch UDPTrackerAction(rawValue: action) {
        case .connect:
            guard n >= 16 else { throw .badLength(what: "connect response", length: n, expected: "at least 16") }
            return .connect(transactionID: tid, connectionID: datagram.readBigEndian(UInt64.self, at: 8))
        case .announce:
            guard n >= 20 else { throw .badLength(what: "announce response", length: n, expected: "at least 20") }
            var problems = ProblemList()
            var response = AnnounceResponse()
            let field = { (name: String, offset: Int) -> Int? in
                let v = Int32(bitPattern: datagram.readBigEndian(UInt32.self, at: offset))
                guard v >= 0 else {
                    problems.add(.invalidValue(key: name, reason: "\(v) is negative"))
                    return nil
                }
                return Int(v)
            }
            response.interval = field("interval", 8).map { .seconds($0) }
            response.incomplete = field("leechers", 12)
            response.complete = field("seeders", 16)
            var peers = PeerCollector()
            peers.addCompact(
                Array(datagram[20...]), key: "peers", stride: addressFamily.compactPeerLength, problems: &problems)
            peers.reportOverflow(problems: &problems)
            response.peers = peers.peers
            response.ignored = problems.items
            return .announce(transactionID: tid, response: response)
        case .scrape:
            var stats: [ScrapeStats] = []
            var offset = 8
            while offset + 12 <= n {
                let v = (0..<3).map { Int(Int32(bitPattern: datagram.readBigEndian(UInt32.self, at: offset + 4 * $0))) }
                stats.append(ScrapeStats(complete: max(0, v[0]), downloaded: max(0, v[1]), incomplete: max(0, v[2])))
                offset += 12
            }
            return .scrape(transactionID: tid, stats: stats)
        case .error:
            var message = datagram[8...]
            while message.last == 0 { message.removeLast() }  // some trackers send a C string
            return .error(transactionID: tid, message: String(decoding: message, as: UTF8.self))
        case nil:
            return .unknown(action: action, transactionID: tid)
        }
    }
}

extension [UInt8] {
    /// Appends `value` in network byte order.
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.bigEndian
        Swift.withUnsafeBytes(of: &v) { self.append(contentsOf: $0) }
    }

    /// Reads a big-endian integer at `offset`.
    /// - Precondition: `offset + MemoryLayout<T>.size <= count` (callers check lengths first).
    func readBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= self.count, "read past the end")
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = v << 8 | T(self[offset + i]) }
        return v
    }
}
