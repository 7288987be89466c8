/// How many block requests to keep outstanding at a peer: about `queueTime` of its measured rate, within
/// `bounds`, never more than the peer's own `reqq`, and one while it is snubbed.
public struct PipelineDepth: Sendable {
    public var bounds: ClosedRange<Int>
    public var queueTime: Duration

    public init(bounds: ClosedRange<Int>, queueTime: Duration) {
        self.bounds = bounds
        self.queueTime = queueTime
    }

    /// - Parameters:
    ///   - rate: bytes per second received from the peer, smoothed.
    ///   - requestQueue: the `reqq` of its extended handshake, if it sent one.
    public func depth(rate: Double, snubbed: Bool, requestQueue: Int?) -> Int {
        if snubbed { return 1 }
        let seconds = Double(self.queueTime.components.seconds)
            + Double(self.queueTime.components.attoseconds) / 1e18
        var depth = min(self.bounds.upperBound, max(self.bounds.lowerBound, Int(rate * seconds / 16384)))
        if let reqq = requestQueue, reqq > 0 { depth = min(depth, reqq) }
        return depth
    }

    /// Requests are topped up in batches of an eighth of the pipeline, not a block at a time: one pick and
    /// one write per batch instead of per block received.
    public func shouldTopUp(depth: Int, outstanding: Int) -> Bool {
        let free = depth - outstanding
        return free > 0 && free >= max(1, depth / 8)
    }
}
