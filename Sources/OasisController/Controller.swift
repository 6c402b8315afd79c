// The controller: listens on the Stream surface, runs a channel per switch, and hands
// NOX's events to its applications, all on one loop.

import DequeModule
import OasisBits
import OasisLoop
import OasisNet
import OasisOpenFlow

/// What a controller has done, for its summary on exit.
public struct ControllerStatistics: Sendable, CustomStringConvertible {
    /// Switches that completed the handshake.
    public var joins: UInt64 = 0
    /// Switches that left after joining.
    public var leaves: UInt64 = 0
    /// Connections closed before they joined (bad version, no HELLO, timeouts).
    public var failedHandshakes: UInt64 = 0
    /// Connections accepted.
    public var connections: UInt64 = 0
    /// Every channel's counters, those open now included.
    public var channels = ChannelCounters()

    public var description: String {
        "connections \(connections), joins \(joins), leaves \(leaves), failed handshakes "
            + "\(failedHandshakes); \(channels)"
    }
}

/// The part of the controller its channels call back into (not generic over the
/// service, so ``Datapath`` is not either).
final class ControllerCore {
    let loop: EventLoop
    var applications: [any OpenFlowApplication] = []
    var subscribers: [(ControllerEvent) -> Void] = []
    var datapaths: [ObjectIdentifier: Datapath] = [:]
    var statistics = ControllerStatistics()
    var closedCounters = ChannelCounters()
    let logger: ((String) -> Void)?
    /// Where messages are encoded before they are written: one for every channel (the
    /// loop is single-threaded; a write copies out of it at once).
    private let scratch = Buffer(byteCount: 2 * maximumMessageLength)
    var eventQueues: [ObjectIdentifier: EventQueue] = [:]

    init(loop: EventLoop, logger: ((String) -> Void)?) {
        self.loop = loop
        self.logger = logger
    }

    func scratchView() -> Bits {
        (try? Bits(buffer: scratch, offset: 0, count: 0)) ?? Bits([])
    }

    func log(_ text: String) { logger?(text) }

    func emit(_ event: ControllerEvent) {
        for application in applications { event.deliver(to: application) }
        for subscriber in subscribers { subscriber(event) }
        for queue in eventQueues.values { queue.push(event) }
    }

    func joined(_ datapath: Datapath) {
        statistics.joins &+= 1
        let ports = datapath.features?.ports.count ?? 0
        log("join \(datapath): \(ports) ports, \(datapath.features?.bufferCount ?? 0) buffers")
        emit(.datapathJoin(datapath))
    }

    func left(_ datapath: Datapath, reason: DisconnectReason, wasReady: Bool) {
        datapaths[ObjectIdentifier(datapath)] = nil
        closedCounters.add(datapath.counters)
        if wasReady {
            statistics.leaves &+= 1
            log("leave \(datapath): \(reason)")
            emit(.datapathLeave(datapath, reason))
        } else {
            statistics.failedHandshakes &+= 1
            log("handshake failed \(datapath): \(reason)")
        }
    }
}

/// An OpenFlow 1.0 controller in the manner of NOX: a channel per switch on any
/// ``StreamService`` (kernel sockets, or the Oasis stack's TCP), events for the
/// applications, calls on each ``Datapath``.
///
/// ```swift
/// let loop = try EventLoop()
/// let controller = try OpenFlowController(
///     service: SocketStreams(on: loop), ports: [6633, 6653], logger: { print($0) })
/// controller.add(LearningSwitch())
/// controller.subscribe { event in if case .datapathJoin(let dp) = event { print(dp) } }
/// try loop.run()
/// ```
public final class OpenFlowController<Service: StreamService> {
    /// The limits each channel gets.
    public let limits: ChannelLimits
    /// The loop everything runs on.
    public var loop: EventLoop { service.loop }
    private let service: Service
    private var listeners: [Service.Listener] = []
    let core: ControllerCore

    /// Listens on each of `ports` of `service`.
    ///
    /// - Throws: ``StreamError/addressInUse(_:)`` and the like, from the service.
    public init(
        service: Service, ports: [UInt16] = [6633], limits: ChannelLimits = ChannelLimits(),
        logger: ((String) -> Void)? = nil
    ) throws(StreamError) {
        self.service = service
        self.limits = limits
        core = ControllerCore(loop: service.loop, logger: logger)
        for port in ports {
            let listener = try service.listen(port: port, backlog: 128) {
                [weak self] connection in
                guard let self else { return connection.reset() }
                self.accept(connection)
            }
            listeners.append(listener)
        }
    }

    deinit { close() }

    /// Where the controller listens (the ports the service picked, for port 0).
    public var endpoints: [StreamEndpoint] { listeners.map(\.local) }

    /// Adds an application: from now on it sees every event, after those added before.
    public func add(_ application: some OpenFlowApplication) {
        core.applications.append(application)
    }

    /// Calls `handler` with every event, after the applications.
    ///
    /// ```swift
    /// controller.subscribe { event in
    ///     if case .portStatus(let datapath, let status) = event { print(datapath, status) }
    /// }
    /// ```
    public func subscribe(_ handler: @escaping (ControllerEvent) -> Void) {
        core.subscribers.append(handler)
    }

    /// The events as an async sequence, for a task on the loop. At most `capacity`
    /// wait; beyond that the oldest are dropped (and counted in
    /// ``ControllerEvents/dropped``).
    ///
    /// ```swift
    /// for await event in controller.events() {
    ///     if case .datapathJoin(let datapath) = event { try await datapath.barrier() }
    /// }
    /// ```
    public func events(capacity: Int = 1024) -> ControllerEvents {
        let queue = EventQueue(capacity: capacity, loop: loop)
        core.eventQueues[ObjectIdentifier(queue)] = queue
        return ControllerEvents(queue: queue, core: core)
    }

    /// The switches connected now (joined or still in their handshake).
    public var datapaths: [Datapath] { Array(core.datapaths.values) }

    /// Counters so far, those of open channels included.
    public var statistics: ControllerStatistics {
        var statistics = core.statistics
        statistics.channels = core.closedCounters
        for datapath in core.datapaths.values { statistics.channels.add(datapath.counters) }
        return statistics
    }

    /// Stops listening and closes every channel.
    public func close() {
        for listener in listeners { listener.close() }
        listeners = []
        for datapath in Array(core.datapaths.values) { datapath.close() }
        for queue in core.eventQueues.values { queue.finish() }
        core.eventQueues = [:]
    }

    private func accept(_ connection: Service.Connection) {
        core.statistics.connections &+= 1
        let datapath = Datapath(connection: connection, loop: loop, limits: limits, core: core)
        core.datapaths[ObjectIdentifier(datapath)] = datapath
        core.log("connection from \(connection.remote)")
        datapath.start()
    }
}

// MARK: - Async forms

/// A bounded queue of events for one async reader.
final class EventQueue {
    var events = Deque<ControllerEvent>()
    let capacity: Int
    var dropped: UInt64 = 0
    var finished = false
    private var continuation: UnsafeContinuation<Void, Never>?
    let loop: EventLoop

    init(capacity: Int, loop: EventLoop) {
        self.capacity = max(capacity, 1)
        self.loop = loop
    }

    func push(_ event: ControllerEvent) {
        guard !finished else { return }
        if events.count >= capacity {
            events.removeFirst()
            dropped &+= 1
        }
        events.append(event)
        wake()
    }

    func finish() {
        finished = true
        wake()
    }

    func wake() {
        continuation?.resume()
        continuation = nil
    }

    nonisolated(nonsending) func wait() async {
        let box = UncheckedBox(self)
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                if !events.isEmpty || finished || Task.isCancelled {
                    continuation.resume()
                } else {
                    self.continuation = continuation
                }
            }
        } onCancel: {
            // Cancellation may arrive from another thread: the loop resumes the task.
            box.value.loop.execute { box.value.wake() }
        }
    }
}

/// Moves a loop-confined reference into a `@Sendable` closure that runs on that loop.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A controller's events as an async sequence (``OpenFlowController/events(capacity:)``);
/// it ends when the controller closes. Read it from a task on the controller's loop.
public final class ControllerEvents: AsyncSequence, AsyncIteratorProtocol {
    public typealias Element = ControllerEvent
    public typealias Failure = Never

    private let queue: EventQueue
    private weak var core: ControllerCore?

    init(queue: EventQueue, core: ControllerCore) {
        self.queue = queue
        self.core = core
    }

    /// Events dropped because `capacity` were already waiting.
    public var dropped: UInt64 { queue.dropped }

    /// The next event; nil once the controller closed, ``close()`` was called or the
    /// task is cancelled.
    public nonisolated(nonsending) func next() async -> ControllerEvent? {
        while true {
            if let event = queue.events.popFirst() { return event }
            if queue.finished || Task.isCancelled { return nil }
            await queue.wait()
        }
    }

    /// Stops receiving events.
    public func close() {
        queue.finish()
        core?.eventQueues[ObjectIdentifier(queue)] = nil
    }

    public func makeAsyncIterator() -> ControllerEvents { self }
}

extension Promise {
    /// Waits for the promise from a task on its loop; its error as a ``ControllerError``.
    nonisolated(nonsending) func controllerValue() async throws(ControllerError) -> Value {
        let outcome: Result<Value, any Error>
        if let settled = result {
            outcome = settled
        } else {
            let box = UncheckedBox(self)
            outcome = await withTaskCancellationHandler {
                await withUnsafeContinuation {
                    (
                        continuation: UnsafeContinuation<
                            UncheckedBox<Result<Value, any Error>>, Never
                        >
                    ) in
                    onResult { continuation.resume(returning: UncheckedBox($0)) }
                }.value
            } onCancel: {
                box.value.loop.execute { box.value.cancel() }
            }
        }
        switch outcome {
        case .success(let value): return value
        case .failure(let error as ControllerError): throw error
        case .failure: throw .cancelled
        }
    }
}
