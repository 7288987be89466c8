#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Crypto
import Foundation
import Live
import PeerBase
import PeerKit
import Synchronization

struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Publish a live stream, or play one: its viewers relay it to each other.",
        discussion: """
            A live stream is any bytes (WebM or MPEG-TS from ffmpeg, audio, a sensor's readings) cut into signed \
            chunks of about 200 ms. Viewers find each other through the DHT, check every chunk against the \
            publisher's key, and pass on what they have, so the publisher uploads little more than one copy.

              ffmpeg -re -i talk.mp4 -c:v libvpx -c:a libopus -f webm - | peer live publish talk
              peer live play 'magnet:?xs=urn:btpk:…&x.live=1' | mpv -
            """,
        subcommands: [Publish.self, Play.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a stream read from standard input (or a file); prints its link.",
            discussion: """
                The link is the key's and the name's: publishing the same name with the same key again gives the \
                same link. Status goes to standard error every few seconds (JSON lines with --json).
                """)

        @Argument(help: "The stream's name (part of its link).") var name: String
        @Option(help: ArgumentHelp("Read the stream from FILE (- is standard input).", valueName: "FILE"))
        var input = "-"
        @Option(help: ArgumentHelp(
            "The key that signs the chunks: a file of 64 hex digits (an ed25519 seed), made if missing. Default: "
                + "the node's key, STATE/node-key.", valueName: "FILE"))
        var key: String?
        @Option(name: .customLong("chunk-ms"), help: "Cut a chunk this often, in milliseconds (50 to 1000).")
        var chunkMilliseconds = 200
        @Option(help: ArgumentHelp(
            "Read the input at most RATE bytes per second (a file played at its bitrate, e.g. 125k for 1 Mbit/s); "
                + "default: as fast as it comes (a pipe from ffmpeg -re paces itself).", valueName: "RATE"))
        var rate: ByteSize?
        @Option(name: .customLong("status-every"), help: "Seconds between status lines (0: none).")
        var statusEvery = 2.0
        @OptionGroup var network: NetworkOptions

        func validate() throws {
            try LiveNode.validate(self.network)
            guard (50...1000).contains(self.chunkMilliseconds) else { throw ValidationError("--chunk-ms must be 50 to 1000") }
            guard !self.name.isEmpty, self.name.utf8.count <= 64 else {
                throw ValidationError("the stream's name must be 1 to 64 bytes")
            }
        }

        func run() async throws {
            let keyPath = self.key ?? stateDirectory(self.network.state) + "/" + NodeKey.fileName
            let signingKey: Curve25519.Signing.PrivateKey
            do {
                try? FileManager.default.createDirectory(atPath: (keyPath as NSString).deletingLastPathComponent,
                    withIntermediateDirectories: true)
                signingKey = try NodeKey.loadOrCreate(keyPath)
            } catch {
                Terminal.error("live publish", "\(error)")
                throw ExitCode(1)
            }
            let link: LiveLink
            do { link = try LiveLink(publicKey: Array(signingKey.publicKey.rawRepresentation), name: self.name) } catch {
                Terminal.error("live publish", "\(error)")
                throw ExitCode(1)
            }
            let fd: Int32 = self.input == "-" ? 0 : open(self.input, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                Terminal.error("live publish", "cannot open \(self.input): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            let live = try await LiveNode.start(link, key: signingKey, network: self.network, command: "live publish")
            FileHandle.standardOutput.write(Data("\(link)\n".utf8))
            let reader = InputReader(fd: fd, rate: self.rate?.bytes)
            let end = LiveNode.Ending()
            let token = SignalWatcher.shared.add { end.finish("interrupted") }
            let cutting = Task {
                // WebM is cut at its clusters, after a header chunk for viewers who join late (LiveCutter).
                var cutter = LiveCutter()
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(self.chunkMilliseconds))
                    let (bytes, eof, failure) = reader.take()
                    cutter.append(bytes)
                    for (payload, kind) in cutter.cut() { _ = try? await live.stream.publish(payload, kind: kind).get() }
                    if let failure {
                        end.finish("cannot read \(self.input): \(failure)")
                        return
                    }
                    if eof {
                        // Viewers a little behind still ask for the last chunks.
                        try? await Task.sleep(for: .seconds(3))
                        end.finish("the input ended")
                        return
                    }
                }
            }
            let reason = await live.run(until: end, statusEvery: self.statusEvery, json: self.network.json)
            cutting.cancel()
            SignalWatcher.shared.remove(token)
            reader.stop()
            await live.stop(reason: reason, json: self.network.json)
            if reason.hasPrefix("cannot") { throw ExitCode(1) }
        }
    }

    struct Play: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Play a live stream: write it to standard output (or a file) and relay it to other viewers.",
            discussion: """
                Status goes to standard error every few seconds: chunks played and skipped, the latency from the \
                publisher cutting a chunk to its playing here, neighbours, bytes uploaded (JSON lines with --json). \
                It plays until interrupted or the reader of its output goes away.
                """)

        @Argument(help: "The stream's link (magnet:?xs=urn:btpk:…&x.live=1).") var link: String
        @Option(name: .shortAndLong, help: ArgumentHelp("Write the stream to FILE (- is standard output).",
            valueName: "FILE"))
        var output: String?
        @Option(name: .customLong("status-every"), help: "Seconds between status lines (0: none).")
        var statusEvery = 2.0
        @OptionGroup var network: NetworkOptions

        func validate() throws { try LiveNode.validate(self.network) }

        func run() async throws {
            let link: LiveLink
            do { link = try LiveLink(parsing: self.link) } catch {
                Terminal.error("live play", "\(error)")
                throw ExitCode(1)
            }
            let fd: Int32
            switch self.output {
            case nil where isatty(1) != 0:
                Terminal.error("live play", "not writing a stream to a terminal: pipe it (| mpv -) or give -o FILE")
                throw ExitCode(1)
            case nil, "-": fd = 1
            case let path?:
                fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    Terminal.error("live play", "cannot open \(path): \(String(cString: strerror(errno)))")
                    throw ExitCode(1)
                }
            }
            signal(SIGPIPE, SIG_IGN)
            let end = LiveNode.Ending()
            let writer = OutputWriter(fd: fd) { end.finish("the output closed") }
            let live = try await LiveNode.start(link, key: nil, network: self.network, command: "live play") {
                $0.onPlay = { chunk in writer.enqueue(chunk.payload) }
            }
            let token = SignalWatcher.shared.add { end.finish("interrupted") }
            let reason = await live.run(until: end, statusEvery: self.statusEvery, json: self.network.json)
            SignalWatcher.shared.remove(token)
            await live.stop(reason: reason, json: self.network.json)
        }
    }
}

/// A node that holds one live stream, for `peer live publish` and `peer live play`.
struct LiveNode {
    let node: PeerNode
    let stream: LiveStream
    let dht: DHTService?
    let network: NetworkOptions
    let command: String

    /// Why a command stops: the first reason given wins.
    final class Ending: Sendable {
        private let state = Mutex<(reason: String?, waiter: CheckedContinuation<String, Never>?)>((nil, nil))

        func finish(_ reason: String) {
            let waiter: CheckedContinuation<String, Never>? = self.state.withLock { s in
                guard s.reason == nil else { return nil }
                s.reason = reason
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: reason)
        }

        func wait() async -> String {
            await withCheckedContinuation { c in
                let ready: String? = self.state.withLock { s in
                    if s.reason == nil { s.waiter = c }
                    return s.reason
                }
                if let ready { c.resume(returning: ready) }
            }
        }
    }

    /// The network options a live stream does not use are refused rather than ignored.
    static func validate(_ network: NetworkOptions) throws {
        guard network.trackers.isEmpty else {
            throw ValidationError("--tracker: a live stream's viewers are found through the DHT and --peer, not trackers")
        }
        guard network.maxDown == nil else {
            throw ValidationError("--max-down: a viewer takes the stream at its own rate (--max-up caps what it relays)")
        }
    }

    static func start(_ link: LiveLink, key: Curve25519.Signing.PrivateKey?, network: NetworkOptions, command: String,
        setUp: (LiveStream) -> Void = { _ in }) async throws -> LiveNode
    {
        let node = PeerNode(bindHost: network.bind, encryption: network.wire.encryption,
            transports: network.wire.transports.order)
        let port = try await listen(node, network: network, command: command)
        let dht = await startDHT(node, network: network, port: port, command: command)
        var configuration = LiveStream.Configuration()
        configuration.maxUploadRate = network.maxUp?.bytes
        if key != nil { configuration.maxNeighbours = 64 }
        let stream = node.startLive(link, key: key, listenPort: port, configuration: configuration)
        stream.onLog = { line in Terminal.stderr("\(command): \(line)\n") }
        setUp(stream)
        for peer in network.peers { node.dialLive(stream, peer) }
        Terminal.stderr("\(command): \(link.name) on port \(port)\(dht == nil ? " (no DHT: --peer only)" : "")\n")
        return LiveNode(node: node, stream: stream, dht: dht, network: network, command: command)
    }

    /// Prints a status line every `statusEvery` seconds until `end` says why to stop; returns that.
    func run(until end: Ending, statusEvery: Double, json: Bool) async -> String {
        let status = Task {
            guard statusEvery > 0 else { return }
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(statusEvery * 1000)))
                if Task.isCancelled { break }
                if let stats = try? await self.stream.currentStats.get() { self.report(stats, json: json) }
            }
        }
        let reason = await end.wait()
        status.cancel()
        return reason
    }

    func stop(reason: String, json: Bool) async {
        if let stats = try? await self.stream.currentStats.get() { self.report(stats, json: json) }
        Terminal.stderr("\(self.command): stopped: \(reason)\n")
        await self.node.stopLive(self.stream)
        await saveDHTNodes(self.dht, network: self.network)
        await self.node.shutdown()
    }

    private func report(_ s: LiveStats, json: Bool) {
        if json, let line = try? Self.line(s) {
            Terminal.stderr(line + "\n")
            return
        }
        let mb = { (n: Int) in String(format: "%.1f MB", Double(n) / 1e6) }
        if s.source {
            let ratio = s.publishedBytes > 0 ? String(format: " (%.2fx)", Double(s.uploadedBytes) / Double(s.publishedBytes)) : ""
            Terminal.stderr("\(self.command): \(s.published) chunks published (\(mb(s.publishedBytes))), "
                + "\(mb(s.uploadedBytes)) uploaded\(ratio), \(s.neighbours) neighbours\n")
        } else {
            let latency = s.latency.map { String(format: ", latency %.2f s median, %.2f s p95", $0.median / 1000, $0.p95 / 1000) } ?? ""
            Terminal.stderr("\(self.command): \(s.played) chunks played, \(s.skipped) skipped\(latency), "
                + "\(s.neighbours) neighbours, \(mb(s.uploadedBytes)) uploaded\n")
        }
    }

    private static func line(_ s: LiveStats) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(s), as: UTF8.self)
    }
}

/// Reads a stream's input on its own thread (a blocking read), at most `rate` bytes a second; `take` hands over
/// what came since the last call.
final class InputReader: Sendable {
    private let state = Mutex<(buffer: [UInt8], eof: Bool, failure: String?, stopped: Bool)>(([], false, nil, false))
    /// Reading pauses while this much waits to be cut (a file read with no --rate).
    private static let maxBuffered = 4 << 20

    init(fd: Int32, rate: Int?) {
        let thread = Thread { [self] in self.pump(fd, rate: rate) }
        thread.name = "peer-live-input"
        thread.start()
    }

    private func pump(_ fd: Int32, rate: Int?) {
        let size = rate.map { min(64 << 10, max(512, $0 / 20)) } ?? 64 << 10
        var scratch = [UInt8](repeating: 0, count: size)
        let started = ContinuousClock.now
        var total = 0
        while true {
            let (stopped, full) = self.state.withLock { ($0.stopped, $0.buffer.count >= Self.maxBuffered) }
            if stopped { return }
            if full {
                usleep(10_000)
                continue
            }
            let n = scratch.withUnsafeMutableBytes { read(fd, $0.baseAddress, size) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let failure = n < 0 ? String(cString: strerror(errno)) : nil
                self.state.withLock {
                    $0.eof = true
                    $0.failure = failure
                }
                return
            }
            self.state.withLock { $0.buffer += scratch[..<n] }
            total += n
            if let rate {
                let due = Double(total) / Double(rate)
                let elapsed = (ContinuousClock.now - started).seconds
                if due > elapsed { usleep(UInt32(min(1, due - elapsed) * 1_000_000)) }
            }
        }
    }

    func take() -> (bytes: [UInt8], eof: Bool, failure: String?) {
        self.state.withLock { s in
            defer { s.buffer = [] }
            return (s.buffer, s.eof, s.failure)
        }
    }

    func stop() { self.state.withLock { $0.stopped = true } }
}

/// Writes played chunks to the output on its own queue, so a slow reader never holds the node's event loop;
/// beyond 32 MiB waiting, chunks are left out. Calls `closed` once if the reader goes away.
final class OutputWriter: Sendable {
    private let fd: Int32
    private let queue = DispatchQueue(label: "peer.live.output")
    private let pending = Mutex(0)
    private let closed: @Sendable () -> Void

    init(fd: Int32, closed: @escaping @Sendable () -> Void) {
        self.fd = fd
        self.closed = closed
    }

    func enqueue(_ bytes: [UInt8]) {
        let admitted = self.pending.withLock { p in
            guard p < 32 << 20 else { return false }
            p += bytes.count
            return true
        }
        guard admitted else { return }
        self.queue.async {
            defer { self.pending.withLock { $0 -= bytes.count } }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { write(self.fd, $0.baseAddress! + offset, bytes.count - offset) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    self.closed()
                    return
                }
                offset += n
            }
        }
    }
}
