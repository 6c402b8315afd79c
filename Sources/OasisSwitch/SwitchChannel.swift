// The switch's secure channel (OpenFlow 1.0 §4): sessions with controllers it dials
// (reconnecting with backoff) and with tools that dial it (a passive listener, for
// `ovs-ofctl`), on the Stream surface: kernel sockets or the Oasis stack's TCP.

import OasisBits
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisWire

/// What the switch does while no controller is connected (after one was): OpenFlow
/// 1.0's emergency mode, or acting as a learning switch (Open vSwitch's
/// `fail-mode=standalone`).
public enum FailMode: String, Sendable, CaseIterable {
    /// The normal flows are removed and the emergency flows used; misses are dropped.
    case secure
    /// Misses are forwarded by the built-in learning switch (NORMAL).
    case standalone
}

/// The channel's counters.
public struct SwitchChannelCounters: Sendable {
    public var sessionsOpened: UInt64 = 0
    public var sessionsClosed: UInt64 = 0
    public var messagesReceived: UInt64 = 0
    public var messagesSent: UInt64 = 0
    /// OFPT_ERROR messages sent for what the switch refused.
    public var errorsSent: UInt64 = 0
    /// Sessions dropped because the peer did not read what was sent (output bound).
    public var slowPeersDropped: UInt64 = 0
    /// Sessions closed for echo requests that went unanswered.
    public var echoTimeouts: UInt64 = 0
}

/// What a switch sends and never receives, one bit per message type: refused by type
/// before their bodies are read (a malformed STATS_REPLY is a wrong type, not a wrong
/// length).
private let switchToControllerTypes: UInt32 = [
    MessageType.featuresReply, .getConfigReply, .packetIn, .flowRemoved, .portStatus,
    .statsReply, .barrierReply, .queueGetConfigReply,
].reduce(0) { $0 | 1 << $1.rawValue }

/// An OpenFlow 1.0 switch's channel to its controllers.
///
/// ```swift
/// let channel = SwitchChannel(datapath: datapath, streams: SocketStreams(on: loop), datapathID: 1)
/// channel.connect(to: StreamEndpoint(address: IPv4Address(127, 0, 0, 1), port: 6653))
/// try channel.listen(port: 6634)   // for ovs-ofctl
/// ```
public final class SwitchChannel<Streams: StreamService> {
    public let datapath: Datapath
    public let streams: Streams
    public let datapathID: UInt64
    public var failMode: FailMode = .secure
    /// Echo requests go after this much silence; a session that answers nothing for
    /// three of them is closed.
    public var echoInterval: Duration = .seconds(5)
    /// The most bytes waiting to be sent on one session before it is dropped.
    public var outputLimit = 4 << 20
    public private(set) var counters = SwitchChannelCounters()
    /// Log lines (joins, leaves, errors) for whoever runs the switch.
    public var log: ((String) -> Void)?

    private var sessions: [ObjectIdentifier: Session] = [:]
    private var listeners: [Streams.Listener] = []
    private var controllers: [Dialer] = []
    private var config = SwitchConfig(flags: .fragmentNormal, missSendLength: 128)
    private var hadController = false

    final class Dialer {
        let endpoint: StreamEndpoint
        var backoff: Duration = .milliseconds(250)
        var session: Session?
        var stopped = false
        init(endpoint: StreamEndpoint) { self.endpoint = endpoint }
    }

    final class Session {
        let connection: Streams.Connection
        /// A controller the switch dialed (asynchronous messages go to these).
        let active: Bool
        var framer = MessageFramer()
        var pending: [UInt8] = []
        var helloReceived = false
        /// SET_CONFIG's miss_send_len for this session: 128 for a controller the switch
        /// dialed, 0 for a tool on the passive listener (it gets no PACKET_IN), as Open
        /// vSwitch has it for its primary and service connections.
        var missSendLength: UInt16
        var lastHeard: Int64 = 0
        var echoTimer: TimerID?
        var closed = false
        init(connection: Streams.Connection, active: Bool) {
            self.connection = connection
            self.active = active
            missSendLength = active ? 128 : 0
        }
    }

    public init(datapath: Datapath, streams: Streams, datapathID: UInt64) {
        self.datapath = datapath
        self.streams = streams
        self.datapathID = datapathID
        datapath.packetIn = { [weak self] in self?.broadcast(.packetIn($0)) }
        datapath.flowRemoved = { [weak self] in self?.broadcast(.flowRemoved($0)) }
    }

    private var loop: EventLoop { streams.loop }
    private var now: Int64 {
        let (seconds, attoseconds) = loop.now.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Controllers connected now (active sessions past the handshake).
    public var connectedControllers: Int {
        sessions.values.filter { $0.active && $0.helloReceived && !$0.closed }.count
    }

    // MARK: Connections

    /// Dials a controller, and again with backoff (250 ms doubling to 8 s) whenever
    /// the connection fails or ends.
    public func connect(to endpoint: StreamEndpoint) {
        let dialer = Dialer(endpoint: endpoint)
        controllers.append(dialer)
        dial(dialer)
    }

    private func dial(_ dialer: Dialer) {
        guard !dialer.stopped else { return }
        streams.connect(to: dialer.endpoint).onResult { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let connection):
                dialer.backoff = .milliseconds(250)
                let session = self.open(connection, active: true)
                dialer.session = session
            case .failure(let error):
                self.log?("controller \(dialer.endpoint): \(error); again in \(dialer.backoff)")
                self.redial(dialer)
            }
        }
    }

    private func redial(_ dialer: Dialer) {
        guard !dialer.stopped else { return }
        let delay = dialer.backoff
        dialer.backoff = min(dialer.backoff * 2, .seconds(8))
        _ = loop.schedule(after: delay) { [weak self] in self?.dial(dialer) }
    }

    /// Accepts sessions on `port` (as `ovs-vswitchd`'s `ptcp:6634`), any number, one
    /// after another or at once. Returns where it listens (the port the service
    /// picked, for port 0).
    @discardableResult
    public func listen(port: UInt16) throws(StreamError) -> StreamEndpoint {
        let listener = try streams.listen(port: port, backlog: 16) { [weak self] connection in
            _ = self?.open(connection, active: false)
        }
        listeners.append(listener)
        return listener.local
    }

    private func open(_ connection: Streams.Connection, active: Bool) -> Session {
        let session = Session(connection: connection, active: active)
        sessions[ObjectIdentifier(session)] = session
        counters.sessionsOpened &+= 1
        session.lastHeard = now
        connection.noDelay = true
        send(Message(xid: 0, body: .hello()), on: session)
        // Weak: the session goes when it closes, and the connection may still call.
        connection.onReceive { [weak self, weak session] input in
            guard let self, let session else { return }
            self.receive(&input, on: session)
        }
        connection.onWritable { [weak self, weak session] in
            guard let self, let session else { return }
            self.flush(session)
        }
        connection.onClose { [weak self, weak session] error in
            guard let self, let session else { return }
            self.closed(session, error: error)
        }
        armEcho(session)
        return session
    }

    private func closed(_ session: Session, error: StreamError?) {
        guard !session.closed else { return }
        session.closed = true
        if let timer = session.echoTimer { _ = loop.cancelTimer(timer) }
        sessions[ObjectIdentifier(session)] = nil
        counters.sessionsClosed &+= 1
        log?(
            "\(session.active ? "controller" : "session") \(session.connection.remote) left"
                + (error.map { ": \($0)" } ?? ""))
        if session.active {
            if let dialer = controllers.first(where: { $0.session === session }) {
                dialer.session = nil
                redial(dialer)
            }
            if hadController && connectedControllers == 0 { enterFailMode() }
        }
    }

    private func close(_ session: Session, reason: String) {
        log?("closing \(session.connection.remote): \(reason)")
        session.connection.close()
        closed(session, error: nil)
    }

    /// Stops dialing, closes every session and listener.
    public func stop() {
        for dialer in controllers { dialer.stopped = true }
        for listener in listeners { listener.close() }
        listeners = []
        for session in Array(sessions.values) { close(session, reason: "stopping") }
    }

    private func enterFailMode() {
        switch failMode {
        case .secure:
            let removed = datapath.table.enterEmergency()
            datapath.packetIn = nil  // misses and CONTROLLER outputs are dropped, counted
            log?(
                "no controller: fail-secure, \(removed.count) flows removed, emergency flows in use"
            )
        case .standalone:
            datapath.missAction = .normal
            log?("no controller: fail-standalone, acting as a learning switch")
        }
    }

    private func leaveFailMode() {
        datapath.table.leaveEmergency()
        datapath.missAction = .controller
        datapath.packetIn = { [weak self] in self?.broadcast(.packetIn($0)) }
    }

    // MARK: Input

    private func receive(_ input: inout StreamInput, on session: Session) {
        session.lastHeard = now
        while !input.isEmpty && !session.closed {
            let taken = input.withUnsafeBytes { session.framer.append($0) }
            input.consume(taken)
            while !session.closed {
                let bits: Bits?
                do throws(OpenFlowError) {
                    bits = try session.framer.next()
                } catch {
                    // A length no message has: the stream cannot be followed further.
                    counters.errorsSent &+= 1
                    send(
                        Message(xid: 0, body: .error(ErrorMessage(kind: error.errorKind))),
                        on: session)
                    close(session, reason: "\(error)")
                    return
                }
                guard let bits else { break }
                handle(bits, on: session)
            }
            if taken == 0 { break }
        }
        if input.isFinished && !session.closed { close(session, reason: "the peer closed") }
    }

    private func handle(_ bits: Bits, on session: Session) {
        counters.messagesReceived &+= 1
        let version = (try? bits.read(UInt8.self, at: 0)) ?? 0
        let type = (try? bits.read(UInt8.self, at: 1)) ?? 0
        // The first message must be a HELLO: anything else before it fails the
        // handshake (OpenFlow 1.0, "Connection Setup"), as Open vSwitch fails it.
        if !session.helloReceived, type != MessageType.hello.rawValue {
            failHandshake(
                bits, saying: "expected a HELLO first",
                reason: "a message of type \(type) before HELLO", on: session)
            return
        }
        if version == 1, type < 32, switchToControllerTypes & 1 << type != 0 {
            refuse(bits, kind: .badRequest(.badType), on: session)
            return
        }
        let message: Message
        do throws(OpenFlowError) {
            message = try Message.decode(bits)
        } catch {
            // A HELLO of a newer version is negotiation: 1.0 is what both then speak.
            if case .badVersion(let version, let type) = error, type == 0, version > 1 {
                accepted(session)
                return
            }
            if case .badVersion = error, !session.helloReceived {
                failHandshake(
                    bits, saying: "Oasis speaks OpenFlow 1.0 only", reason: "incompatible version",
                    on: session)
                return
            }
            counters.errorsSent &+= 1
            send(errorMessage(for: error, offending: bits), on: session)
            return
        }
        let xid = message.xid
        switch message.body {
        case .hello:
            accepted(session)
        case .echoRequest(let payload):
            send(Message(xid: xid, body: .echoReply(payload)), on: session)
        case .echoReply:
            break
        case .error(let error):
            // Logged, never answered: two peers answering each other's errors would
            // ping-pong for ever.
            log?("\(session.connection.remote) says: \(error.kind)")
        case .featuresRequest:
            send(Message(xid: xid, body: .featuresReply(features)), on: session)
        case .getConfigRequest:
            var reply = config
            reply.missSendLength = session.missSendLength
            send(Message(xid: xid, body: .getConfigReply(reply)), on: session)
        case .setConfig(let new):
            // Fragment handling is the switch's; miss_send_len the session's (only
            // controllers the switch dialed get PACKET_INs).
            config.flags = new.flags
            session.missSendLength = new.missSendLength
            if session.active { datapath.missSendLength = new.missSendLength }
        case .flowMod(let mod):
            if mod.command == .add || mod.command == .modify || mod.command == .modifyStrict,
                let code = Datapath.refusal(of: mod.actions, inPacketOut: false)
            {
                refuse(bits, kind: .badAction(code), on: session)
                return
            }
            do throws(FlowModFailedCode) {
                if try !datapath.apply(mod) {
                    refuse(bits, kind: .badRequest(.bufferUnknown), on: session)
                }
            } catch {
                refuse(bits, kind: .flowModFailed(error), on: session)
            }
        case .packetOut(let out):
            if let code = Datapath.refusal(of: out.actions, inPacketOut: true) {
                refuse(bits, kind: .badAction(code), on: session)
                return
            }
            do throws(Datapath.PacketOutError) {
                try datapath.apply(out)
            } catch {
                switch error {
                case .bufferUnknown: refuse(bits, kind: .badRequest(.bufferUnknown), on: session)
                case .badOutPort: refuse(bits, kind: .badAction(.badOutPort), on: session)
                }
            }
        case .portMod(let mod):
            if let port = datapath.ports[mod.portNumber],
                port.hardwareAddress != mod.hardwareAddress
            {
                refuse(bits, kind: .portModFailed(.badHardwareAddress), on: session)
            } else if datapath.modifyPort(mod.portNumber, config: mod.config, mask: mod.mask),
                let port = datapath.ports[mod.portNumber]
            {
                broadcast(.portStatus(PortStatus(reason: .modify, port: port.description)))
            } else {
                refuse(bits, kind: .portModFailed(.badPort), on: session)
            }
        case .statsRequest(let request, _):
            if case .vendor = request {
                refuse(bits, kind: .badRequest(.badVendor), on: session)
                return
            }
            guard let reply = statistics(request) else {
                refuse(bits, kind: .badRequest(.badStat), on: session)
                return
            }
            if case .flow(let flows) = reply {
                sendFlowStats(flows, xid: xid, on: session)
            } else {
                send(Message(xid: xid, body: .statsReply(reply)), on: session)
            }
        case .barrierRequest:
            // Every message before it is done: they are handled in order, at once.
            send(Message(xid: xid, body: .barrierReply), on: session)
        case .queueGetConfigRequest(let port):
            send(Message(xid: xid, body: .queueGetConfigReply(port: port, queues: [])), on: session)
        case .vendor:
            refuse(bits, kind: .badRequest(.badVendor), on: session)
        default:
            // What a switch sends, not receives.
            refuse(bits, kind: .badRequest(.badType), on: session)
        }
    }

    private func accepted(_ session: Session) {
        guard !session.helloReceived else { return }
        session.helloReceived = true
        if session.active {
            log?("controller \(session.connection.remote) connected")
            if hadController && connectedControllers == 1 { leaveFailMode() }
            hadController = true
        }
    }

    /// HELLO_FAILED (incompatible) with `text`, then the session closed for `reason`.
    private func failHandshake(
        _ offending: Bits, saying text: String, reason: String, on session: Session
    ) {
        counters.errorsSent &+= 1
        send(
            Message(
                xid: (try? offending.read(UInt32.self, at: 4)) ?? 0,
                body: .error(
                    ErrorMessage(kind: .helloFailed(.incompatible), data: Payload(Array(text.utf8)))
                )),
            on: session)
        close(session, reason: reason)
    }

    private func refuse(_ offending: Bits, kind: ErrorKind, on session: Session) {
        counters.errorsSent &+= 1
        let data = (try? offending.prefix(min(64, offending.count))) ?? offending
        let xid = (try? offending.read(UInt32.self, at: 4)) ?? 0
        send(
            Message(xid: xid, body: .error(ErrorMessage(kind: kind, data: Payload(data)))),
            on: session)
    }

    /// FEATURES_REPLY: one table, the buffers, every OpenFlow 1.0 action but vendor.
    public var features: SwitchFeatures {
        SwitchFeatures(
            datapathID: datapathID, bufferCount: UInt32(datapath.buffers.capacity), tableCount: 1,
            capabilities: [.flowStats, .tableStats, .portStats, .queueStats, .arpMatchIP],
            actions: ActionTypes(rawValue: 0xfff),
            ports: datapath.ports.values.sorted { $0.number.rawValue < $1.number.rawValue }
                .map(\.description))
    }

    private func statistics(_ request: StatsRequest) -> StatsReply? {
        let now = self.now
        switch request {
        case .description:
            return .description(
                DescriptionStats(
                    manufacturer: "Oasis", hardware: "Oasis userspace datapath",
                    software: "Oasis OpenFlow 1.0 switch", serialNumber: "None",
                    datapath: OpenFlowText("datapath \(datapathID)")))
        case .flow(let selection):
            return .flow(datapath.table.flowStats(selection, now: now))
        case .aggregate(let selection):
            return .aggregate(datapath.table.aggregateStats(selection))
        case .table:
            return .table([
                TableStats(
                    tableID: 0, name: "table0", wildcards: .all,
                    maxEntries: UInt32(clamping: datapath.table.maximumEntries),
                    activeCount: UInt32(clamping: datapath.table.count),
                    lookupCount: datapath.table.lookupCount,
                    matchedCount: datapath.table.matchedCount)
            ])
        case .port(let number):
            let chosen = datapath.ports.values.filter { number == .none || $0.number == number }
                .sorted { $0.number.rawValue < $1.number.rawValue }
            return .port(
                chosen.map { port in
                    var stats = PortStats(portNumber: port.number)
                    stats.rxPackets = port.receivedPackets
                    stats.txPackets = port.sentPackets
                    stats.rxBytes = port.receivedBytes
                    stats.txBytes = port.sentBytes
                    stats.rxDropped = port.receiveDrops
                    stats.txDropped = port.sendDrops
                    return stats
                })
        case .queue:
            return .queue([])
        case .vendor:
            return nil
        }
    }

    /// Flow statistics in as many replies as they need, each within OpenFlow's 64 KiB,
    /// all but the last flagged REPLY_MORE; one flow too large for any reply (thousands
    /// of actions) is left out and logged.
    private func sendFlowStats(_ flows: [FlowStats], xid: UInt32, on session: Session) {
        let room = 65_535 - 12
        var chunk: [FlowStats] = []
        var size = 0
        var chunks: [[FlowStats]] = []
        for flow in flows {
            let length = 88 + flow.actions.reduce(0) { $0 + $1.wireLength }
            guard length <= room else {
                log?("a flow of \(length) bytes does not fit in a statistics reply: left out")
                continue
            }
            if size + length > room {
                chunks.append(chunk)
                chunk = []
                size = 0
            }
            chunk.append(flow)
            size += length
        }
        chunks.append(chunk)
        for (index, part) in chunks.enumerated() {
            let more = index < chunks.count - 1
            send(
                Message(xid: xid, body: .statsReply(.flow(part), flags: more ? .more : [])),
                on: session)
        }
    }

    // MARK: Output

    /// Sends `body` to every controller the switch dialed (asynchronous messages).
    private func broadcast(_ body: MessageBody) {
        let message = Message(xid: 0, body: body)
        for session in sessions.values where session.active && session.helloReceived {
            send(message, on: session)
        }
    }

    private func send(_ message: Message, on session: Session) {
        guard !session.closed, let encoded = try? message.encoded() else { return }
        counters.messagesSent &+= 1
        let bytes = encoded.copyBytes()
        if session.pending.isEmpty {
            let written = bytes.withUnsafeBytes { (try? session.connection.write($0)) ?? 0 }
            if written == bytes.count { return }
            session.pending = Array(bytes[written...])
        } else {
            session.pending += bytes
        }
        if session.pending.count > outputLimit {
            counters.slowPeersDropped &+= 1
            close(session, reason: "it does not read: \(session.pending.count) bytes waiting")
        }
    }

    private func flush(_ session: Session) {
        guard !session.pending.isEmpty, !session.closed else { return }
        let written = session.pending.withUnsafeBytes { (try? session.connection.write($0)) ?? 0 }
        session.pending.removeFirst(written)
    }

    // MARK: Keep-alive

    private func armEcho(_ session: Session) {
        session.echoTimer = loop.schedule(after: echoInterval) { [weak self, weak session] in
            guard let self, let session, !session.closed else { return }
            let silent = self.now - session.lastHeard
            let interval = Int64(self.echoInterval.components.seconds) * 1_000_000_000
            if silent > 3 * interval {
                self.counters.echoTimeouts &+= 1
                self.close(session, reason: "no answer to echo requests")
                return
            }
            if silent >= interval { self.send(Message(xid: 0, body: .echoRequest()), on: session) }
            self.armEcho(session)
        }
    }
}
