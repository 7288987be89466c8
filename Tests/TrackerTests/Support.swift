import Bencode
import PeerBase
import Testing
import Tracker

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// An instant `seconds` after the epoch.
func at(_ seconds: Double) -> Instant { Instant(offset: .milliseconds(Int64((seconds * 1000).rounded()))) }

/// A small seeded generator (xorshift64*), independent of the one inside the target.
struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed == 0 ? 0x2545_F491_4F6C_DD1D : seed }
    mutating func next() -> UInt64 {
        self.state ^= self.state >> 12
        self.state ^= self.state << 25
        self.state ^= self.state >> 27
        return self.state &* 0x2545_F491_4F6C_DD1D
    }
}

/// 20 bytes counting up from `start`.
func hash20(_ start: UInt8) -> [UInt8] { (0..<20).map { start &+ UInt8($0) } }

/// A typical announce request with distinctive field values.
func sampleRequest(event: AnnounceRequest.Event = .started, hash: [UInt8] = hash20(0xa0)) -> AnnounceRequest {
    AnnounceRequest(
        infoHash: hash, peerID: bytes("-PE0001-abcdefghijkl"), port: 6881,
        uploaded: 0x0A0B, downloaded: 1000, left: 0x1_0000_0005, event: event, numWant: nil, key: 0xDEAD_BEEF)
}

/// Big-endian bytes of an integer (written out independently of the target's helpers).
func be<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    let n = MemoryLayout<T>.size
    return (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * (n - 1 - $0))) }
}

/// Reads a big-endian unsigned integer of `size` bytes at `offset`.
func readBE(_ b: [UInt8], _ offset: Int, _ size: Int) -> UInt64 {
    b[offset..<offset + size].reduce(0) { $0 << 8 | UInt64($1) }
}

/// Hand-built UDP tracker responses (BEP 15 layouts).
enum UDP {
    static func connect(tid: UInt32, cid: UInt64) -> [UInt8] { be(UInt32(0)) + be(tid) + be(cid) }

    static func announce(tid: UInt32, interval: Int32, leechers: Int32, seeders: Int32, peers: [[UInt8]]) -> [UInt8] {
        be(UInt32(1)) + be(tid) + be(interval) + be(leechers) + be(seeders) + peers.flatMap { $0 }
    }

    static func scrape(tid: UInt32, entries: [(seeders: Int32, completed: Int32, leechers: Int32)]) -> [UInt8] {
        be(UInt32(2)) + be(tid) + entries.flatMap { be($0.seeders) + be($0.completed) + be($0.leechers) }
    }

    static func error(tid: UInt32, _ message: String) -> [UInt8] { be(UInt32(3)) + be(tid) + bytes(message) }
}

/// Encodes a bencode dictionary literal as an HTTP body.
func body(_ value: BencodeValue) -> [UInt8] { BencodeEncoder.encode(value) }

/// The error thrown by `body`, or nil.
func thrown<T>(_ body: () throws(TrackerError) -> T) -> TrackerError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
