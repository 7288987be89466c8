import DHT
import PeerBase
import PeerSimulation
import Testing

@Suite("DHT simulator")
struct DHTSimulationTests {
    /// The CI-sized run: 1 000 nodes, 5% loss, no churn.
    static let ci = DHTSimulation.Configuration(
        nodeCount: 1000, seed: 42, loss: 0.05, settle: .seconds(120), announces: 40, lookups: 100)

    @Test("1 000 nodes, 5% loss, no churn: at least 99% of get_peers lookups find the announced peer, median within 6 RTT")
    func thousandNodes() {
        var sim = DHTSimulation(Self.ci)
        let report = sim.run()
        print(DHTSimulation.Report.markdownHeader)
        print(report.markdownRow)
        #expect(report.successRate >= 0.99)
        #expect(report.medianLookupInRTT <= 6, "median \(report.medianLookup), RTT \(report.medianRoundTrip)")
        #expect(report.datagramsLost > 0)
    }

    @Test("the same seed gives the same figures; another seed other ones")
    func deterministic() {
        let config = DHTSimulation.Configuration(
            nodeCount: 150, seed: 7, loss: 0.05, churnPerHour: 0.5, silentShare: 0.05, liarShare: 0.05,
            settle: .seconds(30), announces: 10, lookups: 20)
        var a = DHTSimulation(config)
        var b = DHTSimulation(config)
        let ra = a.run()
        let rb = b.run()
        #expect(ra == rb)
        #expect(ra.markdownRow == rb.markdownRow)
        var other = config
        other.seed = 8
        var c = DHTSimulation(other)
        #expect(c.run().lookups != ra.lookups)
    }

    @Test("the latency model: uniform 20-200 ms per direction gives a median round trip near 220 ms")
    func latency() {
        let rtt = LatencyModel.standard.medianRoundTrip
        #expect(rtt > .milliseconds(210) && rtt < .milliseconds(230))
        let logNormal = LatencyModel.logNormal(median: .milliseconds(50), sigma: 0.5, max: .seconds(1)).medianRoundTrip
        #expect(logNormal > .milliseconds(90) && logNormal < .milliseconds(110))
    }
}
