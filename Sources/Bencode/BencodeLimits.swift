/// Bounds the decoder enforces before it allocates anything. Defaults follow DESIGN.md §6 and the
/// figures libtorrent uses for .torrent files (depth 100, a few million tokens).
public struct BencodeLimits: Sendable, Equatable {
    /// Deepest nesting of lists and dictionaries.
    public var maxDepth: Int
    /// Most values (integers, strings, lists, dictionaries) in one document.
    public var maxItems: Int
    /// Longest single byte string.
    public var maxStringLength: Int
    /// Longest input accepted at all.
    public var maxInputLength: Int
    /// Refuse dictionaries whose keys are not in ascending order (duplicates are always refused).
    public var requireSortedKeys: Bool

    public init(
        maxDepth: Int = 100,
        maxItems: Int = 3_000_000,
        maxStringLength: Int = 64 << 20,
        maxInputLength: Int = 128 << 20,
        requireSortedKeys: Bool = false
    ) {
        self.maxDepth = maxDepth
        self.maxItems = maxItems
        self.maxStringLength = maxStringLength
        self.maxInputLength = maxInputLength
        self.requireSortedKeys = requireSortedKeys
    }

    /// Defaults for .torrent files: lenient about key order, bounded everywhere else.
    public static let `default` = BencodeLimits()
    /// Limits for small network messages (KRPC, extension handshakes): small and strict on size.
    public static let message = BencodeLimits(
        maxDepth: 32, maxItems: 10_000, maxStringLength: 64 << 10, maxInputLength: 1 << 20)
}
