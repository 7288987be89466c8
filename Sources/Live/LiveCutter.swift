// Issue 17: how a source's input becomes chunks — any bytes, and WebM cut at its clusters.

/// Cuts a source's input into chunk payloads, sans I/O: the driver appends what it reads and calls `cut()` every
/// chunk interval (200 ms).
///
/// Input that starts with an EBML header is taken for WebM (or Matroska), as ffmpeg writes it live: the bytes before
/// the first Cluster (EBML header, Segment, Info, Tracks) become one `header` chunk, and each Cluster begins a new
/// chunk marked `start`, so a viewer who joins late plays the header and then whole clusters. The parse reads only
/// element headers at the Segment's level (and inside a Cluster of unknown size); it never holds more than what
/// has not been cut. Any other input is cut as it comes, every chunk a `media` one.
public struct LiveCutter: Sendable {
    /// The largest payload cut (a second of an 8 Mbit/s stream is split into several chunks).
    public static let maxChunk = 128 << 10

    private enum Format { case unknown, raw, webm }
    private enum Level { case top, segment, cluster }

    private var format = Format.unknown
    private var level = Level.top
    private var buffer: [UInt8] = []
    /// Absolute offsets: of buffer[0], and of the next element header to read.
    private var base = 0
    private var scan = 0
    /// Absolute offsets of clusters found and not yet cut at.
    private var clusters: [Int] = []
    private var headerDone = false

    public init() {}

    public mutating func append(_ bytes: [UInt8]) {
        self.buffer += bytes
        if self.format == .unknown, self.buffer.count >= 4 {
            self.format = self.buffer.prefix(4) == [0x1A, 0x45, 0xDF, 0xA3] ? .webm : .raw
        }
        if self.format == .webm { self.parse() }
    }

    /// The chunks ready now, in order; the bytes of an element header not yet whole wait for the next call.
    public mutating func cut() -> [(payload: [UInt8], kind: LiveChunk.Kind)] {
        switch self.format {
        case .unknown: return []
        case .raw:
            defer { self.take(self.buffer.count) }
            return Self.split(self.buffer, kind: .media)
        case .webm:
            var out: [(payload: [UInt8], kind: LiveChunk.Kind)] = []
            if !self.headerDone {
                guard let first = self.clusters.first else { return [] }
                out.append((Array(self.buffer[0..<(first - self.base)]), .header))
                self.take(first - self.base)
                self.headerDone = true
            }
            // Up to where the parse has read (an element header cut in two would hide a cluster).
            let end = min(self.base + self.buffer.count, self.scan)
            while self.base < end {
                let kind: LiveChunk.Kind = self.clusters.first == self.base ? .start : .media
                if kind == .start { self.clusters.removeFirst() }
                let stop = self.clusters.first.map { min($0, end) } ?? end
                out += Self.split(Array(self.buffer[0..<(stop - self.base)]), kind: kind)
                self.take(stop - self.base)
            }
            return out
        }
    }

    private mutating func take(_ n: Int) {
        self.buffer.removeFirst(n)
        self.base += n
    }

    private static func split(_ bytes: [UInt8], kind: LiveChunk.Kind) -> [(payload: [UInt8], kind: LiveChunk.Kind)] {
        stride(from: 0, to: bytes.count, by: Self.maxChunk).map { i in
            (Array(bytes[i..<min(bytes.count, i + Self.maxChunk)]), i == 0 ? kind : .media)
        }
    }

    // MARK: EBML

    private static let segment: UInt32 = 0x1853_8067
    private static let cluster: UInt32 = 0x1F43_B675
    /// Elements that end a Cluster of unknown size: the Segment's other children.
    private static let segmentChildren: Set<UInt32> = [
        0x1F43_B675, 0x1C53_BB6B, 0x1254_C367, 0x1043_A770, 0x1941_A469, 0x114D_9B74, 0x1549_A966, 0x1654_AE6B,
    ]

    /// Reads element headers from `scan` while they are here.
    private mutating func parse() {
        while self.format == .webm, let (id, headerLength, size) = self.element(at: self.scan) {
            let start = self.scan
            switch self.level {
            case .top:
                if id == Self.segment {
                    self.level = .segment
                    self.scan = start + headerLength
                } else if let size {
                    self.scan = start + headerLength + size
                } else {
                    self.format = .raw  // not a layout this understands: cut it as bytes
                }
            case .segment:
                if id == Self.cluster {
                    self.clusters.append(start)
                    if let size { self.scan = start + headerLength + size } else {
                        self.level = .cluster
                        self.scan = start + headerLength
                    }
                } else if let size {
                    self.scan = start + headerLength + size
                } else {
                    self.format = .raw
                }
            case .cluster:
                if Self.segmentChildren.contains(id) {
                    self.level = .segment  // read again at the Segment's level
                } else if let size {
                    self.scan = start + headerLength + size
                } else {
                    self.format = .raw
                }
            }
        }
    }

    /// The element header at absolute offset `at`: its id (with the length marker, as the spec writes ids), the
    /// header's length, and the data size (nil: unknown). Nil when its bytes are not all here.
    private func element(at offset: Int) -> (id: UInt32, headerLength: Int, size: Int?)? {
        let i = offset - self.base
        guard i >= 0, i < self.buffer.count else { return nil }
        let first = self.buffer[i]
        let idLength = first.leadingZeroBitCount + 1
        guard idLength <= 4 else { return (0, 1, nil) }  // not EBML: unknown size ends the parse
        guard i + idLength < self.buffer.count else { return nil }
        var id: UInt32 = 0
        for b in self.buffer[i..<(i + idLength)] { id = id << 8 | UInt32(b) }
        let sizeFirst = self.buffer[i + idLength]
        let sizeLength = sizeFirst.leadingZeroBitCount + 1
        guard sizeLength <= 8 else { return (id, idLength + 1, nil) }
        guard i + idLength + sizeLength <= self.buffer.count else { return nil }
        var size = UInt64(sizeFirst & (0xFF >> UInt8(sizeLength)))
        var allOnes = size == UInt64(0xFF >> UInt8(sizeLength))
        for b in self.buffer[(i + idLength + 1)..<(i + idLength + sizeLength)] {
            size = size << 8 | UInt64(b)
            allOnes = allOnes && b == 0xFF
        }
        return (id, idLength + sizeLength, allOnes || size > UInt64(Int.max / 2) ? nil : Int(size))
    }
}
