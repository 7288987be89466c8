/// A small, fast, seeded random number generator (SplitMix64), for reproducible simulations and tests.
///
/// Protocol cores take randomness as an injected `RandomNumberGenerator`; a driver passes
/// `SystemRandomNumberGenerator`, a simulation or test passes this with a seed so that a run can be replayed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
