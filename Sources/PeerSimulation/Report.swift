import DHT
import PeerBase

extension DHTSimulation {
    /// The figures of one run.
    ///
    /// - success: a lookup succeeds when its get_peers result contains the peer announced for that info-hash
    ///   (address of the announcing node, announced port); a lookup still running after `lookupLimit` fails.
    /// - time to peer (the lookup time the targets speak of): from the get_peers command to the first
    ///   `.peersFound` event that carries the announced peer (virtual time), over successful lookups;
    ///   lookup end: from the command to its `.finished` event, over all lookups. The end comes later: the
    ///   lookup waits until the k closest nodes have all answered, and a lost datagram there costs a 2 s timeout.
    /// - messages per lookup: queries the looking-up node sent (first transmissions and retries) between the
    ///   command and its result. This includes that node's own housekeeping in the window (a couple of pings
    ///   every 5 s), and leaves out the answers, which at most double it.
    public struct Report: Equatable, Sendable {
        public struct Lookup: Equatable, Sendable {
            public var succeeded: Bool
            public var duration: Duration
            public var firstPeer: Duration?
            public var queries: Int
        }

        public var configuration: Configuration
        public var lookups: [Lookup]
        /// Every announce's and every lookup's result (nil: not finished in time), for a closer look.
        public var announceOutcomes: [LookupOutcome?]
        public var lookupOutcomes: [LookupOutcome?]
        /// For each announce, how many nodes accepted it.
        public var storedOn: [Int]
        public var medianRoundTrip: Duration
        public var departures: Int
        public var datagramsDelivered: Int
        public var datagramsLost: Int
        /// Datagrams delivered from the first announce to the end.
        public var experimentDatagrams: Int
        public var virtualTime: Duration
        public var experimentTime: Duration

        public var successRate: Double {
            Double(self.lookups.filter(\.succeeded).count) / Double(max(1, self.lookups.count))
        }
        public var medianLookup: Duration { Self.percentile(self.lookups.map(\.duration), 0.5) }
        public var p95Lookup: Duration { Self.percentile(self.lookups.map(\.duration), 0.95) }
        public var medianFirstPeer: Duration { Self.percentile(self.lookups.compactMap(\.firstPeer), 0.5) }
        public var p95FirstPeer: Duration { Self.percentile(self.lookups.compactMap(\.firstPeer), 0.95) }
        public var messagesPerLookup: Double {
            Double(self.lookups.reduce(0) { $0 + $1.queries }) / Double(max(1, self.lookups.count))
        }
        /// Median lookup time in median round trips.
        public var medianLookupInRTT: Double {
            LatencyModel.seconds(self.medianLookup) / LatencyModel.seconds(self.medianRoundTrip)
        }
        /// Median time to the announced peer in median round trips: the issue's "lookup time" (a lookup
        /// succeeds when get_peers returns the announced peer).
        public var medianFirstPeerInRTT: Double {
            LatencyModel.seconds(self.medianFirstPeer) / LatencyModel.seconds(self.medianRoundTrip)
        }
        public var meanStoredOn: Double { Double(self.storedOn.reduce(0, +)) / Double(max(1, self.storedOn.count)) }

        /// Nearest-rank percentile (zero for no samples).
        static func percentile(_ values: [Duration], _ p: Double) -> Duration {
            guard !values.isEmpty else { return .zero }
            let sorted = values.sorted()
            let rank = Int((p * Double(sorted.count)).rounded(.up))
            return sorted[min(sorted.count, max(1, rank)) - 1]
        }

        static func ms(_ d: Duration) -> String { String(Int((LatencyModel.seconds(d) * 1000).rounded())) }

        static func fixed(_ x: Double, _ digits: Int) -> String {
            var scale = 1.0
            for _ in 0..<digits { scale *= 10 }
            let v = Int((x * scale).rounded())
            let whole = v / Int(scale)
            let frac = String(v % Int(scale))
            return digits == 0 ? String(whole) : "\(whole).\(String(repeating: "0", count: digits - frac.count))\(frac)"
        }

        public static let markdownHeader = """
            | nodes | churn/h | loss | silent | liars | lookups | success | median time to peer | p95 time to peer | median lookup end | p95 lookup end | msgs/lookup | median RTT | stored on |
            |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
            """

        public var markdownRow: String {
            let c = self.configuration
            let pct = { (x: Double) in Self.fixed(x * 100, 0) + "%" }
            return "| \(c.nodeCount) | \(pct(c.churnPerHour)) | \(pct(c.loss)) | \(pct(c.silentShare)) | \(pct(c.liarShare)) | "
                + "\(self.lookups.count) | \(Self.fixed(self.successRate * 100, 1))% | "
                + "\(Self.ms(self.medianFirstPeer)) ms (\(Self.fixed(self.medianFirstPeerInRTT, 1)) RTT) | \(Self.ms(self.p95FirstPeer)) ms | "
                + "\(Self.ms(self.medianLookup)) ms (\(Self.fixed(self.medianLookupInRTT, 1)) RTT) | \(Self.ms(self.p95Lookup)) ms | "
                + "\(Self.fixed(self.messagesPerLookup, 1)) | \(Self.ms(self.medianRoundTrip)) ms | \(Self.fixed(self.meanStoredOn, 1)) |"
        }
    }
}
