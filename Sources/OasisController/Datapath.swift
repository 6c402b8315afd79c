// One switch's channel: the handshake, keep-alive, xid pairing, framing and
// backpressure (OpenFlow 1.0.0 §6.3), and the calls applications make on it.

import OasisBits
import OasisLoop
import OasisNet
import OasisOpenFlow

/// Where a channel is in its life.
public enum DatapathState: Equatable, Sendable {
    /// Our HELLO is sent; the switch's has not arrived.
    case awaitingHello
    /// Versions agreed; FEATURES_REQUEST sent, its reply not arrived.
    case awaitingFeatures
    /// The switch joined: events flow and calls go out.
    case ready
    /// The channel is closed.
    case closed
}

/// Counters of one channel (and, summed, of a controller).
public struct ChannelCounters: Sendable, CustomStringConvertible {
    /// Messages decoded from the switch.
    public var messagesReceived: UInt64 = 0
    /// Messages queued towards the switch.
    public var messagesSent: UInt64 = 0
    /// PACKET_INs received.
    public var packetIns: UInt64 = 0
    /// FLOW_MODs sent.
    public var flowMods: UInt64 = 0
    /// PACKET_OUTs sent.
    public var packetOuts: UInt64 = 0
    /// OFPT_ERRORs received from the switch.
    public var errorsReceived: UInt64 = 0
    /// OFPT_ERRORs we sent (answers to malformed or unexpected messages).
    public var errorsSent: UInt64 = 0
    /// Echo requests we sent.
    public var echoesSent: UInt64 = 0
    /// Replies whose xid matched no request of ours.
    public var unsolicitedReplies: UInt64 = 0
    /// Messages we could not queue (send queue full, or after the close).
    public var sendFailures: UInt64 = 0

    /// Adds another channel's counters.
    public mutating func add(_ other: ChannelCounters) {
        messagesReceived &+= other.messagesReceived
        messagesSent &+= other.messagesSent
        packetIns &+= other.packetIns
        flowMods &+= other.flowMods
        packetOuts &+= other.packetOuts
        errorsReceived &+= other.errorsReceived
        errorsSent &+= other.errorsSent
        echoesSent &+= other.echoesSent
        unsolicitedReplies &+= other.unsolicitedReplies
        sendFailures &+= other.sendFailures
    }

    public var description: String {
        "messages \(messagesReceived) in, \(messagesSent) out; packet-ins \(packetIns), "
            + "flow-mods \(flowMods), packet-outs \(packetOuts); errors \(errorsReceived) "
            + "received, \(errorsSent) sent; echo requests \(echoesSent); unsolicited "
            + "replies \(unsolicitedReplies); send failures \(sendFailures)"
    }
}

/// One connected switch: its channel, its features, and the calls applications make.
///
/// Every call is made on the controller's loop. Calls that expect a reply come in three
/// forms: a callback, a ``Promise`` and `async`:
///
/// ```swift
/// try datapath.flowMod(FlowMod(match: flow, command: .add, idleTimeout: 10,
///                              actions: [.output(port: PortNumber(2))]))
/// datapath.stats(.port(.none)) { result in print(result) }
/// let flows = try await datapath.stats(.flow(FlowStatsRequest()))
/// try await datapath.barrier()
/// ```
public final class Datapath: CustomStringConvertible {
    /// The switch's FEATURES_REPLY (set when it joins).
    public private(set) var features: SwitchFeatures?
    /// The switch's ports, kept up to date by PORT_STATUS.
    public private(set) var ports: [PortNumber: PhysicalPort] = [:]
    /// Where the switch connected from.
    public let remote: StreamEndpoint
    /// Where the channel is in its life.
    public private(set) var state: DatapathState = .awaitingHello
    /// Why it closed, once it has.
    public private(set) var closeReason: DisconnectReason?
    /// This channel's counters.
    public private(set) var counters = ChannelCounters()
    /// The loop every call and event runs on.
    public let loop: EventLoop
    /// Bytes waiting to be written beyond the connection's send buffer.
    public var sendQueued: Int { unsent.count - unsentStart }

    /// The datapath id (0 until the switch joined).
    public var id: UInt64 { features?.datapathID ?? 0 }

    public var description: String {
        let hex = String(id, radix: 16)
        return "dpid \(String(repeating: "0", count: max(0, 16 - hex.count)) + hex) (\(remote))"
    }

    let connection: any StreamConnection
    let limits: ChannelLimits
    weak var core: ControllerCore?
    private var framer = MessageFramer()
    private var unsent: [UInt8] = []
    private var unsentStart = 0
    private var nextXID: UInt32 = 0x100
    private var pending: [UInt32: Pending] = [:]
    private var lastReceived: Duration
    private var blockedSince: Duration?
    private var echoOutstanding = false
    private var resumeQueued = false
    private var tick: TimerID?
    private let connectedAt: Duration
    private var featuresXID: UInt32 = 0

    /// A request awaiting its reply.
    private struct Pending {
        var expected: MessageType
        var deadline: Duration
        var completion: (Result<MessageBody, ControllerError>) -> Void
        /// Multipart stats gathered so far.
        var parts: StatsReply?
        var entries = 0
    }

    init(
        connection: any StreamConnection, loop: EventLoop, limits: ChannelLimits,
        core: ControllerCore
    ) {
        self.connection = connection
        self.loop = loop
        self.limits = limits
        self.core = core
        self.remote = connection.remote
        lastReceived = loop.now
        connectedAt = loop.now
    }

    /// Starts the channel: handlers on the connection, our HELLO, the timer.
    func start() {
        connection.receiveCapacity = max(limits.receiveBuffer, 16 * 1024)
        connection.sendCapacity = max(limits.sendBuffer, 16 * 1024)
        connection.noDelay = true
        connection.onReceive { [weak self] input in self?.receive(&input) }
        connection.onWritable { [weak self] in self?.flush() }
        connection.onClose { [weak self] error in
            guard let self, self.state != .closed else { return }
            self.finish(error.map { .transport($0) } ?? .closedBySwitch, closeConnection: false)
        }
        _ = try? transmit(Message(xid: takeXID(), body: .hello()))
        scheduleTick()
    }

    // MARK: - Calls

    /// Sends a message that expects no reply (FLOW_MOD, PACKET_OUT, PORT_MOD,
    /// SET_CONFIG, ...) and returns the xid it went with (OFPT_ERRORs about it carry
    /// that xid).
    ///
    /// - Throws: ``ControllerError/disconnected``, ``ControllerError/sendQueueFull``,
    ///   ``ControllerError/encoding(_:)``.
    @discardableResult
    public func send(_ body: MessageBody) throws(ControllerError) -> UInt32 {
        guard state == .ready else { throw .disconnected }
        let xid = takeXID()
        try transmit(Message(xid: xid, body: body))
        return xid
    }

    /// Adds, changes or deletes flows.
    @discardableResult
    public func flowMod(_ flowMod: FlowMod) throws(ControllerError) -> UInt32 {
        try send(.flowMod(flowMod))
    }

    /// Sends a packet: one the switch buffered (`bufferID`), or the frame in `data`.
    @discardableResult
    public func packetOut(_ packetOut: PacketOut) throws(ControllerError) -> UInt32 {
        try send(.packetOut(packetOut))
    }

    /// Changes a port's administrative settings (down, no-flood, ...).
    @discardableResult
    public func portMod(_ portMod: PortMod) throws(ControllerError) -> UInt32 {
        try send(.portMod(portMod))
    }

    /// Sets the switch's fragment handling and `miss_send_len`.
    @discardableResult
    public func setConfig(_ config: SwitchConfig) throws(ControllerError) -> UInt32 {
        try send(.setConfig(config))
    }

    /// Sends a request and calls `completion` with its reply's body (an OFPT_ERROR with
    /// its xid fails it with ``ControllerError/switchError(_:data:)``). Requests:
    /// FEATURES_REQUEST, GET_CONFIG_REQUEST, QUEUE_GET_CONFIG_REQUEST, ECHO_REQUEST,
    /// BARRIER_REQUEST, STATS_REQUEST (the reply's parts reassembled into one).
    ///
    /// ```swift
    /// datapath.request(.getConfigRequest) { result in print(result) }
    /// ```
    @discardableResult
    public func request(
        _ body: MessageBody, _ completion: @escaping (Result<MessageBody, ControllerError>) -> Void
    ) -> UInt32 {
        let expected: MessageType
        switch body {
        case .featuresRequest: expected = .featuresReply
        case .getConfigRequest: expected = .getConfigReply
        case .queueGetConfigRequest: expected = .queueGetConfigReply
        case .echoRequest: expected = .echoReply
        case .barrierRequest: expected = .barrierReply
        case .statsRequest: expected = .statsReply
        default:
            completion(.failure(.unexpectedReply(body.type)))
            return 0
        }
        guard state == .ready else {
            completion(.failure(.disconnected))
            return 0
        }
        guard pending.count < limits.outstandingRequests else {
            completion(.failure(.tooManyOutstanding))
            return 0
        }
        let xid = takeXID()
        do {
            try transmit(Message(xid: xid, body: body))
        } catch {
            completion(.failure(error))
            return 0
        }
        pending[xid] = Pending(
            expected: expected, deadline: loop.now + limits.requestTimeout, completion: completion)
        return xid
    }

    /// A request's reply as a promise (see ``request(_:_:)``).
    public func request(_ body: MessageBody) -> Promise<MessageBody> {
        let (promise, resolver) = loop.makePromise(of: MessageBody.self)
        request(body) { result in
            _ = resolver.settle(result.mapError { $0 as any Error })
        }
        return promise
    }

    /// A request's reply, from async code on the loop (see ``request(_:_:)``).
    public nonisolated(nonsending) func request(_ body: MessageBody) async throws(ControllerError)
        -> MessageBody
    {
        let promise: Promise<MessageBody> = request(body)
        return try await promise.controllerValue()
    }

    /// Asks for statistics; `completion` gets the whole reply (multipart replies
    /// reassembled: the flow, table, port and queue entries of every part).
    @discardableResult
    public func stats(
        _ request: StatsRequest,
        _ completion: @escaping (Result<StatsReply, ControllerError>) -> Void
    ) -> UInt32 {
        self.request(.statsRequest(request)) { result in
            completion(
                result.flatMap { body in
                    if case .statsReply(let reply, _) = body { return .success(reply) }
                    return .failure(.unexpectedReply(body.type))
                })
        }
    }

    /// Statistics as a promise (see ``stats(_:_:)``).
    public func stats(_ request: StatsRequest) -> Promise<StatsReply> {
        let (promise, resolver) = loop.makePromise(of: StatsReply.self)
        stats(request) { result in _ = resolver.settle(result.mapError { $0 as any Error }) }
        return promise
    }

    /// Statistics, from async code on the loop (see ``stats(_:_:)``).
    ///
    /// ```swift
    /// if case .flow(let flows) = try await datapath.stats(.flow(FlowStatsRequest())) { ... }
    /// ```
    public nonisolated(nonsending) func stats(_ request: StatsRequest) async throws(ControllerError)
        -> StatsReply
    {
        let promise: Promise<StatsReply> = stats(request)
        return try await promise.controllerValue()
    }

    /// Sends BARRIER_REQUEST; `completion` runs when its reply arrives (every message
    /// sent before it has then been processed by the switch).
    @discardableResult
    public func barrier(_ completion: @escaping (Result<Void, ControllerError>) -> Void) -> UInt32 {
        request(.barrierRequest) { result in completion(result.map { _ in () }) }
    }

    /// A barrier as a promise.
    public func barrier() -> Promise<Void> {
        let (promise, resolver) = loop.makePromise(of: Void.self)
        barrier { result in _ = resolver.settle(result.mapError { $0 as any Error }) }
        return promise
    }

    /// A barrier, from async code on the loop.
    public nonisolated(nonsending) func barrier() async throws(ControllerError) {
        let promise: Promise<Void> = barrier()
        try await promise.controllerValue()
    }

    /// Closes the channel (the switch sees end of stream and reconnects as it is
    /// configured to).
    public func close() {
        finish(.closedByController, closeConnection: true)
    }

    // MARK: - Receiving

    private func receive(_ input: inout StreamInput) {
        guard state != .closed else {
            input.consume(input.count)
            return
        }
        var handled = 0
        while true {
            // Whole messages already framed first, at most a turn's worth.
            while handled < limits.messagesPerTurn {
                // While our output to the switch is blocked we read nothing more: the
                // switch's own sending stops at the transport's window.
                if blockedSince != nil { return }
                let next: Bits?
                do {
                    next = try framer.next()
                } catch {
                    sendError(errorKind: error.errorKind, offending: nil)
                    finish(.unframeable(error), closeConnection: true)
                    return
                }
                guard let bits = next else { break }
                handled += 1
                handle(bits)
                if state == .closed { return }
            }
            if handled >= limits.messagesPerTurn {
                scheduleResume()
                return
            }
            if input.isEmpty { break }
            let taken = input.withUnsafeBytes { framer.append($0) }
            input.consume(taken)
            if taken == 0 { break }
        }
        if input.isFinished {
            let left = framer.bufferedCount
            finish(
                left > 0 ? .truncatedStream(bytes: left) : .closedBySwitch, closeConnection: true)
        }
    }

    /// Reads on at the next loop turn (the turn's share of messages was used up, or
    /// the output just unblocked).
    private func scheduleResume() {
        guard !resumeQueued else { return }
        resumeQueued = true
        loop.enqueue { [weak self] in
            guard let self else { return }
            self.resumeQueued = false
            guard self.state != .closed else { return }
            self.connection.withInput { self.receive(&$0) }
        }
    }

    private func handle(_ bits: Bits) {
        counters.messagesReceived &+= 1
        lastReceived = loop.now
        echoOutstanding = false
        // The framer handed out at least the 8 bytes of a header.
        let version = (try? bits.read(UInt8.self, at: 0)) ?? 0
        let type = (try? bits.read(UInt8.self, at: 1)) ?? 0
        let xid = (try? bits.read(UInt32.self, at: 4)) ?? 0
        if state == .awaitingHello {
            guard type == MessageType.hello.rawValue else {
                if type == MessageType.echoRequest.rawValue, version == openFlowVersion,
                    case .echoRequest(let data)? = try? Message.decode(bits).body
                {
                    _ = try? transmit(Message(xid: xid, body: .echoReply(data)))
                    return
                }
                if type == MessageType.error.rawValue, version == openFlowVersion,
                    case .error(let error)? = try? Message.decode(bits).body
                {
                    finish(.helloFailed(error.kind), closeConnection: true)
                    return
                }
                sendError(errorKind: .helloFailed(.incompatible), offending: bits)
                finish(.noHello(type), closeConnection: true)
                return
            }
            helloReceived(version: version, bits: bits)
            return
        }
        let message: Message
        do {
            message = try Message.decode(bits)
        } catch {
            // Malformed, truncated for its type, another version, unknown type: the
            // specification's OFPT_ERROR, and the channel goes on.
            sendError(errorKind: error.errorKind, offending: bits)
            core?.log("\(self): \(error) (answered \(error.errorKind))")
            return
        }
        dispatch(message)
    }

    /// OpenFlow 1.0.0 §6.3.1: the version is the lower of the two HELLOs'. A HELLO of
    /// a later version that carries a version bitmap (OpenFlow 1.3.1's hello element)
    /// without 1.0 in it, or of version 0, gets HELLO_FAILED/INCOMPATIBLE.
    private func helloReceived(version: UInt8, bits: Bits) {
        var compatible = version >= openFlowVersion
        if version > openFlowVersion, let bitmap = Self.versionBitmap(bits) {
            compatible = bitmap & (1 << UInt32(openFlowVersion)) != 0
        }
        guard compatible else {
            sendError(
                errorKind: .helloFailed(.incompatible), offending: bits,
                text: "OpenFlow 1.0 (wire version 1) only")
            finish(.incompatibleVersion(version), closeConnection: true)
            return
        }
        state = .awaitingFeatures
        featuresXID = takeXID()
        _ = try? transmit(Message(xid: featuresXID, body: .featuresRequest))
        _ = try? transmit(
            Message(
                xid: takeXID(),
                body: .setConfig(SwitchConfig(flags: [], missSendLength: limits.missSendLength))))
    }

    /// The first word of an OFPHET_VERSIONBITMAP element of a HELLO, if it has one.
    static func versionBitmap(_ bits: Bits) -> UInt32? {
        var offset = 8
        while offset + 4 <= bits.count {
            guard let type = try? bits.read(UInt16.self, at: offset),
                let length = try? bits.read(UInt16.self, at: offset + 2), length >= 4
            else { return nil }
            if type == 1, length >= 8, let word = try? bits.read(UInt32.self, at: offset + 4) {
                return word
            }
            offset += (Int(length) + 7) / 8 * 8
        }
        return nil
    }

    private func dispatch(_ message: Message) {
        let xid = message.xid
        switch message.body {
        case .echoRequest(let data):
            _ = try? transmit(Message(xid: xid, body: .echoReply(data)))
        case .echoReply:
            if pending[xid] != nil { complete(xid, with: message.body) }
        case .hello:
            break  // a second HELLO: nothing to negotiate again
        case .featuresReply(let features):
            if xid == featuresXID && state == .awaitingFeatures {
                self.features = features
                for port in features.ports { ports[port.portNumber] = port }
                state = .ready
                core?.joined(self)
            } else if state == .ready, pending[xid] != nil {
                self.features = features
                complete(xid, with: message.body)
            } else {
                counters.unsolicitedReplies &+= 1
            }
        case .error(let error):
            counters.errorsReceived &+= 1
            if state == .awaitingFeatures && xid == featuresXID {
                finish(.helloFailed(error.kind), closeConnection: true)
                return
            }
            if case .helloFailed = error.kind {
                finish(.helloFailed(error.kind), closeConnection: true)
                return
            }
            if let request = pending.removeValue(forKey: xid) {
                request.completion(.failure(.switchError(error.kind, data: error.data.bytes)))
            }
            core?.emit(.error(self, xid: xid, error))
        case .packetIn(let packetIn):
            guard state == .ready else { return }
            counters.packetIns &+= 1
            let flow = Match(frame: packetIn.data.bits, inPort: packetIn.inPort)
            core?.emit(.packetIn(self, PacketInEvent(packetIn: packetIn, flow: flow, xid: xid)))
        case .flowRemoved(let removed):
            guard state == .ready else { return }
            core?.emit(.flowRemoved(self, removed))
        case .portStatus(let status):
            if status.reason == .delete {
                ports[status.port.portNumber] = nil
            } else {
                ports[status.port.portNumber] = status.port
            }
            guard state == .ready else { return }
            core?.emit(.portStatus(self, status))
        case .statsReply(let reply, let flags):
            statsPart(reply, more: flags.contains(.more), xid: xid)
        case .barrierReply:
            complete(xid, with: message.body)
            core?.emit(.barrierReply(self, xid: xid))
        case .getConfigReply, .queueGetConfigReply:
            complete(xid, with: message.body)
        case .vendor:
            // Vendor messages we do not speak: OpenFlow 1.0.0 §5.4.4's BAD_VENDOR.
            sendError(errorKind: .badRequest(.badVendor), offending: nil, xid: xid)
        case .featuresRequest, .getConfigRequest, .setConfig, .packetOut, .flowMod, .portMod,
            .statsRequest, .barrierRequest, .queueGetConfigRequest:
            // Controller-to-switch messages have no meaning coming from a switch.
            sendError(errorKind: .badRequest(.badType), offending: nil, xid: xid)
        }
    }

    private func complete(_ xid: UInt32, with body: MessageBody) {
        guard let request = pending[xid] else {
            counters.unsolicitedReplies &+= 1
            return
        }
        pending[xid] = nil
        if request.expected == body.type {
            request.completion(.success(body))
        } else {
            request.completion(.failure(.unexpectedReply(body.type)))
        }
    }

    /// One part of a stats reply: gathered until the part without `OFPSF_REPLY_MORE`.
    private func statsPart(_ reply: StatsReply, more: Bool, xid: UInt32) {
        guard var request = pending[xid], request.expected == .statsReply else {
            counters.unsolicitedReplies &+= 1
            return
        }
        request.entries += reply.entryCount
        if request.entries > limits.statsEntries {
            pending[xid] = nil
            request.completion(.failure(.replyTooLarge))
            return
        }
        let merged = request.parts.map { $0.appending(reply) } ?? reply
        if more {
            request.parts = merged
            request.deadline = loop.now + limits.requestTimeout
            pending[xid] = request
            return
        }
        pending[xid] = nil
        request.completion(.success(.statsReply(merged, flags: [])))
        core?.emit(.statsReply(self, xid: xid, merged))
    }

    // MARK: - Sending

    private func takeXID() -> UInt32 {
        nextXID &+= 1
        if nextXID == 0 { nextXID = 1 }
        return nextXID
    }

    /// Encodes `message` and queues it whole, or not at all.
    private func transmit(_ message: Message) throws(ControllerError) {
        guard state != .closed, let core else { throw .disconnected }
        var out = core.scratchView()
        do {
            try message.encode(into: &out)
        } catch {
            throw .encoding(error)
        }
        let result = out.withUnsafeBytes { raw -> Result<Void, ControllerError> in
            // A message goes whole into the stream or not at all: a part would leave
            // the switch unable to frame anything after it.
            if sendQueued + raw.count > limits.sendQueueLimit
                && (sendQueued > 0 || raw.count > connection.writableBytes)
            {
                return .failure(.sendQueueFull)
            }
            var taken = 0
            if sendQueued == 0 {
                do {
                    taken = try connection.write(raw)
                } catch {
                    return .failure(.disconnected)
                }
            }
            if taken < raw.count {
                if unsentStart > 0 && unsentStart >= unsent.count / 2 {
                    unsent.removeFirst(unsentStart)
                    unsentStart = 0
                }
                unsent.append(contentsOf: raw[taken...])
                if blockedSince == nil { blockedSince = loop.now }
            }
            return .success(())
        }
        switch result {
        case .success:
            counters.messagesSent &+= 1
            switch message.body {
            case .flowMod: counters.flowMods &+= 1
            case .packetOut: counters.packetOuts &+= 1
            case .error: counters.errorsSent &+= 1
            default: break
            }
        case .failure(let error):
            counters.sendFailures &+= 1
            throw error
        }
    }

    /// Room opened in the connection's send buffer: what waits goes on, and once all
    /// of it has, the switch's messages are read again.
    private func flush() {
        guard state != .closed, sendQueued > 0 else { return }
        let taken =
            unsent.withUnsafeBytes { raw in
                try? connection.write(UnsafeRawBufferPointer(rebasing: raw[unsentStart...]))
            } ?? 0
        unsentStart += taken
        if unsentStart == unsent.count {
            unsent.removeAll(keepingCapacity: unsent.count <= 64 * 1024)
            unsentStart = 0
            blockedSince = nil
            lastReceived = loop.now  // its messages were left unread meanwhile
            scheduleResume()
        }
    }

    private func sendError(
        errorKind: ErrorKind, offending: Bits?, xid: UInt32? = nil, text: String? = nil
    ) {
        let data: Payload
        if let text {
            data = Payload(Array(text.utf8))
        } else if let offending {
            data = Payload((try? offending.prefix(min(64, offending.count))) ?? offending)
        } else {
            data = Payload()
        }
        let errorXID = xid ?? offending.flatMap { try? $0.read(UInt32.self, at: 4) } ?? 0
        _ = try? transmit(
            Message(xid: errorXID, body: .error(ErrorMessage(kind: errorKind, data: data))))
    }

    // MARK: - Timers and the end

    private func scheduleTick() {
        let period = max(min(limits.echoInterval, limits.deadTimeout) / 4, .milliseconds(5))
        tick = loop.schedule(after: period) { [weak self] in
            guard let self, self.state != .closed else { return }
            self.checkTimers()
            if self.state != .closed { self.scheduleTick() }
        }
    }

    private func checkTimers() {
        let now = loop.now
        if state != .ready, now - connectedAt >= limits.handshakeTimeout {
            finish(.handshakeTimeout, closeConnection: true)
            return
        }
        if let blockedSince {
            // Not reading the switch while it does not read us: its silence is ours.
            if now - blockedSince >= limits.deadTimeout {
                finish(
                    .notReading(queued: sendQueued + connection.sendQueued), closeConnection: true)
                return
            }
        } else if now - lastReceived >= limits.deadTimeout {
            finish(.echoTimeout, closeConnection: true)
            return
        }
        if now - lastReceived >= limits.echoInterval, !echoOutstanding, state == .ready {
            echoOutstanding = true
            counters.echoesSent &+= 1
            _ = try? transmit(Message(xid: takeXID(), body: .echoRequest()))
        }
        let expired = pending.filter { $0.value.deadline <= now }
        for (xid, request) in expired {
            pending[xid] = nil
            request.completion(.failure(.timedOut))
        }
    }

    /// Closes the channel once: fails every waiting request, tells the controller.
    private func finish(_ reason: DisconnectReason, closeConnection: Bool) {
        guard state != .closed else { return }
        let wasReady = state == .ready
        state = .closed
        closeReason = reason
        if let tick { _ = loop.cancelTimer(tick) }
        tick = nil
        if closeConnection {
            // What we queued last (an OFPT_ERROR saying why) goes first if it can.
            if sendQueued > 0 {
                _ = unsent.withUnsafeBytes { raw in
                    try? connection.write(UnsafeRawBufferPointer(rebasing: raw[unsentStart...]))
                }
            }
            if case .notReading = reason {
                connection.reset()
            } else {
                connection.close()
            }
        }
        unsent = []
        unsentStart = 0
        let waiting = pending
        pending = [:]
        for request in waiting.values { request.completion(.failure(.disconnected)) }
        core?.left(self, reason: reason, wasReady: wasReady)
    }
}

extension StatsReply {
    /// Entries in the reply (1 for the single-valued kinds).
    var entryCount: Int {
        switch self {
        case .flow(let entries): entries.count
        case .table(let entries): entries.count
        case .port(let entries): entries.count
        case .queue(let entries): entries.count
        case .description, .aggregate, .vendor: 1
        }
    }

    /// This part and the next one of a multipart reply, as one.
    func appending(_ next: StatsReply) -> StatsReply {
        switch (self, next) {
        case (.flow(let a), .flow(let b)): .flow(a + b)
        case (.table(let a), .table(let b)): .table(a + b)
        case (.port(let a), .port(let b)): .port(a + b)
        case (.queue(let a), .queue(let b)): .queue(a + b)
        case (.vendor(let id, let a), .vendor(_, let b)):
            .vendor(id, body: Payload(a.bytes + b.bytes))
        default: next
        }
    }
}
