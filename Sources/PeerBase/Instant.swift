/// A point in virtual time: the time since an arbitrary epoch chosen by the driver.
///
/// Protocol cores never read a clock; drivers convert their clock to `Instant` and pass it in,
/// so that tests and simulations can start at `.zero` and move time by hand.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Time since the epoch.
    public var offset: Duration

    public init(offset: Duration) { self.offset = offset }

    /// The epoch.
    public static let zero = Instant(offset: .zero)

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    public static func + (lhs: Instant, rhs: Duration) -> Instant { Instant(offset: lhs.offset + rhs) }
    public static func - (lhs: Instant, rhs: Instant) -> Duration { lhs.offset - rhs.offset }

    public var description: String {
        let (s, atto) = self.offset.components
        let ms = atto / 1_000_000_000_000_000
        let msText = String(ms)
        return "t=\(s).\(String(repeating: "0", count: 3 - msText.count))\(msText)s"
    }
}
