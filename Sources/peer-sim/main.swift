// peer-sim: runs the deterministic DHT simulator (PeerSimulation) and prints a markdown table, one row per
// combination of node count and churn. Usage:
//   peer-sim [--nodes 1000,10000] [--churn 0,0.2] [--loss 0.05] [--seed 1] [--lookups 200] [--announces 100]
//            [--silent 0] [--liars 0] [--settle 300] [--latency uniform:20:200 | lognormal:80:0.6:1000]
import DHT
import PeerBase
import PeerSimulation

#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

func fail(_ message: String) -> Never {
    print("peer-sim: \(message)")
    exit(2)
}

var nodes = [1000]
var churns = [0.0]
var loss = 0.05
var seed: UInt64 = 1
var lookups = 200
var announces = 100
var silent = 0.0
var liars = 0.0
var settle = 300
var latency = LatencyModel.standard

var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    guard let value = args.popFirst() else { fail("\(flag) needs a value") }
    func number<T: LosslessStringConvertible>(_: T.Type = T.self) -> T {
        guard let v = T(value) else { fail("\(flag): not a number: \(value)") }
        return v
    }
    switch flag {
    case "--nodes": nodes = value.split(separator: ",").compactMap { Int($0) }
    case "--churn": churns = value.split(separator: ",").compactMap { Double($0) }
    case "--loss": loss = number()
    case "--seed": seed = number()
    case "--lookups": lookups = number()
    case "--announces": announces = number()
    case "--silent": silent = number()
    case "--liars": liars = number()
    case "--settle": settle = number()
    case "--latency":
        let p = value.split(separator: ":")
        switch (p.first, p.count) {
        case ("uniform", 3):
            guard let lo = Int64(p[1]), let hi = Int64(p[2]) else { fail("--latency: \(value)") }
            latency = .uniform(min: .milliseconds(lo), max: .milliseconds(hi))
        case ("lognormal", 4):
            guard let m = Int64(p[1]), let s = Double(p[2]), let cap = Int64(p[3]) else { fail("--latency: \(value)") }
            latency = .logNormal(median: .milliseconds(m), sigma: s, max: .milliseconds(cap))
        default: fail("--latency: uniform:MIN:MAX or lognormal:MEDIAN:SIGMA:CAP (ms)")
        }
    default: fail("unknown option \(flag)")
    }
}

print("Seed \(seed), latency \(latency) per link direction, \(announces) announces, \(lookups) lookups, settle \(settle) s.")
print("")
print(DHTSimulation.Report.markdownHeader)
let clock = ContinuousClock()
var timings: [String] = []
for n in nodes {
    for churn in churns {
        let config = DHTSimulation.Configuration(
            nodeCount: n, seed: seed, latency: latency, loss: loss, churnPerHour: churn, silentShare: silent,
            liarShare: liars, settle: .seconds(settle), announces: announces, lookups: lookups)
        var sim = DHTSimulation(config)
        var report: DHTSimulation.Report?
        let elapsed = clock.measure { report = sim.run() }
        print(report!.markdownRow)
        timings.append(
            "\(n) nodes, churn \(churn)/h: \(elapsed) wall, \(report!.virtualTime) virtual, "
                + "\(report!.datagramsDelivered) datagrams delivered, \(report!.datagramsLost) lost, \(report!.departures) departures")
    }
}
print("")
for t in timings { print(t) }
