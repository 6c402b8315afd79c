// An iperf3 server written once against the Stream surface: the iperf3 client (3.x)
// measures TCP throughput against it on the Oasis stack or on kernel sockets. One
// test at a time, as iperf3's own server: a control connection arriving while a test
// runs is answered ACCESS_DENIED. Everything is bounded: the JSON documents (64 KiB),
// the connections waiting to show their cookie, the time each phase of the control
// exchange may take, the test's own length; a client that sends garbage, lies about a
// length or stalls costs the server a timeout at most, and the next client is served.
//
// The data path: a receiving stream consumes whatever arrived and counts it; a
// sending stream writes from one block of pseudo-random bytes (as iperf3 sends) the
// server keeps for every test, as much as the send buffer takes, and again when room
// opens. Nothing is allocated per segment.

import OasisLoop
import OasisNet

/// The bounds of an ``IPerf3Server``.
public struct IPerf3ServerLimits: Sendable {
    /// The longest parameters or results document accepted.
    public var maximumJSONLength = 64 * 1024
    /// How long the client may take over each step of the control exchange: its
    /// cookie, its parameters, opening its data connections, its results, IPERF_DONE.
    public var controlTimeout: Duration = .seconds(10)
    /// How long past its requested time (and omitted start) a test may run before the
    /// server gives up on the client's TEST_END (iperf3's own grace: 40 s).
    public var gracePeriod: Duration = .seconds(40)
    /// The longest a test ended by bytes or blocks (no time given) may run.
    public var maximumTestDuration: Duration = .seconds(IPerf3.maximumDuration)
    /// The most data connections one test may ask for.
    public var maximumStreams = IPerf3.maximumStreams
    /// Connections accepted during stream creation whose cookie has not arrived yet;
    /// beyond it, new ones are refused with ACCESS_DENIED.
    public var pendingConnections = 16

    public init() {}
}

/// What one test did, handed to ``IPerf3Server/onTestEnd`` when it is over.
public struct IPerf3TestSummary: Sendable, CustomStringConvertible {
    /// The client's control connection.
    public var client: StreamEndpoint
    /// What it asked for (iperf3's defaults if it never said).
    public var parameters: IPerf3Parameters
    /// Bytes the server received and sent on the data connections while the test ran.
    public var bytesReceived: UInt64
    public var bytesSent: UInt64
    /// From TEST_RUNNING to TEST_END (0 if the test never ran).
    public var seconds: Double
    /// Why it failed, or nil when it ran to IPERF_DONE.
    public var error: IPerf3Error?

    public var description: String {
        var text = "iperf3 test from \(client)"
        if seconds > 0 || error == nil {
            let direction =
                parameters.bidirectional ? "both ways" : parameters.reverse ? "reverse" : "forward"
            text +=
                ": \(parameters.parallel) stream\(parameters.parallel == 1 ? "" : "s") \(direction)"
            if bytesReceived > 0 || !parameters.reverse {
                text += ", received \(bytesReceived) bytes"
                text += " (\(IPerf3Report.gigabits(bytesReceived, seconds)) Gbit/s)"
            }
            if bytesSent > 0 || parameters.reverse || parameters.bidirectional {
                text +=
                    ", sent \(bytesSent) bytes (\(IPerf3Report.gigabits(bytesSent, seconds)) Gbit/s)"
            }
            text += " in \(IPerf3Report.fixed(seconds, 2)) s"
        }
        if let error { text += "; failed: \(error)" }
        return text
    }
}

/// Counters of an ``IPerf3Server``.
public struct IPerf3ServerStatistics: Hashable, Sendable {
    /// Control connections taken on as a test (cookie awaited).
    public var testsStarted: UInt64 = 0
    /// Tests that ran to IPERF_DONE (or whose client left after its results).
    public var testsCompleted: UInt64 = 0
    /// Tests that ended otherwise: a bad cookie or document, a refusal, a timeout, a
    /// client that went away.
    public var testsFailed: UInt64 = 0
    /// Connections answered ACCESS_DENIED: a second client during a test, a data
    /// connection with the wrong cookie, one too many waiting for its cookie.
    public var connectionsDenied: UInt64 = 0
    /// Data bytes received and sent while tests ran.
    public var bytesReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0

    public init() {}

    public var summary: String {
        "tests \(testsStarted) started, \(testsCompleted) completed, \(testsFailed) failed; "
            + "\(connectionsDenied) connections denied; \(bytesReceived) bytes received, "
            + "\(bytesSent) sent"
    }
}

/// An iperf3 server over any ``StreamService``: `iperf3 -c HOST` (with `-R`, `-P N`,
/// `--bidir`, `-l`, `-t`, `-n`, `-k`, `-O`, `--json`) runs against it.
///
/// ```swift
/// let server = try IPerf3Server(service: stack)                 // port 5201
/// server.onTestEnd = { summary in Console.log("oasis: \(summary)") }
/// ```
///
/// TCP only: a UDP or SCTP test is refused with SERVER_ERROR ("protocol does not
/// exist"), which the client prints. No-delay (`-N`) and a congestion control the
/// surface has (`-C reno`, `-C cubic`) are applied to the data connections; a window
/// (`-w`), an MSS (`-M`) and a TCP bitrate (`-b`) are not.
public final class IPerf3Server<Service: StreamService> {
    public let limits: IPerf3ServerLimits
    /// Called on the loop when a test ends, well or not.
    public var onTestEnd: ((IPerf3TestSummary) -> Void)?
    public private(set) var statistics = IPerf3ServerStatistics()

    private let service: Service
    private var listener: Service.Listener?
    private var test: Test?
    /// Refused connections waiting for their client to close.
    private var denied = 0
    /// What sending streams write: pseudo-random bytes, grown to the largest block a
    /// test asked for and kept.
    private var block = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    /// Listens on `port` of `service` and serves iperf3 tests on its loop.
    ///
    /// - Throws: the ``StreamError`` of listening (``StreamError/addressInUse(_:)``).
    public init(
        service: Service, port: UInt16 = IPerf3.defaultPort,
        limits: IPerf3ServerLimits = IPerf3ServerLimits()
    ) throws(StreamError) {
        self.service = service
        self.limits = limits
        listener = try service.listen(port: port, backlog: 128) { [weak self] connection in
            guard let self else { return connection.reset() }
            self.accept(connection)
        }
    }

    /// A server dropped without ``close()`` stops listening and ends its test.
    deinit {
        close()
        block.deallocate()
    }

    /// Where the server listens (the port the service picked, for port 0).
    public var local: StreamEndpoint? { listener?.local }

    /// Whether no test is under way (the next client is served at once).
    public var isIdle: Bool { test == nil }

    /// Stops listening and aborts the test under way, if any.
    public func close() {
        listener?.close()
        listener = nil
        if let test { finish(test, error: .serverTerminated, message: .serverTerminate) }
    }

    // MARK: Connections

    private func accept(_ connection: Service.Connection) {
        guard let test else { return begin(connection) }
        if test.phase == .creatingStreams && test.pending.count < limits.pendingConnections {
            expectCookie(on: connection, for: test)
        } else {
            deny(connection)
        }
    }

    /// A connection the server will not serve: ACCESS_DENIED, then the end of the
    /// stream. What the client sent (its cookie) is drained until it closes too: a
    /// close with those bytes unread would answer with a reset, which can reach the
    /// client before it has read the refusal. A client that does not close is reset
    /// after the control timeout, and beyond a bound of such connections at once, at
    /// the moment of the refusal.
    private func deny(_ connection: Service.Connection) {
        statistics.connectionsDenied &+= 1
        _ = try? connection.write([IPerf3Message.accessDenied.byte])
        guard denied < limits.pendingConnections else { return connection.reset() }
        denied += 1
        connection.shutdownWrite()
        connection.onReceive { [weak connection] input in
            input.consume(input.count)
            if input.isFinished { connection?.close() }
        }
        connection.onClose { [weak self] _ in self?.denied -= 1 }
        _ = service.loop.schedule(after: limits.controlTimeout) { [weak connection] in
            guard let connection else { return }
            if case .closed = connection.state { return }
            connection.reset()
        }
    }

    /// A control connection while idle: a new test, its cookie awaited.
    private func begin(_ control: Service.Connection) {
        statistics.testsStarted &+= 1
        let test = Test(control: control)
        self.test = test
        control.noDelay = true  // as iperf3's: its messages are single bytes
        control.receiveCapacity = max(control.receiveCapacity, 4 + limits.maximumJSONLength)
        control.onReceive { [weak self, weak test] input in
            guard let self, let test, self.test === test else { return }
            self.controlReceived(&input, test)
        }
        control.onWritable { [weak self, weak test] in
            guard let self, let test, self.test === test else { return }
            self.flushControl(test)
        }
        control.onClose { [weak self, weak test] error in
            guard let self, let test, self.test === test else { return }
            if test.phase == .displayResults {
                self.finish(test, error: nil)  // it left without IPERF_DONE: it has its results
            } else {
                self.finish(test, error: error.map { .stream($0) } ?? .controlClosed)
            }
        }
        arm(test, after: limits.controlTimeout, "waiting for the cookie")
    }

    // MARK: The control connection

    private func controlReceived(_ input: inout StreamInput, _ test: Test) {
        do {
            while self.test === test, try step(&input, test) {}
        } catch {
            let code: IPerf3ErrorCode?
            switch (error, test.phase) {
            case (.refused(let refusal, _), _): code = refusal
            case (.badCookie, _): code = nil
            case (.unexpectedMessage, _): code = .message
            case (_, .parameters): code = .receiveParameters
            case (_, .clientResults): code = .receiveResults
            default: code = nil
            }
            return finish(test, error: error, code: code)
        }
        guard self.test === test, input.isFinished else { return }
        if test.phase == .displayResults {
            finish(test, error: nil)
        } else {
            finish(test, error: .controlClosed)
        }
    }

    /// Takes the next message of the current phase from `input`; false when it is not
    /// all there yet.
    private func step(_ input: inout StreamInput, _ test: Test) throws(IPerf3Error) -> Bool {
        switch test.phase {
        case .cookie:
            guard input.count >= IPerf3.cookieSize else { return false }
            let cookie = input.read(IPerf3.cookieSize)
            guard IPerf3.isPlausibleCookie(cookie) else { throw .badCookie }
            test.cookie = cookie
            test.phase = .parameters
            sendControl(test, [IPerf3Message.parameterExchange.byte])
            arm(test, after: limits.controlTimeout, "waiting for the parameters")
        case .parameters:
            guard let json = try IPerf3.readJSON(&input, limit: limits.maximumJSONLength) else {
                return false
            }
            let parameters = try IPerf3Parameters(json: json)
            test.parameters = parameters
            try parameters.validate(maximumStreams: limits.maximumStreams)
            test.receiversExpected = parameters.reverse ? 0 : parameters.parallel
            test.sendersExpected =
                parameters.reverse || parameters.bidirectional ? parameters.parallel : 0
            test.phase = .creatingStreams
            sendControl(test, [IPerf3Message.createStreams.byte])
            arm(test, after: limits.controlTimeout, "waiting for the data connections")
        case .creatingStreams, .running:
            guard !input.isEmpty else { return false }
            let byte = Int8(bitPattern: input[0])
            input.consume(1)
            switch IPerf3Message(rawValue: byte) {
            case .testEnd where test.phase == .running:
                endTest(test)
            case .clientTerminate:
                throw .clientTerminated
            case .testStart, .testRunning, .iperfDone:
                break  // iperf3's server lets these pass
            default:
                throw .unexpectedMessage(byte)
            }
        case .clientResults:
            guard let json = try IPerf3.readJSON(&input, limit: limits.maximumJSONLength) else {
                return false
            }
            _ = try IPerf3Results(json: json)
            sendControl(
                test, IPerf3.framed(results(of: test).json) + [IPerf3Message.displayResults.byte])
            test.phase = .displayResults
            arm(test, after: limits.controlTimeout, "waiting for IPERF_DONE")
        case .displayResults:
            guard !input.isEmpty else { return false }
            let byte = Int8(bitPattern: input[0])
            input.consume(1)
            guard byte == IPerf3Message.iperfDone.rawValue else { throw .unexpectedMessage(byte) }
            finish(test, error: nil)
        }
        return true
    }

    /// Writes `bytes` on the control connection; what its send buffer does not take
    /// waits for room (a few bytes, or a results document).
    private func sendControl(_ test: Test, _ bytes: [UInt8]) {
        guard test.unsent.isEmpty else { return test.unsent += bytes }
        let taken = (try? test.control.write(bytes)) ?? 0
        if taken < bytes.count { test.unsent = Array(bytes[taken...]) }
    }

    private func flushControl(_ test: Test) {
        guard !test.unsent.isEmpty else { return }
        let taken = (try? test.control.write(test.unsent)) ?? 0
        test.unsent.removeFirst(taken)
    }

    /// Fails the test unless the next step comes within `delay`.
    private func arm(_ test: Test, after delay: Duration, _ waitingFor: String) {
        if let timer = test.timer { _ = service.loop.cancelTimer(timer) }
        test.timer = service.loop.schedule(after: delay) { [weak self, weak test] in
            guard let self, let test, self.test === test else { return }
            test.timer = nil
            self.finish(test, error: .timedOut(waitingFor))
        }
    }

    // MARK: Data connections

    /// A connection during stream creation: a data connection if it opens with the
    /// test's cookie. Connections are taken in the order they were accepted, as iperf3
    /// takes them (the first `parallel` of a bidirectional test are the ones the
    /// client sends on).
    private func expectCookie(on connection: Service.Connection, for test: Test) {
        let pending = PendingStream(connection)
        test.pending.append(pending)
        connection.onReceive { [weak self, weak test, weak pending] input in
            guard let self, let test, let pending, self.test === test, pending.verdict == nil
            else { return }
            if input.count >= IPerf3.cookieSize {
                let cookie = input.withUnsafeBytes { Array($0.prefix(IPerf3.cookieSize)) }
                input.consume(IPerf3.cookieSize)
                pending.verdict = cookie == test.cookie
            } else if input.isFinished {
                pending.verdict = false
            } else {
                return
            }
            self.promotePending(test)
        }
    }

    private func promotePending(_ test: Test) {
        while let first = test.pending.first, let verdict = first.verdict {
            test.pending.removeFirst()
            guard verdict, test.phase == .creatingStreams,
                test.streams.count < test.receiversExpected + test.sendersExpected
            else {
                deny(first.connection)
                continue
            }
            let index = test.streams.count
            let stream = DataStream(
                id: iperf3StreamID(index: index), connection: first.connection,
                isSender: index >= test.receiversExpected)
            test.streams.append(stream)
            test.parameters.configure(first.connection)
            serve(stream, of: test)
        }
        if test.phase == .creatingStreams,
            test.streams.count == test.receiversExpected + test.sendersExpected
        {
            startTest(test)
        }
    }

    private func serve(_ stream: DataStream, of test: Test) {
        let connection = stream.connection
        connection.onReceive { [weak self, weak stream, weak connection] input in
            let count = input.count
            input.consume(count)
            if input.isFinished { connection?.close() }
            guard let self, let stream, stream.counting else { return }
            stream.bytes &+= UInt64(count)
            self.statistics.bytesReceived &+= UInt64(count)
        }
        if stream.isSender {
            connection.onWritable { [weak self, weak test, weak stream] in
                guard let self, let test, let stream, self.test === test else { return }
                self.fill(stream, of: test)
            }
        }
        connection.onClose { [weak stream] _ in stream?.counting = false }
    }

    /// Writes blocks on a sending stream while its send buffer takes them (and the
    /// test's byte or block count, if it has one, is not reached).
    private func fill(_ stream: DataStream, of test: Test) {
        guard stream.counting else { return }
        let blockLength = test.parameters.blockLength
        while true {
            var length = blockLength
            if let limit = test.sendLimit {
                guard test.bytesSent < limit else { return }
                length = Int(min(UInt64(length), limit - test.bytesSent))
            }
            let taken =
                (try? stream.connection.write(UnsafeRawBufferPointer(rebasing: block[0..<length])))
                ?? 0
            guard taken > 0 else { return }
            stream.bytes &+= UInt64(taken)
            test.bytesSent &+= UInt64(taken)
            statistics.bytesSent &+= UInt64(taken)
        }
    }

    // MARK: The test

    private func startTest(_ test: Test) {
        test.phase = .running
        let parameters = test.parameters
        ensureBlock(parameters.blockLength)
        sendControl(test, [IPerf3Message.testStart.byte, IPerf3Message.testRunning.byte])
        let now = service.loop.now
        test.cpuAtStart = CPUClock(loop: service.loop)
        test.startedAt = now
        for stream in test.streams {
            stream.startedAt = now
            stream.counting = true
        }
        if parameters.reverse || parameters.bidirectional {
            if parameters.bytes > 0 {
                test.sendLimit = parameters.bytes
            } else if parameters.blocks > 0 {
                test.sendLimit = parameters.blocks &* UInt64(parameters.blockLength)
            }
        }
        let length =
            parameters.duration > 0
            ? .seconds(parameters.duration + parameters.omit) + limits.gracePeriod
            : limits.maximumTestDuration
        arm(test, after: length, "waiting for TEST_END")
        if parameters.omit > 0 {
            // The omitted start is not counted: the counts begin again when it is over.
            test.omitTimer = service.loop.schedule(after: .seconds(parameters.omit)) {
                [weak self, weak test] in
                guard let self, let test, self.test === test, test.phase == .running else {
                    return
                }
                test.omitTimer = nil
                let now = self.service.loop.now
                test.startedAt = now
                test.cpuAtStart = CPUClock(loop: self.service.loop)
                for stream in test.streams where stream.counting {
                    stream.bytes = 0
                    stream.startedAt = now
                }
            }
        }
        for stream in test.streams where stream.isSender { fill(stream, of: test) }
    }

    /// TEST_END: the counts stop, the client's results are asked for. A sending
    /// stream is closed (after what it queued): iperf3's client drains its streams
    /// with blocking reads of a whole block until then, and only the end of the stream
    /// lets the last one return. A receiving stream stays open, drained and uncounted,
    /// until the test is over (closing it with bytes arriving would reset it).
    private func endTest(_ test: Test) {
        let now = service.loop.now
        test.endedAt = now
        let cpuNow = CPUClock(loop: service.loop)
        test.cpu = cpuNow.percent(since: test.cpuAtStart ?? cpuNow)
        for stream in test.streams {
            if stream.counting { stream.endedAt = now }
            stream.counting = false
            if stream.isSender { stream.connection.close() }
        }
        if let timer = test.omitTimer { _ = service.loop.cancelTimer(timer) }
        test.omitTimer = nil
        test.phase = .clientResults
        sendControl(test, [IPerf3Message.exchangeResults.byte])
        arm(test, after: limits.controlTimeout, "waiting for the client's results")
    }

    private func results(of test: Test) -> IPerf3Results {
        var results = IPerf3Results()
        (results.cpuTotal, results.cpuUser, results.cpuSystem) = test.cpu
        results.senderHasRetransmits = test.sendersExpected > 0 ? 0 : -1
        let start = test.startedAt ?? .zero
        results.streams = test.streams.map { stream in
            IPerf3Results.Stream(
                id: stream.id, bytes: stream.bytes,
                seconds: ((stream.endedAt ?? test.endedAt ?? start) - stream.startedAt).seconds)
        }
        if test.parameters.wantsServerOutput {
            results.serverOutputText = "\(summary(of: test, error: nil))\n"
        }
        return results
    }

    private func summary(of test: Test, error: IPerf3Error?) -> IPerf3TestSummary {
        let start = test.startedAt ?? .zero
        let end = test.endedAt ?? (test.startedAt == nil ? start : service.loop.now)
        return IPerf3TestSummary(
            client: test.control.remote, parameters: test.parameters,
            bytesReceived: test.streams.filter { !$0.isSender }.reduce(0) { $0 &+ $1.bytes },
            bytesSent: test.streams.filter(\.isSender).reduce(0) { $0 &+ $1.bytes },
            seconds: (end - start).seconds, error: error)
    }

    /// Ends `test`: with `error` nil it completed; otherwise the client is told with
    /// SERVER_ERROR and `code` (when there is one to tell) or `message`, and the data
    /// connections are reset. The server is idle again.
    private func finish(
        _ test: Test, error: IPerf3Error?, code: IPerf3ErrorCode? = nil,
        message: IPerf3Message? = nil
    ) {
        guard self.test === test else { return }
        self.test = nil
        for timer in [test.timer, test.omitTimer].compactMap({ $0 }) {
            _ = service.loop.cancelTimer(timer)
        }
        if let code {
            sendControl(
                test,
                [IPerf3Message.serverError.byte] + IPerf3.bigEndian(code.rawValue)
                    + IPerf3.bigEndian(0))
        } else if let message {
            sendControl(test, [message.byte])
        }
        test.control.close()
        var lingering: [Service.Connection] = []
        for stream in test.streams {
            stream.counting = false
            if error != nil {
                stream.connection.reset()
                continue
            }
            if stream.isSender {
                // Closed at TEST_END; what it queued may still be leaving.
                stream.connection.close()
            } else {
                // The client closed its end after DISPLAY_RESULTS, but what its socket
                // still held may be on its way: drained to the end of the stream (the
                // receive handler then closes), rather than answered with resets.
                stream.connection.shutdownWrite()
            }
            // Either way, a client that neither reads nor closes is not waited for.
            lingering.append(stream.connection)
        }
        if !lingering.isEmpty {
            _ = service.loop.schedule(after: limits.controlTimeout) {
                for connection in lingering {
                    if case .closed = connection.state { continue }
                    connection.reset()
                }
            }
        }
        for pending in test.pending { pending.connection.reset() }
        test.pending = []
        if error == nil {
            statistics.testsCompleted &+= 1
        } else {
            statistics.testsFailed &+= 1
        }
        onTestEnd?(summary(of: test, error: error))
    }

    private func ensureBlock(_ length: Int) {
        guard block.count < length else { return }
        block.deallocate()
        block = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
        // Pseudo-random bytes (SplitMix64), as iperf3 sends random ones: nothing along
        // the way can compress them.
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        var offset = 0
        while offset < length {
            state &+= 0x9e37_79b9_7f4a_7c15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
            mixed ^= mixed >> 31
            for shift in stride(from: 0, to: 64, by: 8) where offset < length {
                block[offset] = UInt8(truncatingIfNeeded: mixed >> UInt64(shift))
                offset += 1
            }
        }
    }

    // MARK: State

    /// The test under way: its control connection, where it is, its streams.
    private final class Test {
        enum Phase {
            case cookie, parameters, creatingStreams, running, clientResults, displayResults
        }

        let control: Service.Connection
        var phase = Phase.cookie
        var cookie: [UInt8] = []
        var parameters = IPerf3Parameters()
        var receiversExpected = 0
        var sendersExpected = 0
        /// Connections whose cookie is awaited, in the order they were accepted.
        var pending: [PendingStream] = []
        var streams: [DataStream] = []
        /// Control bytes the send buffer did not take yet.
        var unsent: [UInt8] = []
        var timer: TimerID?
        var omitTimer: TimerID?
        var startedAt: Duration?
        var endedAt: Duration?
        var cpuAtStart: CPUClock?
        var cpu: (total: Double, user: Double, system: Double) = (0, 0, 0)
        /// Bytes the sending streams may send in all (a test ended by bytes or blocks).
        var sendLimit: UInt64?
        var bytesSent: UInt64 = 0

        init(control: Service.Connection) { self.control = control }
    }

    /// A connection accepted during stream creation, until its cookie is read.
    private final class PendingStream {
        let connection: Service.Connection
        /// Whether its cookie was the test's; nil until it has arrived.
        var verdict: Bool?

        init(_ connection: Service.Connection) { self.connection = connection }
    }

    /// One data connection of the test.
    private final class DataStream {
        let id: Int
        let connection: Service.Connection
        let isSender: Bool
        var bytes: UInt64 = 0
        var counting = false
        var startedAt: Duration = .zero
        var endedAt: Duration?

        init(id: Int, connection: Service.Connection, isSender: Bool) {
            self.id = id
            self.connection = connection
            self.isSender = isSender
        }
    }
}
