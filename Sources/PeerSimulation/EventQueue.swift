import PeerBase

/// A binary min-heap of events ordered by (time, sequence number): events at the same instant come out in
/// the order they were scheduled, so a run never depends on heap layout or hashing.
struct EventQueue<Payload> {
    struct Entry {
        var at: Instant
        var sequence: UInt64
        var payload: Payload

        func precedes(_ other: Entry) -> Bool {
            (self.at, self.sequence) < (other.at, other.sequence)
        }
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { self.heap.isEmpty }
    var count: Int { self.heap.count }
    var nextTime: Instant? { self.heap.first?.at }

    mutating func schedule(_ payload: Payload, at: Instant) {
        self.heap.append(Entry(at: at, sequence: self.nextSequence, payload: payload))
        self.nextSequence += 1
        var i = self.heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard self.heap[i].precedes(self.heap[parent]) else { break }
            self.heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !self.heap.isEmpty else { return nil }
        let top = self.heap[0]
        let last = self.heap.removeLast()
        if !self.heap.isEmpty {
            self.heap[0] = last
            var i = 0
            let n = self.heap.count
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < n, self.heap[l].precedes(self.heap[m]) { m = l }
                if r < n, self.heap[r].precedes(self.heap[m]) { m = r }
                guard m != i else { break }
                self.heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
