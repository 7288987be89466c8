import PeerSimulation
import Testing

/// The swarm simulator at CI's size: many `TorrentMachine`s (the production code) in virtual time. The
/// 100- and 1 000-leecher rows of docs/ARCHITECTURE.md come from scripts/swarm-sim.sh.
@Suite struct SwarmSimulationTests {
    static func small() -> SwarmScenario {
        var s = SwarmScenario()
        s.leechers = 20
        s.fileSize = 8 << 20
        s.timeLimit = .seconds(600)
        return s
    }

    @Test func aFlashCrowdOf20FinishesNearTheFluidBoundWithCorrectData() throws {
        let report = try SwarmSimulation(Self.small()).run()
        print(SwarmReport.header)
        print(report.row)
        #expect(report.unfinished == 0)
        #expect(report.wrongPieces == 0 && report.hashFailures == 0)
        // 8 MiB is 32 pieces: start-up weighs more than at 64 MiB (1.10x there; 1.45x and 1.03x measured
        // here). A regression guard, not the target: that is the 100-leecher row.
        #expect(try #require(report.ratio) < 1.7)
        #expect(try #require(report.firstCopyRatio) < 1.25)
        // The seed sends no more than it must while leechers can serve each other.
        #expect(report.seedUploaded < 4 * report.scenario.fileSize)
    }

    @Test func honestLeechersFinishAmongCorruptSilentAndLyingPeersAndOnlyTheCorruptAreBanned() throws {
        var s = Self.small()
        s.corrupt = 0.1
        s.silent = 0.05
        s.liars = 0.05
        let report = try SwarmSimulation(s).run()
        print(report.row)
        #expect(report.unfinished == 0)
        #expect(report.wrongPieces == 0)
        #expect(report.hashFailures > 0)
        #expect(report.hostileBanned == 2)  // the two corrupt ones; silent and lying peers send nothing wrong
        #expect(report.honestBanned == 0)
        #expect(try #require(report.ratio) < 3)
    }

    @Test func churnAndLossSlowTheSwarmButEveryoneFinishes() throws {
        var s = Self.small()
        s.churn = 0.2
        s.loss = 0.02
        let report = try SwarmSimulation(s).run()
        print(report.row)
        #expect(report.unfinished == 0)
        #expect(report.wrongPieces == 0)
    }

    @Test func aRunIsReproducibleFromItsSeed() throws {
        var s = Self.small()
        s.leechers = 8
        s.fileSize = 2 << 20
        let a = try SwarmSimulation(s).run()
        let b = try SwarmSimulation(s).run()
        #expect(a.row == b.row)
        #expect(a.finishTimes == b.finishTimes)
        s.seed = 2
        let c = try SwarmSimulation(s).run()
        #expect(c.finishTimes != a.finishTimes)
    }
}
