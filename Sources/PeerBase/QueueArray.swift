extension Array {
    /// Takes the next element of an array used as a FIFO queue with a read index (`head`), the sans-I/O cores'
    /// transmit and event queues: amortised O(1), and the storage is reused once the queue drains.
    public mutating func popFront(head: inout Int) -> Element? {
        guard head < self.count else { return nil }
        let item = self[head]
        head += 1
        if head == self.count {
            self.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }
}
