import Testing

@testable import PeerKit

@Suite struct ConnectionGateTests {
    @Test func oneAddressHoldsAtMostMaxPerHostConnections() {
        var gate = ConnectionGate(maxPerHost: 2, maxPending: 10)
        #expect(gate.opened(1, host: "10.0.0.1") == .admit(evict: nil))
        #expect(gate.opened(2, host: "10.0.0.1") == .admit(evict: nil))
        #expect(gate.opened(3, host: "10.0.0.1") == .refuse)
        #expect(gate.opened(4, host: "10.0.0.2") == .admit(evict: nil))
        // Routed connections still count for their address; a closed one frees its place.
        gate.routed(1)
        #expect(gate.opened(5, host: "10.0.0.1") == .refuse)
        gate.closed(1)
        #expect(gate.opened(6, host: "10.0.0.1") == .admit(evict: nil))
    }

    @Test func oneMoreThanMaxPendingPushesOutTheOldestStillWaiting() {
        var gate = ConnectionGate(maxPerHost: 100, maxPending: 3)
        for id in 0..<3 { #expect(gate.opened(id, host: "10.0.0.\(id)") == .admit(evict: nil)) }
        // 0 sent its handshake: 1 is now the oldest still waiting.
        gate.routed(0)
        #expect(gate.opened(3, host: "10.0.0.3") == .admit(evict: nil))
        #expect(gate.opened(4, host: "10.0.0.4") == .admit(evict: 1))
        gate.closed(1)
        #expect(gate.pendingCount == 3)
        gate.closed(2)
        #expect(gate.opened(5, host: "10.0.0.5") == .admit(evict: nil))
        #expect(gate.opened(6, host: "10.0.0.6") == .admit(evict: 3))
    }
}
