// peer-sim: runs the deterministic simulators of PeerSimulation and prints markdown tables.
//
// The DHT, one row per combination of node count and churn:
//   peer-sim [--nodes 1000,10000] [--churn 0,0.2] [--loss 0.05] [--seed 1] [--lookups 200] [--announces 100]
//            [--silent 0] [--liars 0] [--settle 300] [--latency uniform:20:200 | lognormal:80:0.6:1000]
//
// A swarm of torrent machines (TorrentMachine, the production code) in virtual time, one row per leecher count
// and churn (scripts/swarm-sim.sh runs the table of docs/ARCHITECTURE.md):
//   peer-sim swarm [--leechers 100,1000] [--size-mib 64] [--piece-kib 256] [--upload-kib 256] [--seed-upload-kib 512]
//                  [--download-kib 1024] [--latency-ms 50] [--loss 0] [--corrupt 0] [--silent 0] [--liars 0]
//                  [--churn 0,0.2] [--seed 1] [--time-limit 3600]
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

/// An option's value as a number, or a clear exit.
func parse<T: LosslessStringConvertible>(_ flag: String, _ value: String) -> T {
    guard let v = T(value) else { fail("\(flag): not a number: \(value)") }
    return v
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
if args.first == "swarm" {
    args.removeFirst()
    runSwarm(Array(args))
    exit(0)
}
while let flag = args.popFirst() {
    guard let value = args.popFirst() else { fail("\(flag) needs a value") }
    func number<T: LosslessStringConvertible>(_: T.Type = T.self) -> T { parse(flag, value) }
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

func runSwarm(_ arguments: [String]) {
    var base = SwarmScenario()
    var leecherCounts = [base.leechers]
    var churnRates = [0.0]
    var args = arguments[...]
    while let flag = args.popFirst() {
        guard let value = args.popFirst() else { fail("\(flag) needs a value") }
        func number<T: LosslessStringConvertible>(_: T.Type = T.self) -> T { parse(flag, value) }
        switch flag {
        case "--leechers": leecherCounts = value.split(separator: ",").compactMap { Int($0) }
        case "--churn": churnRates = value.split(separator: ",").compactMap { Double($0) }
        case "--size-mib": base.fileSize = Int64(number(Int.self)) << 20
        case "--piece-kib": base.pieceLength = number(Int.self) << 10
        case "--upload-kib": base.upload = Int64(number(Int.self)) << 10
        case "--seed-upload-kib": base.seedUpload = Int64(number(Int.self)) << 10
        case "--download-kib": base.download = Int64(number(Int.self)) << 10
        case "--latency-ms": base.latency = .milliseconds(number(Int64.self))
        case "--loss": base.loss = number()
        case "--corrupt": base.corrupt = number()
        case "--silent": base.silent = number()
        case "--liars": base.liars = number()
        case "--seed": base.seed = number()
        case "--upload-slots": base.uploadSlots = number()
        case "--time-limit": base.timeLimit = .seconds(number(Int64.self))
        default: fail("unknown option \(flag)")
        }
    }
    print("Seed \(base.seed); U = \(base.upload / 1024) KiB/s, U_seed = \(base.seedUpload / 1024) KiB/s, "
        + "D = \(base.download / 1024) KiB/s, \(base.latency) one way, pieces of \(base.pieceLength / 1024) KiB.")
    print("")
    print(SwarmReport.header)
    let clock = ContinuousClock()
    var timings: [String] = []
    for n in leecherCounts {
        for churn in churnRates {
            var scenario = base
            scenario.leechers = n
            scenario.churn = churn
            let sim: SwarmSimulation
            do { sim = try SwarmSimulation(scenario) } catch { fail("cannot make the torrent: \(error)") }
            var report: SwarmReport?
            let elapsed = clock.measure { report = sim.run() }
            print(report!.row)
            timings.append("\(n) leechers, churn \(churn): \(elapsed) wall, wrong pieces \(report!.wrongPieces)")
        }
    }
    print("")
    for t in timings { print(t) }
}
