import DequeModule

/// Bytes written and not yet sent, kept as the chunks they were written in: taking a packet's worth copies that
/// much once, instead of moving bytes one by one.
struct ByteQueue: Sendable {
    private var chunks: Deque<[UInt8]> = []
    /// Bytes of the first chunk already taken.
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { self.count == 0 }

    mutating func append(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        self.chunks.append(bytes)
        self.count += bytes.count
    }

    /// Up to `n` bytes from the front.
    mutating func take(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(n, self.count))
        while out.count < n, let first = self.chunks.first {
            let part = min(n - out.count, first.count - self.head)
            out.append(contentsOf: first[self.head..<self.head + part])
            self.head += part
            if self.head == first.count {
                self.chunks.removeFirst()
                self.head = 0
            }
        }
        self.count -= out.count
        return out
    }

    mutating func removeAll() {
        self.chunks.removeAll()
        self.head = 0
        self.count = 0
    }
}
