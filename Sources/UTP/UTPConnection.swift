// BEP 29: one uTP connection (a reliable, ordered byte stream over datagrams), sans I/O.
import DequeModule
import PeerBase

/// One uTP connection, sans I/O: it opens no socket and reads no clock.
///
/// A driver (or `UTPEndpoint`, which holds many) feeds it:
/// - `receive(_:at:)` with every packet of this connection;
/// - `handle(_:at:)` with the application's writes, reads done (`consumed`) and close;
/// - `handleTimeout(at:)` once `nextTimeout` has passed;
///
/// and after each drains `pollTransmit()` (datagrams for the other side) and `pollEvent()` until both return nil.
///
/// What it does: the SYN/STATE handshake (the SYN-ACK's `seq_nr` is the other side's *next* number), in-order
/// delivery from a bounded reorder buffer, an ACK after each batch of packets read (with a selective ACK when
/// there are holes), retransmission on three duplicate or selective ACKs and on timeout (at least
/// `minTimeout`, doubling), LEDBAT for the window, the other side's receive window respected (a zero window is
/// probed one packet per timeout) and ours enforced (a packet beyond it is dropped), FIN and RESET.
public struct UTPConnection: Sendable {
    public struct Configuration: Sendable {
        /// The datagram size packets start at (header, room for a selective ACK, payload), as libtorrent's.
        public var packetSize = 1_400
        /// Path MTU probing: packets grow towards the largest datagram the path takes (`Command.pathLimit`, from
        /// the driver) while probes get through, until what got through is within this many bytes of what did not.
        public var probeStep = 64
        /// Bytes taken from the other side beyond what the application has consumed; the window we advertise.
        public var receiveBuffer = 1 << 20
        /// Bytes written and not yet sent above which the connection is not writable.
        public var sendBuffer = 1 << 20
        public var initialTimeout: Duration = .seconds(1)
        /// The floor of the retransmission timeout (BEP 29: 500 ms).
        public var minTimeout: Duration = .milliseconds(500)
        /// The SYN's timeout, doubling with each resend (libtorrent: 3 s), and how often it is resent.
        public var connectTimeout: Duration = .seconds(3)
        public var synResends = 2
        public var finResends = 2
        /// Timeouts in a row, with data in flight, after which the other side is taken for gone.
        public var maxTimeouts = 6
        /// With something to send, this long without a packet from the other side and it is taken for gone too,
        /// however far the timeout has backed off (a zero window probed every minute would take seven).
        public var maxSilence: Duration = .seconds(60)
        /// Packets ahead of the next expected one that are kept for reordering; later ones are dropped.
        public var maxReorder = 1_024
        public var ledbat = LEDBAT.Configuration()
        public init() {}
    }

    public enum State: Sendable, Equatable { case synSent, connected, finSent, closed }

    public enum CloseReason: Sendable, Equatable {
        /// The other side sent FIN and everything before it has been delivered.
        case finished
        /// Ours was closed (`close`), and the FIN acknowledged or given up on.
        case local
        /// The other side sent RESET.
        case reset
        /// The SYN went unanswered, or data in flight did.
        case timedOut
    }

    public enum Event: Sendable, Equatable {
        /// The handshake is done (an outgoing connection's STATE came, or an incoming SYN was taken).
        case connected
        /// Bytes in order; call `handle(.consumed(n))` once the application has taken them, which reopens the window.
        case data([UInt8])
        /// The send buffer has room again after `isWritable` was false.
        case writable
        /// A path MTU probe got through: packets are this many bytes now.
        case packetSize(Int)
        case closed(CloseReason)
    }

    public enum Command: Sendable, Equatable {
        /// Bytes to send, after what was written before.
        case write([UInt8])
        /// The application took this many delivered bytes.
        case consumed(Int)
        /// The largest datagram the path to the other side takes as far as the driver knows (its route's MTU less
        /// the IP and UDP headers): packets shrink to it at once, and grow towards it by probing.
        case pathLimit(Int)
        /// Send what is buffered, then FIN.
        case close
    }

    private struct Outgoing: Sendable {
        var type: UTPPacketType
        var seq: UInt16
        var payload: [UInt8]
        var sentAt: Instant?
        var transmissions = 0
        var sacked = false
        var needsResend = false
        /// A path MTU probe's size: on its first sending it is padded to this many bytes (and resent without, so a
        /// lost probe costs no more than a lost packet).
        var probeSize = 0
        /// Sent once, as a path MTU probe: its loss says the probe was too big, not that the path is congested.
        var isProbe: Bool { self.probeSize > 0 && self.transmissions == 1 }
        var size: Int { self.payload.count + UTPLimits.headerLength }
    }

    public let configuration: Configuration
    /// The id the other side sends with, and the one we send with.
    public let receiveID: UInt16
    public let sendID: UInt16
    public private(set) var state: State
    public private(set) var ledbat: LEDBAT
    /// The smoothed round trip and the retransmission timeout now.
    public private(set) var rtt: Duration?
    public private(set) var timeout: Duration
    /// Path MTU probing: datagrams of `packetSize` bytes get through; `probeCeiling` is the smallest size that did
    /// not (less one), or the path's limit; `probe` is the padded packet in flight that tries a size between.
    public private(set) var packetSize: Int
    private var probeCeiling: Int
    private var probe: (seq: UInt16, size: Int)?

    private var seqNr: UInt16
    private var ackNr: UInt16 = 0
    private var rttVar: Duration = .zero
    private var inFlight: Deque<Outgoing> = []
    private var inFlightBytes = 0
    /// In-flight packets marked for resending (so that a flush with none looks at no packet).
    private var resends = 0
    private var sendBuffer = ByteQueue()
    private var reorder: [UInt16: [UInt8]] = [:]
    private var reorderBytes = 0
    private var unread = 0
    private var eof: UInt16?
    private var remoteFinished = false
    private var peerWindow: UInt32 = 1 << 20
    private var replyMicro: UInt32 = 0
    private var timeoutAt: Instant?
    private var timeouts = 0
    private var duplicateAcks = 0
    private var lastAck: UInt16 = 0
    /// After a loss the window is not halved again until a packet sent after the cut is acknowledged.
    private var lossBoundary: UInt16?
    private var ackNeeded = false
    private var closeRequested = false
    private var finSeq: UInt16?
    private var blocked = false
    /// An accepted connection that has heard nothing since the SYN (a spoofed SYN's) is dropped at its timeout.
    private var heard = true
    /// When the last packet came from the other side (the start, before any).
    private var heardAt: Instant
    private var transmits: Deque<[UInt8]> = []
    private var events: Deque<Event> = []

    /// Counters for tests and the API: packets sent again, and packets from the other side dropped (beyond our
    /// window or the reorder limit).
    public private(set) var retransmissions = 0
    public private(set) var dropped = 0

    /// An outgoing connection: sends SYN with `receiveID` at once.
    /// - Parameter seq: the first sequence number (random, from the caller's generator).
    public init(connectingWith receiveID: UInt16, seq: UInt16, configuration: Configuration = Configuration(),
        at now: Instant)
    {
        self.configuration = configuration
        self.receiveID = receiveID
        self.sendID = receiveID &+ 1
        self.state = .synSent
        self.seqNr = seq
        self.ledbat = LEDBAT(configuration: configuration.ledbat)
        self.timeout = configuration.initialTimeout
        (self.packetSize, self.probeCeiling) = (configuration.packetSize, configuration.packetSize)
        self.inFlight.append(Outgoing(type: .syn, seq: seq, payload: []))
        self.inFlightBytes = UTPLimits.headerLength
        self.seqNr = seq &+ 1
        self.lastAck = seq &- 1
        self.heardAt = now
        self.transmit(0, at: now)
        self.timeoutAt = now + configuration.connectTimeout
    }

    /// An incoming connection from its SYN: answers with STATE (the SYN-ACK) at once.
    /// - Parameter seq: our first sequence number (random, from the caller's generator).
    public init(accepting syn: UTPPacket, seq: UInt16, configuration: Configuration = Configuration(), at now: Instant) {
        self.configuration = configuration
        self.receiveID = syn.connectionID &+ 1
        self.sendID = syn.connectionID
        self.state = .connected
        self.seqNr = seq
        self.lastAck = seq &- 1
        self.ackNr = syn.seq
        self.ledbat = LEDBAT(configuration: configuration.ledbat)
        self.timeout = configuration.initialTimeout
        (self.packetSize, self.probeCeiling) = (configuration.packetSize, configuration.packetSize)
        self.peerWindow = syn.windowSize
        self.replyMicro = Self.micro(now) &- syn.timestamp
        self.events.append(.connected)
        self.ackNeeded = true
        self.heard = false
        self.heardAt = now
        self.flush(at: now)
        // Longer than the other side's first SYN resend, which must find this connection still here.
        self.timeoutAt = now + configuration.connectTimeout * 2
    }

    // MARK: outputs

    /// The next datagram for the other side; drain after every input.
    public mutating func pollTransmit() -> [UInt8]? { self.transmits.popFirst() }

    /// The next event for the application; drain after every input.
    public mutating func pollEvent() -> Event? { self.events.popFirst() }

    /// When `handleTimeout` is due; nil when nothing waits on the other side.
    public var nextTimeout: Instant? { self.state == .closed ? nil : self.timeoutAt }

    /// Whether a write now would be taken without going over the send buffer.
    public var isWritable: Bool { self.sendBuffer.count < self.configuration.sendBuffer }

    /// Payload bytes in a full packet: `packetSize` less the header and room for the longest selective ACK we send.
    public var payloadSize: Int { self.packetSize - UTPLimits.headerLength - 34 }

    /// Bytes sent and not yet acknowledged.
    public var bytesInFlight: Int { self.inFlightBytes }

    /// Where the connection stands, for logs and failing tests.
    public var summary: String {
        "\(self.state) seq \(self.seqNr) ack \(self.ackNr) lastAck \(self.lastAck) inFlight \(self.inFlight.count)/"
            + "\(self.inFlightBytes)B (first \(self.inFlight.first.map { "\($0.seq) x\($0.transmissions) sacked \($0.sacked)" } ?? "-")) "
            + "resends \(self.resends) toSend \(self.sendBuffer.count) unread \(self.unread) reorder \(self.reorder.count) "
            + "peerWindow \(self.peerWindow) window \(self.ledbat.window) timeout \(self.timeout) at \(self.timeoutAt.map { "\($0)" } ?? "-") "
            + "timeouts \(self.timeouts) retransmissions \(self.retransmissions) dropped \(self.dropped) "
            + "packet \(self.packetSize) ceiling \(self.probeCeiling)"
    }

    /// The receive window we advertise.
    public var receiveWindow: Int {
        max(0, self.configuration.receiveBuffer - self.unread - self.reorderBytes)
    }

    // MARK: inputs

    /// The application's command.
    public mutating func handle(_ command: Command, at now: Instant) {
        guard self.state != .closed else { return }
        switch command {
        case .write(let bytes):
            guard !self.closeRequested else { return }
            self.sendBuffer.append(bytes)
            if !self.isWritable { self.blocked = true }
        case .consumed(let n):
            let before = self.receiveWindow
            self.unread = max(0, self.unread - n)
            // The other side may be waiting on a closed window: tell it that it opened.
            if before < self.payloadSize && self.receiveWindow >= self.payloadSize { self.ackNeeded = true }
        case .pathLimit(let limit):
            // Below 576 bytes (the IPv4 minimum) a route's figure is not believed.
            let limit = max(limit, 576 - 28)
            self.probeCeiling = limit
            self.probe = nil
            if limit < self.packetSize {
                self.packetSize = limit
                self.events.append(.packetSize(limit))
            }
        case .close:
            if self.state == .synSent {
                self.close(.local)
                return
            }
            self.closeRequested = true
        }
        self.flush(at: now)
    }

    /// A packet of this connection (the endpoint matched its id and address).
    public mutating func receive(_ packet: UTPPacket, at now: Instant) {
        guard self.state != .closed else { return }
        self.replyMicro = Self.micro(now) &- packet.timestamp
        let wasClosed = self.peerWindow < UInt32(self.payloadSize)
        self.peerWindow = packet.windowSize
        // A window that reopens: the probe it dropped goes again now, not at the next timeout.
        if wasClosed && self.peerWindow >= UInt32(self.payloadSize),
            let oldest = self.inFlight.firstIndex(where: { !$0.sacked && $0.type == .data })
        {
            self.markResend(oldest)
        }
        switch packet.type {
        case .reset:
            self.close(.reset)
            return
        case .syn:
            // The other side resent its SYN: our STATE was lost. Answer again, never a second connection.
            if packet.seq == self.ackNr && self.sendID == packet.connectionID {
                self.ackNeeded = true
                if !self.heard { self.timeoutAt = now + self.configuration.connectTimeout * 2 }
            }
            self.flush(at: now)
            return
        case .state, .data, .fin:
            break
        }
        // Any packet shows the other side is there: timeouts count again from zero (BEP 29 "timeouts").
        self.timeouts = 0
        self.heardAt = now
        if !self.heard {
            self.heard = true
            if self.inFlight.isEmpty && self.sendBuffer.isEmpty { self.timeoutAt = nil }
        }
        if self.state == .synSent {
            // The SYN-ACK's seq_nr is the number its first data will carry.
            self.state = .connected
            self.ackNr = packet.seq &- 1
            self.events.append(.connected)
        }
        self.ledbat.sample(packet.timestampDifference, at: now)
        self.receiveAck(packet, at: now)
        guard self.state != .closed else { return }
        switch packet.type {
        case .data: self.receiveData(packet.seq, packet.payload)
        case .fin:
            if self.eof == nil { self.eof = packet.seq }
            self.receiveData(packet.seq, [])
        default: break
        }
        self.flush(at: now)
        if self.remoteFinished { self.close(.finished) }
    }

    /// Call once `nextTimeout` has passed (earlier calls do nothing).
    public mutating func handleTimeout(at now: Instant) {
        guard self.state != .closed, let due = self.timeoutAt, now >= due else { return }
        guard self.heard else { return self.close(.timedOut) }
        self.timeouts += 1
        switch self.state {
        case .synSent:
            guard self.timeouts <= self.configuration.synResends else { return self.close(.timedOut) }
            self.retransmit(0, at: now)
            self.timeoutAt = now + self.configuration.connectTimeout * (1 << self.timeouts)
            return
        case .finSent where self.timeouts > self.configuration.finResends:
            return self.close(.local)
        case .connected where self.timeouts > self.configuration.maxTimeouts,
            .finSent where self.timeouts > self.configuration.maxTimeouts:
            return self.close(.timedOut)
        case .connected where now - self.heardAt >= self.configuration.maxSilence,
            .finSent where now - self.heardAt >= self.configuration.maxSilence:
            return self.close(.timedOut)
        default:
            break
        }
        self.ledbat.timedOut()
        self.timeout = min(self.timeout * 2, .seconds(60))
        if self.inFlight.contains(where: { !$0.sacked }) {
            // Nothing came back for a whole timeout: take every packet not selectively acknowledged for lost (as
            // libtorrent does). Resending only the oldest left a burst of tail losses to one doubled timeout each:
            // 0.5 + 1 + 2 + 4 + 8 s for five of them on loopback.
            for i in self.inFlight.indices where !self.inFlight[i].sacked { self.markResend(i) }
        } else if self.inFlight.isEmpty && !self.sendBuffer.isEmpty {
            // A closed window: probe it with one packet.
            self.sendNewData(at: now, probe: true)
        }
        self.timeoutAt = self.inFlight.isEmpty && self.sendBuffer.isEmpty
            ? nil : min(now + self.timeout, self.heardAt + self.configuration.maxSilence)
        self.flush(at: now)
    }

    // MARK: receiving

    private mutating func receiveAck(_ packet: UTPPacket, at now: Instant) {
        let ack = packet.ack
        // An ACK of something never sent is ignored (it would empty the flight).
        guard !Seq.less(self.seqNr &- 1, ack) else { return }
        let flightBefore = self.inFlightBytes
        var acked = 0
        var progressed = false
        while let first = self.inFlight.first, !Seq.less(ack, first.seq) {
            if first.transmissions == 1, let sent = first.sentAt { self.sampleRTT(now - sent) }
            if first.seq == self.probe?.seq { self.probeAnswered(gotThrough: first.transmissions == 1) }
            if !first.sacked { acked += first.size }
            if first.needsResend { self.resends -= 1 }
            self.inFlightBytes -= first.sacked ? 0 : first.size
            if first.type == .fin, self.state == .finSent {
                self.inFlight.removeFirst()
                self.close(.local)
                return
            }
            self.inFlight.removeFirst()
            progressed = true
        }
        var lost = false
        if !packet.selectiveAck.isEmpty {
            var sackedAfter = 0
            for i in self.inFlight.indices.reversed() {
                if self.inFlight[i].sacked {
                    sackedAfter += 1
                } else if packet.selectivelyAcks(self.inFlight[i].seq) {
                    self.inFlight[i].sacked = true
                    if self.inFlight[i].seq == self.probe?.seq {
                        self.probeAnswered(gotThrough: self.inFlight[i].transmissions == 1)
                    }
                    if self.inFlight[i].transmissions == 1, let sent = self.inFlight[i].sentAt {
                        self.sampleRTT(now - sent)
                    }
                    acked += self.inFlight[i].size
                    self.inFlightBytes -= self.inFlight[i].size
                    sackedAfter += 1
                } else if sackedAfter >= 3, let sent = self.inFlight[i].sentAt, !self.inFlight[i].needsResend,
                    self.inFlight[i].transmissions == 1 || now - sent >= self.rtt.map({ $0 + self.rttVar * 4 }) ?? self.timeout
                {
                    // Lost: three packets after it arrived. A packet resent already goes again only a round trip
                    // (and its variation) after its last sending, or every ACK with the same holes would send it
                    // again: with the smoothed round trip alone, a queue growing in slow start made a resend look
                    // lost before its ACK could come. A lost probe was too big, which says nothing of congestion.
                    if !self.inFlight[i].isProbe { lost = true }
                    self.markResend(i)
                }
            }
        }
        if progressed {
            self.duplicateAcks = 0
            self.lastAck = ack
        } else if packet.type == .state && ack == self.lastAck && !self.inFlight.isEmpty {
            self.duplicateAcks += 1
            if self.duplicateAcks == 3, !self.inFlight[0].sacked {
                if !self.inFlight[0].isProbe { lost = true }
                self.markResend(0)
            }
        }
        if lost {
            if self.lossBoundary.map({ !Seq.less(ack, $0) }) ?? true {
                self.ledbat.lost()
                self.lossBoundary = self.seqNr
            }
        }
        if acked > 0 {
            self.ledbat.acknowledged(acked, windowLimited: flightBefore + self.payloadSize > self.ledbat.window)
            self.timeouts = 0
            self.timeoutAt = self.inFlight.isEmpty ? nil : now + self.timeout
        }
    }

    private mutating func receiveData(_ seq: UInt16, _ payload: [UInt8]) {
        self.ackNeeded = true
        if let eof = self.eof, Seq.less(eof, seq) { return }  // nothing comes after FIN
        let ahead = Seq.distance(self.ackNr, to: seq)
        guard ahead > 0 else { return }  // a duplicate: the ACK says we have it
        guard ahead <= self.configuration.maxReorder, payload.count <= self.receiveWindow else {
            self.dropped += 1
            return
        }
        if ahead > 1 {
            if self.reorder[seq] == nil {
                self.reorder[seq] = payload
                self.reorderBytes += payload.count
            }
            return
        }
        self.deliver(payload)
        self.ackNr = seq
        while let next = self.reorder.removeValue(forKey: self.ackNr &+ 1) {
            self.reorderBytes -= next.count
            self.deliver(next)
            self.ackNr &+= 1
        }
        if let eof = self.eof, self.ackNr == eof { self.remoteFinished = true }
    }

    private mutating func deliver(_ payload: [UInt8]) {
        guard !payload.isEmpty else { return }
        self.unread += payload.count
        self.events.append(.data(payload))
    }

    private mutating func probeAnswered(gotThrough: Bool) {
        guard let probe = self.probe else { return }
        self.probe = nil
        if gotThrough {
            self.packetSize = probe.size
            self.events.append(.packetSize(probe.size))
        } else {
            self.probeCeiling = probe.size - 1
        }
    }

    private mutating func sampleRTT(_ sample: Duration) {
        if let rtt = self.rtt {
            let delta = rtt > sample ? rtt - sample : sample - rtt
            self.rttVar += (delta - self.rttVar) / 4
            self.rtt = rtt + (sample - rtt) / 8
        } else {
            self.rtt = sample
            self.rttVar = sample / 2
        }
        self.timeout = max(self.rtt! + self.rttVar * 4, self.configuration.minTimeout)
    }

    // MARK: sending

    /// Sends what the windows allow: resends first, then new data, then FIN, then a bare ACK if one is owed.
    private mutating func flush(at now: Instant) {
        guard self.state == .connected || self.state == .finSent else { return }
        if self.resends > 0 {
            for i in self.inFlight.indices where self.inFlight[i].needsResend { self.retransmit(i, at: now) }
        }
        if self.state == .connected { self.sendNewData(at: now, probe: false) }
        if self.closeRequested && self.sendBuffer.isEmpty && self.finSeq == nil && self.state == .connected {
            self.finSeq = self.seqNr
            self.inFlight.append(Outgoing(type: .fin, seq: self.seqNr, payload: []))
            self.seqNr &+= 1
            self.state = .finSent
            self.inFlightBytes += UTPLimits.headerLength
            self.transmit(self.inFlight.count - 1, at: now)
            self.timeouts = 0
        }
        if self.ackNeeded { self.sendState(at: now) }
        if self.blocked && self.sendBuffer.count <= self.configuration.sendBuffer / 2 {
            self.blocked = false
            self.events.append(.writable)
        }
    }

    private mutating func sendNewData(at now: Instant, probe: Bool) {
        while !self.sendBuffer.isEmpty {
            var size = min(self.sendBuffer.count, self.payloadSize)
            if !probe && self.inFlightBytes == 0 {
                // Nothing in flight: one packet goes whatever LEDBAT's window says (BEP 29), within the other
                // side's window; a closed one waits for its update, or for the timer's probe.
                guard self.peerWindow > 0 else {
                    if self.timeoutAt == nil { self.timeoutAt = now + self.timeout }
                    break
                }
                size = min(size, Int(clamping: self.peerWindow))
            } else if !probe && self.inFlightBytes + size > min(self.ledbat.window, Int(clamping: self.peerWindow)) {
                break
            }
            let payload = self.sendBuffer.take(size)
            var probeSize = 0
            let next = (self.packetSize + self.probeCeiling + 1) / 2
            if !probe, self.probe == nil, self.resends == 0, payload.count == self.payloadSize,
                self.probeCeiling - self.packetSize >= self.configuration.probeStep,
                self.sendBuffer.count >= 3 * self.payloadSize,
                next + 3 * self.packetSize <= min(self.ledbat.window, Int(clamping: self.peerWindow))
            {
                // Try a size half way to the ceiling: this full packet, padded with extensions the other side
                // skips. Got through, packets grow to it; lost, its data goes again unpadded and the ceiling comes
                // down to it. Probes go one at a time, never while packets wait to be resent, and only with three
                // full packets to follow within the window: their selective ACKs tell a lost probe in a round trip,
                // where a timeout would also cut the window to one packet.
                probeSize = next
                self.probe = (self.seqNr, probeSize)
            }
            self.inFlight.append(Outgoing(type: .data, seq: self.seqNr, payload: payload, probeSize: probeSize))
            self.seqNr &+= 1
            self.inFlightBytes += payload.count + UTPLimits.headerLength
            self.transmit(self.inFlight.count - 1, at: now)
            if probe { break }
        }
    }

    private mutating func markResend(_ i: Int) {
        guard !self.inFlight[i].needsResend else { return }
        if self.inFlight[i].seq == self.probe?.seq { self.probeAnswered(gotThrough: false) }
        self.inFlight[i].needsResend = true
        self.resends += 1
    }

    private mutating func retransmit(_ i: Int, at now: Instant) {
        self.retransmissions += 1
        self.transmit(i, at: now)
    }

    private mutating func transmit(_ i: Int, at now: Instant) {
        let o = self.inFlight[i]
        var packet = self.packet(o.type, seq: o.seq, payload: o.payload, at: now)
        if o.transmissions == 0 && o.probeSize > 0 {
            packet.padding = max(0, o.probeSize - UTPLimits.headerLength - packet.selectiveAckLength - o.payload.count)
        }
        self.inFlight[i].sentAt = now
        self.inFlight[i].transmissions += 1
        if self.inFlight[i].needsResend {
            self.inFlight[i].needsResend = false
            self.resends -= 1
        }
        self.transmits.append(packet.bytes)
        self.ackNeeded = false
        if self.timeoutAt == nil { self.timeoutAt = now + self.timeout }
    }

    private mutating func sendState(at now: Instant) {
        self.transmits.append(self.packet(.state, seq: self.seqNr, payload: [], at: now).bytes)
        self.ackNeeded = false
    }

    private func packet(_ type: UTPPacketType, seq: UInt16, payload: [UInt8], at now: Instant) -> UTPPacket {
        UTPPacket(type: type, connectionID: type == .syn ? self.receiveID : self.sendID,
            timestamp: Self.micro(now), timestampDifference: self.replyMicro,
            windowSize: UInt32(self.receiveWindow), seq: seq, ack: self.ackNr,
            selectiveAck: self.selectiveAckBits(), payload: payload)
    }

    /// The holes in what we have: bit i says whether `ack + 2 + i` is here (BEP 29), up to the furthest packet
    /// held, in whole 32-bit words, at most 256 packets.
    private func selectiveAckBits() -> [UInt8] {
        guard !self.reorder.isEmpty else { return [] }
        var bits = [UInt8](repeating: 0, count: 32)
        var highest = -1
        for seq in self.reorder.keys {
            let offset = Seq.distance(self.ackNr &+ 2, to: seq)
            guard offset >= 0 && offset < 256 else { continue }
            bits[offset / 8] |= 1 << UInt8(offset % 8)
            highest = max(highest, offset)
        }
        guard highest >= 0 else { return [] }
        return Array(bits.prefix((highest / 32 + 1) * 4))
    }

    private mutating func close(_ reason: CloseReason) {
        guard self.state != .closed else { return }
        self.state = .closed
        self.timeoutAt = nil
        self.inFlight.removeAll()
        self.resends = 0
        self.sendBuffer.removeAll()
        self.reorder.removeAll()
        self.events.append(.closed(reason))
    }

    /// The low 32 bits of the clock in microseconds, as packets carry it.
    static func micro(_ now: Instant) -> UInt32 {
        let (s, atto) = now.offset.components
        return UInt32(truncatingIfNeeded: s &* 1_000_000 &+ atto / 1_000_000_000_000)
    }
}
