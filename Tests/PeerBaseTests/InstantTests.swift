import PeerBase
import Testing

@Suite("Instant")
struct InstantTests {
    @Test(
        "description shows seconds with milliseconds",
        arguments: [
            (Duration.zero, "t=0.000s"),
            (.milliseconds(1), "t=0.001s"),
            (.milliseconds(1500), "t=1.500s"),
            (.milliseconds(61_007), "t=61.007s"),
            (.microseconds(1999), "t=0.001s"),
            (.nanoseconds(999_999), "t=0.000s"),
            (.seconds(3600), "t=3600.000s"),
            (.milliseconds(20), "t=0.020s"),
        ])
    func description(_ offset: Duration, _ expected: String) {
        #expect(Instant(offset: offset).description == expected)
    }

    @Test("arithmetic and ordering")
    func arithmetic() {
        let a = Instant.zero + .seconds(2)
        let b = a + .milliseconds(250)
        #expect(Instant.zero < a)
        #expect(a < b)
        #expect(b - a == .milliseconds(250))
        #expect(a - b == .milliseconds(-250))
        #expect(Instant.zero.offset == .zero)
        #expect(max(a, b) == b)
        #expect(Set([a, b, a + .zero]).count == 2)
    }

    /// Instants before the epoch are legal (`Instant(offset:)` and `+` accept negative durations),
    /// so their description must be a well-formed time, not garbage such as "t=0.-50s".
    @Test("description of an instant before the epoch")
    func negativeDescription() {
        #expect(Instant(offset: .milliseconds(-50)).description == "t=-0.050s")
    }

    /// `Instant.description` must not trap for an instant a second or more before the epoch
    /// (`String(repeating:count:)` gets a negative count for "-500" milliseconds).
    @Test("description of an instant 1.5 s before the epoch does not crash")
    func negativeDescriptionDoesNotCrash() async {
        await #expect(processExitsWith: .success) {
            let text = Instant(offset: .milliseconds(-1500)).description
            precondition(!text.isEmpty)
        }
    }
}
