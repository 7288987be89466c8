import NIOCore

/// Whole pieces read from disk for serving, kept in the buffers their blocks are sent from (as slices, not
/// copies); the least recently used is dropped beyond `capacity` pieces. Small: a few dozen pieces.
struct ReadCache {
    private var entries: [Int: (bytes: ByteBuffer, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0
    /// How many pieces it keeps.
    let capacity: Int

    /// - Parameters:
    ///   - bytes: the memory it may hold.
    ///   - pieceLength: the torrent's piece length (at least two pieces are kept, whatever `bytes` says).
    init(bytes: Int, pieceLength: Int) {
        self.capacity = max(2, bytes / max(1, pieceLength))
    }

    /// The piece's bytes, if cached; counts as a use.
    mutating func get(_ piece: Int) -> ByteBuffer? {
        guard let entry = self.entries[piece] else { return nil }
        self.clock += 1
        self.entries[piece]!.lastUse = self.clock
        return entry.bytes
    }

    mutating func insert(_ piece: Int, _ bytes: ByteBuffer) {
        self.clock += 1
        self.entries[piece] = (bytes, self.clock)
        while self.entries.count > self.capacity,
            let oldest = self.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
        {
            self.entries[oldest.key] = nil
        }
    }
}
