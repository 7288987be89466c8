// Issue 17: the live streams a daemon plays and relays, and their HTTP listeners.
import DequeModule
import Foundation
import Live
import PeerBase
import Synchronization

/// Why a live stream could not be added or found.
public enum LiveHubError: Error, Sendable, CustomStringConvertible {
    case badLink(String)
    case notFound(String)
    case tooMany(Int)

    public var description: String {
        switch self {
        case .badLink(let why): why
        case .notFound(let id): "no live stream \(id)"
        case .tooMany(let n): "this node plays \(n) live streams already"
        }
    }
}

/// The live streams a node plays and relays (the daemon's `/api/live`), each with any number of listeners: an HTTP
/// response that carries the stream as one continuous body. A listener that joins gets the stream's header (when
/// it has one) and then the stream from its latest start (a WebM cluster), so a player shows a picture at once and
/// stays a few seconds behind the viewer at most. Thread-safe.
public final class LiveHub: Sendable {
    public static let maxStreams = 16
    /// Played chunks kept for listeners who join (a few seconds: enough to hold a start).
    static let recentChunks = 40

    private let node: PeerNode
    private let streams = Mutex<[String: Entry]>([:])

    private final class Entry: Sendable {
        let stream: LiveStream
        let fanout: Fanout
        init(stream: LiveStream, fanout: Fanout) {
            self.stream = stream
            self.fanout = fanout
        }
    }

    public init(node: PeerNode) { self.node = node }

    /// Plays and relays the stream `text` names (its id when it is here already), dialling `peers` ("host:port")
    /// besides those the DHT names.
    public func add(_ text: String, listenPort: Int, peers: [String] = []) async throws(LiveHubError) -> LiveStats {
        let link: LiveLink
        do { link = try LiveLink(parsing: text) } catch { throw .badLink("\(error)") }
        let id = Hex.encode(link.streamID)
        let existing: Entry? = try self.streams.withLock { (all) throws(LiveHubError) -> Entry? in
            if let e = all[id] { return e }
            guard all.count < Self.maxStreams else { throw .tooMany(all.count) }
            return nil
        }
        for peer in peers where PeerNode.splitHostPort(peer) == nil { throw .badLink("peers: \(peer) is not HOST:PORT") }
        if let existing {
            for peer in peers { self.node.dialLive(existing.stream, peer) }
            return (try? await existing.stream.currentStats.get()) ?? Self.empty(link)
        }
        let fanout = Fanout()
        let stream = self.node.startLive(link, listenPort: listenPort)
        stream.onPlay = { chunk in fanout.played(chunk) }
        self.streams.withLock { $0[id] = Entry(stream: stream, fanout: fanout) }
        for peer in peers { self.node.dialLive(stream, peer) }
        return (try? await stream.currentStats.get()) ?? Self.empty(link)
    }

    private static func empty(_ link: LiveLink) -> LiveStats {
        LiveStats(stream: Hex.encode(link.streamID), name: link.name, source: false, neighbours: 0, published: 0,
            publishedBytes: 0, played: 0, skipped: 0, duplicates: 0, receivedBytes: 0, uploadedBytes: 0, dropped: 0)
    }

    public func list() async -> [LiveStats] {
        var out: [LiveStats] = []
        for e in self.streams.withLock({ Array($0.values) }) {
            if let s = try? await e.stream.currentStats.get() { out.append(s) }
        }
        return out.sorted { $0.name < $1.name }
    }

    public func stats(_ id: String) async throws(LiveHubError) -> LiveStats {
        guard let e = self.streams.withLock({ $0[id.lowercased()] }), let s = try? await e.stream.currentStats.get()
        else { throw .notFound(id) }
        return s
    }

    public func remove(_ id: String) async throws(LiveHubError) {
        guard let e = self.streams.withLock({ $0.removeValue(forKey: id.lowercased()) }) else { throw .notFound(id) }
        e.fanout.finish()
        await self.node.stopLive(e.stream)
    }

    /// The stream's bytes for one listener.
    public func listen(_ id: String) throws(LiveHubError) -> AsyncStream<[UInt8]> {
        guard let e = self.streams.withLock({ $0[id.lowercased()] }) else { throw .notFound(id) }
        return e.fanout.listen()
    }

    /// The first bytes a listener would get (the header, else the newest chunk played), nil before any played.
    public func firstBytes(_ id: String) throws(LiveHubError) -> [UInt8]? {
        guard let e = self.streams.withLock({ $0[id.lowercased()] }) else { throw .notFound(id) }
        return e.fanout.firstBytes
    }

    /// Played chunks to listeners.
    final class Fanout: Sendable {
        /// Where a listener stands: nothing sent yet, the header sent (a start awaited), or following the stream.
        private enum Phase { case fresh, header, live }

        private struct State {
            var header: [UInt8]?
            var recent: Deque<LiveChunk> = []
            var listeners: [UUID: (continuation: AsyncStream<[UInt8]>.Continuation, phase: Phase)] = [:]
            var finished = false
        }

        private let state = Mutex(State())

        func played(_ chunk: LiveChunk) {
            let sends: [(AsyncStream<[UInt8]>.Continuation, [[UInt8]])] = self.state.withLock { s in
                if chunk.kind == .header { s.header = chunk.payload }
                s.recent.append(chunk)
                if s.recent.count > LiveHub.recentChunks { s.recent.removeFirst() }
                var out: [(AsyncStream<[UInt8]>.Continuation, [[UInt8]])] = []
                for (id, l) in s.listeners {
                    switch (l.phase, chunk.kind) {
                    case (.live, .header): break  // a new header mid-stream: players cannot take it
                    case (.live, _): out.append((l.continuation, [chunk.payload]))
                    case (_, .header):
                        s.listeners[id]!.phase = .header
                        out.append((l.continuation, [chunk.payload]))
                    case (.header, .start):
                        s.listeners[id]!.phase = .live
                        out.append((l.continuation, [chunk.payload]))
                    case (.fresh, .start) where s.header != nil:
                        s.listeners[id]!.phase = .live
                        out.append((l.continuation, [s.header!, chunk.payload]))
                    case (.fresh, .media) where s.header == nil && !s.recent.contains(where: { $0.kind != .media }):
                        // A stream without a header: any chunk is a start.
                        s.listeners[id]!.phase = .live
                        out.append((l.continuation, [chunk.payload]))
                    default: break  // mid-cluster: wait for a start
                    }
                }
                return out
            }
            for (c, payloads) in sends { for p in payloads { c.yield(p) } }
        }

        var firstBytes: [UInt8]? { self.state.withLock { $0.header ?? $0.recent.last?.payload } }

        func listen() -> AsyncStream<[UInt8]> {
            // 500 chunks (100 s) may wait for a slow listener; beyond that the oldest go.
            let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingOldest(500))
            let id = UUID()
            self.state.withLock { s in
                guard !s.finished else { return continuation.finish() }
                var phase = Phase.fresh
                if let header = s.header {
                    continuation.yield(header)
                    phase = .header
                    if let start = s.recent.lastIndex(where: { $0.kind == .start }) {
                        for c in s.recent[start...] where c.kind != .header { continuation.yield(c.payload) }
                        phase = .live
                    }
                } else if !s.recent.isEmpty && !s.recent.contains(where: { $0.kind != .media }) {
                    for c in s.recent.suffix(5) { continuation.yield(c.payload) }
                    phase = .live
                }
                s.listeners[id] = (continuation, phase)
            }
            continuation.onTermination = { _ in _ = self.state.withLock { $0.listeners.removeValue(forKey: id) } }
            return stream
        }

        func finish() {
            let all = self.state.withLock { s in
                s.finished = true
                defer { s.listeners = [:] }
                return s.listeners.values.map(\.continuation)
            }
            for c in all { c.finish() }
        }
    }
}
