// The iperf3 client role, written once against the Stream surface: it runs a test
// against any iperf3 3.x server (`iperf3 -s`) from the Oasis stack or from kernel
// sockets, and reports what both sides counted.

import OasisLoop
import OasisNet

/// An iperf3 client over any ``StreamService``.
///
/// ```swift
/// var parameters = IPerf3Parameters()
/// parameters.duration = 3
/// parameters.reverse = true
/// let server = StreamEndpoint(address: IPv4Address(192, 0, 2, 1), port: 5201)
/// let report = try loop.run(until: IPerf3Client.run(on: stack, to: server, parameters: parameters))
/// for line in report.lines { Console.log(line) }
/// ```
///
/// Data connections are opened one after the other, as iperf3's client opens them, so
/// that both sides number them alike. A test ends by time (`duration`), or by bytes or
/// blocks when `duration` is 0.
public final class IPerf3Client<Service: StreamService> {
    /// Runs one test against `server` and resolves with its report once the server
    /// has sent its results; fails with an ``IPerf3Error``.
    ///
    /// - Parameter controlTimeout: how long the server may take over each step of the
    ///   control exchange (answering the cookie, the parameters, the streams, TEST_END).
    public static func run(
        on service: Service, to server: StreamEndpoint, parameters: IPerf3Parameters,
        controlTimeout: Duration = .seconds(10)
    ) -> Promise<IPerf3Report> {
        let client = IPerf3Client(
            service: service, server: server, parameters: parameters,
            controlTimeout: controlTimeout)
        client.start()
        return client.promise
    }

    private enum Phase {
        case connecting, cookieSent, parametersSent, creatingStreams, streamsReady, started
        case running, ended, serverResults, serverError, display, done
    }

    private let service: Service
    private let server: StreamEndpoint
    private let parameters: IPerf3Parameters
    private let controlTimeout: Duration
    private let promise: Promise<IPerf3Report>
    private let resolver: Resolver<IPerf3Report>
    private let cookie = IPerf3.makeCookie()
    private var phase = Phase.connecting
    private var control: Service.Connection?
    private var streams: [DataStream] = []
    private var timer: TimerID?
    private var omitTimer: TimerID?
    private var cpuAtStart: CPUClock?
    private var cpu = 0.0
    private var startedAt: Duration = .zero
    private var serverResults = IPerf3Results()
    /// What sending streams write, allocated once.
    private let block: [UInt8]
    /// Bytes counted on all streams, for a test ended by bytes or blocks.
    private var counted: UInt64 = 0

    private init(
        service: Service, server: StreamEndpoint, parameters: IPerf3Parameters,
        controlTimeout: Duration
    ) {
        self.service = service
        self.server = server
        self.parameters = parameters
        self.controlTimeout = controlTimeout
        (promise, resolver) = service.loop.makePromise(of: IPerf3Report.self)
        var state: UInt32 = 0x1234_5678
        block = (0..<max(1, min(parameters.blockLength, IPerf3.maximumBlockLength))).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    // The handlers the connections hold keep the client alive while it runs; every
    // connection is closed or reset when it ends, which releases them.

    private func start() {
        do {
            try parameters.validate()
        } catch {
            return fail(error)
        }
        // A caller that cancels the promise ends the test.
        promise.onResult { result in
            if case .failure = result, self.phase != .done { self.fail(.stream(.cancelled)) }
        }
        arm(controlTimeout, "connecting to the server")
        service.connect(to: server).onResult { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.fail(Self.streamFailure(error))
            }
        }
    }

    private func connected(_ connection: Service.Connection) {
        guard phase == .connecting else { return connection.reset() }
        control = connection
        connection.noDelay = true  // as iperf3's: its messages are single bytes
        connection.onReceive { input in self.controlReceived(&input) }
        connection.onClose { error in
            guard self.phase != .done else { return }
            self.fail(error.map { .stream($0) } ?? .controlClosed)
        }
        phase = .cookieSent
        send(cookie)
        arm(controlTimeout, "waiting for PARAM_EXCHANGE")
    }

    // MARK: The control connection

    private func controlReceived(_ input: inout StreamInput) {
        do {
            while phase != .done, try step(&input) {}
        } catch {
            return fail(error)
        }
        if phase != .done && input.isFinished { fail(.controlClosed) }
    }

    private func step(_ input: inout StreamInput) throws(IPerf3Error) -> Bool {
        switch phase {
        case .serverResults:
            guard let json = try IPerf3.readJSON(&input, limit: 1 << 20) else { return false }
            serverResults = try IPerf3Results(json: json)
            phase = .display
            arm(controlTimeout, "waiting for DISPLAY_RESULTS")
            return true
        case .serverError:
            guard input.count >= 8 else { return false }
            func number(_ at: Int) -> Int32 {
                Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(input[at + $1]) })
            }
            throw .serverError(code: number(0), errno: number(4))
        default:
            break
        }
        guard !input.isEmpty else { return false }
        let byte = Int8(bitPattern: input[0])
        input.consume(1)
        switch (IPerf3Message(rawValue: byte), phase) {
        case (.parameterExchange, .cookieSent):
            phase = .parametersSent
            send(IPerf3.framed(parameters.json))
            arm(controlTimeout, "waiting for CREATE_STREAMS")
        case (.createStreams, .parametersSent):
            phase = .creatingStreams
            arm(controlTimeout, "opening the data connections")
            openStream()
        case (.testStart, .streamsReady):
            phase = .started
        case (.testRunning, .started):
            run()
        case (.exchangeResults, .ended):
            phase = .serverResults
            send(IPerf3.framed(results().json))
            arm(controlTimeout, "waiting for the server's results")
        case (.displayResults, .display):
            complete()
        case (.accessDenied, _):
            throw .accessDenied
        case (.serverError, _):
            phase = .serverError
        case (.serverTerminate, _):
            throw .serverTerminated
        default:
            throw .unexpectedMessage(byte)
        }
        return true
    }

    private func send(_ bytes: [UInt8]) {
        guard let control else { return }
        // Control messages are small: a send buffer that cannot take one is broken.
        let taken = (try? control.write(bytes)) ?? 0
        if taken < bytes.count { fail(.controlClosed) }
    }

    private func arm(_ delay: Duration, _ waitingFor: String) {
        if let timer { _ = service.loop.cancelTimer(timer) }
        timer = service.loop.schedule(after: delay) {
            self.timer = nil
            self.fail(.timedOut(waitingFor))
        }
    }

    // MARK: Data connections

    /// Opens the next data connection: the client's sending ones first (all of them,
    /// or the first half of a bidirectional test), as iperf3 does.
    private func openStream() {
        let index = streams.count
        guard index < totalStreams else {
            phase = .streamsReady
            arm(controlTimeout, "waiting for TEST_START")
            return
        }
        service.connect(to: server).onResult { result in
            guard self.phase == .creatingStreams else {
                if case .success(let connection) = result { connection.reset() }
                return
            }
            switch result {
            case .success(let connection):
                let sends =
                    self.parameters.bidirectional
                    ? index < self.parameters.parallel : !self.parameters.reverse
                let stream = DataStream(
                    id: iperf3StreamID(index: index), connection: connection, sends: sends)
                self.streams.append(stream)
                self.parameters.configure(connection)
                _ = try? connection.write(self.cookie)
                self.serve(stream)
                self.openStream()
            case .failure(let error):
                self.fail(Self.streamFailure(error))
            }
        }
    }

    private var totalStreams: Int {
        parameters.bidirectional ? 2 * parameters.parallel : parameters.parallel
    }

    private func serve(_ stream: DataStream) {
        let connection = stream.connection
        connection.onReceive { input in
            let count = input.count
            input.consume(count)  // after the end too: the server may still be sending
            guard stream.counting else { return }
            stream.bytes &+= UInt64(count)
            self.counted(count)
        }
        if stream.sends {
            connection.onWritable { self.fill(stream) }
        }
    }

    private func fill(_ stream: DataStream) {
        while stream.counting {
            let taken = block.withUnsafeBytes { bytes in (try? stream.connection.write(bytes)) ?? 0
            }
            guard taken > 0 else { return }
            stream.bytes &+= UInt64(taken)
            counted(taken)
        }
    }

    /// Ends a test that ends by bytes or blocks once they have been counted.
    private func counted(_ count: Int) {
        counted &+= UInt64(count)
        guard phase == .running, parameters.duration == 0 else { return }
        let limit =
            parameters.bytes > 0
            ? parameters.bytes : parameters.blocks &* UInt64(parameters.blockLength)
        if limit > 0 && counted >= limit { end() }
    }

    // MARK: The test

    private func run() {
        phase = .running
        let now = service.loop.now
        startedAt = now
        cpuAtStart = CPUClock(loop: service.loop)
        for stream in streams {
            stream.counting = true
            stream.startedAt = now
        }
        if parameters.duration > 0 {
            if let timer { _ = service.loop.cancelTimer(timer) }
            timer = service.loop.schedule(after: .seconds(parameters.duration + parameters.omit)) {
                self.timer = nil
                self.end()
            }
        } else {
            arm(.seconds(IPerf3.maximumDuration), "for the bytes or blocks to be counted")
        }
        if parameters.omit > 0 {
            omitTimer = service.loop.schedule(after: .seconds(parameters.omit)) {
                self.omitTimer = nil
                let now = self.service.loop.now
                self.cpuAtStart = CPUClock(loop: self.service.loop)
                for stream in self.streams where stream.counting {
                    stream.bytes = 0
                    stream.startedAt = now
                }
            }
        }
        for stream in streams where stream.sends { fill(stream) }
    }

    /// The time is up (or the bytes counted): the counts stop, TEST_END goes out.
    private func end() {
        guard phase == .running else { return }
        let now = service.loop.now
        for stream in streams {
            stream.counting = false
            stream.endedAt = now
        }
        cpu = cpuAtStart.map { CPUClock(loop: service.loop).percent(since: $0).total } ?? 0
        phase = .ended
        send([IPerf3Message.testEnd.byte])
        arm(controlTimeout, "waiting for EXCHANGE_RESULTS")
    }

    private func results() -> IPerf3Results {
        var results = IPerf3Results()
        let now = service.loop.now
        let percent = cpuAtStart.map { CPUClock(loop: service.loop).percent(since: $0) }
        (results.cpuTotal, results.cpuUser, results.cpuSystem) = percent ?? (0, 0, 0)
        results.senderHasRetransmits = streams.contains(where: \.sends) ? 0 : -1
        results.streams = streams.map { stream in
            IPerf3Results.Stream(
                id: stream.id, bytes: stream.bytes,
                seconds: ((stream.endedAt ?? now) - stream.startedAt).seconds)
        }
        return results
    }

    private func complete() {
        phase = .done
        if let timer { _ = service.loop.cancelTimer(timer) }
        timer = nil
        for stream in streams { stream.connection.close() }
        send([IPerf3Message.iperfDone.byte])
        control?.close()
        resolver.resolve(report())
    }

    private func report() -> IPerf3Report {
        var report = IPerf3Report(server: server, parameters: parameters)
        report.localCPU = cpu
        report.remoteCPU = serverResults.cpuTotal
        report.serverOutput = serverResults.serverOutputText
        for stream in streams {
            let theirs = serverResults.streams.first { $0.id == stream.id }
            let ours = (stream.bytes, ((stream.endedAt ?? startedAt) - stream.startedAt).seconds)
            let other = (theirs?.bytes ?? 0, theirs?.seconds ?? 0)
            let (sent, received) = stream.sends ? (ours, other) : (other, ours)
            let transfer = IPerf3Transfer(
                senderBytes: sent.0, senderSeconds: sent.1, receiverBytes: received.0,
                receiverSeconds: received.1)
            report.streams.append(
                IPerf3Report.Stream(id: stream.id, clientSends: stream.sends, transfer: transfer))
            if stream.sends {
                report.upload = report.upload ?? IPerf3Transfer()
                report.upload!.add(transfer)
            } else {
                report.download = report.download ?? IPerf3Transfer()
                report.download!.add(transfer)
            }
        }
        return report
    }

    /// Ends the test with `error`: the server is told (CLIENT_TERMINATE) unless it is
    /// the one that ended it, and every connection is reset.
    private func fail(_ error: IPerf3Error) {
        guard phase != .done else { return }
        let told: Bool
        switch error {
        case .accessDenied, .serverError, .serverTerminated, .controlClosed, .stream: told = true
        default: told = false
        }
        let reached = phase != .connecting && phase != .cookieSent
        phase = .done
        for timer in [timer, omitTimer].compactMap({ $0 }) { _ = service.loop.cancelTimer(timer) }
        timer = nil
        omitTimer = nil
        if !told && reached, let control {
            _ = try? control.write([IPerf3Message.clientTerminate.byte])
            control.close()
        } else {
            control?.reset()
        }
        for stream in streams { stream.connection.reset() }
        resolver.fail(error)
    }

    private static func streamFailure(_ error: any Error) -> IPerf3Error {
        if let error = error as? StreamError { return .stream(error) }
        return .stream(.system(operation: "\(error)", errno: 0))
    }

    /// One data connection.
    private final class DataStream {
        let id: Int
        let connection: Service.Connection
        let sends: Bool
        var bytes: UInt64 = 0
        var counting = false
        var startedAt: Duration = .zero
        var endedAt: Duration?

        init(id: Int, connection: Service.Connection, sends: Bool) {
            self.id = id
            self.connection = connection
            self.sends = sends
        }
    }
}
