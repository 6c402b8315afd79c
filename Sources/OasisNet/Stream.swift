// The `Stream` surface: what TCP-like applications (DNS over TCP, the OpenFlow channel)
// program against. Implemented by kernel sockets (`SocketStreams`) and, later, by the
// Oasis stack's TCP, so that one application runs on either, as with `Datagram`.
//
// In one minute: a `StreamService` listens (a callback per accepted connection) and
// connects (a promise of a connection). A `StreamConnection` has a bounded receive
// buffer, seen through `StreamInput`: the receive handler consumes what it used and
// leaves the rest (half a message waits for its end); while the buffer is full the
// connection reads nothing more from the transport (backpressure). `write` copies into
// a bounded send buffer and says how much it took; `onWritable` says when room opens.
// `shutdownWrite` half-closes, `close` closes after the queued bytes, `reset` aborts.
// Everything runs on the loop; every callback has a promise and an `async` twin.

import DequeModule
import OasisLoop
import OasisTCP
import OasisWire

/// Keepalive times (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).
public typealias StreamKeepalive = TCPKeepalive
/// A congestion control algorithm (TCP_CONGESTION).
public typealias StreamCongestionControl = CongestionAlgorithm

/// An IPv4 address and a port: where a stream listens or connects.
public typealias StreamEndpoint = DatagramEndpoint

/// Why a stream operation failed, or why a connection closed.
///
/// ```swift
/// do { let c = try await tcp.connect(to: server) } catch .refused { print("nobody there") }
/// ```
public enum StreamError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Something else listens on the endpoint (`EADDRINUSE`).
    case addressInUse(StreamEndpoint)
    /// Nothing listens at the endpoint: the peer answered a connection attempt with a reset.
    case refused(StreamEndpoint)
    /// The peer aborted the connection (a reset while it was open).
    case resetByPeer
    /// The peer stopped answering: the connection attempt or a retransmission timed out.
    case timedOut
    /// No route to the address, or the network said it is unreachable.
    case unreachable(IPv4Address)
    /// The operation needs an open connection, or an open direction, and it is closed:
    /// a write after ``StreamConnection/shutdownWrite()`` or ``StreamConnection/close()``.
    case closed
    /// The awaiting task, or the promise, was cancelled.
    case cancelled
    /// A system call failed (`errno`).
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .addressInUse(let endpoint): return "TCP \(endpoint) is in use"
        case .refused(let endpoint): return "\(endpoint) refused the connection"
        case .resetByPeer: return "the connection was reset by the peer"
        case .timedOut: return "the connection timed out"
        case .unreachable(let address): return "\(address) is unreachable"
        case .closed: return "the connection is closed"
        case .cancelled: return "cancelled"
        case .system(let operation, let code): return "\(operation) failed: errno \(code)"
        }
    }
}

/// Where a connection is in its life, as the application sees it.
///
/// ```swift
/// if case .closed(let error?) = connection.state { print("failed: \(error)") }
/// ```
public enum StreamState: Hashable, Sendable {
    /// Both directions are open.
    case open
    /// The peer finished sending (end of stream); this side may still send.
    case inputFinished
    /// This side finished sending (``StreamConnection/shutdownWrite()``); the peer may
    /// still send.
    case outputFinished
    /// Both sides are done, or ``StreamConnection/close()`` was called: the queued
    /// bytes are still leaving.
    case closing
    /// Closed: normally (`nil`: both sides finished, `close`, `reset`), or by the error.
    case closed(StreamError?)
}

/// The bytes a connection has received and the application has not consumed yet, lent
/// to a receive handler (or to ``StreamConnection/withInput(_:)``) for the duration of
/// the call. Consume what you used; what you leave is there again, followed by any
/// newer bytes, the next time.
///
/// ```swift
/// connection.onReceive { input in
///     while input.count >= 2 {                                  // length-prefixed
///         let length = Int(input[0]) << 8 | Int(input[1])
///         guard input.count >= 2 + length else { break }        // half: wait for more
///         input.consume(2)
///         handle(input.read(length))
///     }
///     if input.isFinished { connection.close() }
/// }
/// ```
public struct StreamInput: ~Copyable {
    @usableFromInline let base: UnsafeRawPointer?
    @usableFromInline let available: Int
    @usableFromInline var consumed = 0
    /// The peer has finished sending: no byte will follow those here.
    public let isFinished: Bool

    init(_ bytes: UnsafeRawBufferPointer, isFinished: Bool) {
        base = bytes.baseAddress
        available = bytes.count
        self.isFinished = isFinished
    }

    /// Bytes not yet consumed.
    @inlinable public var count: Int { available - consumed }

    /// No bytes are waiting.
    @inlinable public var isEmpty: Bool { available == consumed }

    /// The byte `offset` bytes after the first unconsumed one.
    ///
    /// - Precondition: `offset < count`.
    @inlinable public subscript(offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < count, "StreamInput: offset \(offset) of \(count)")
        return base!.load(fromByteOffset: consumed + offset, as: UInt8.self)
    }

    /// Runs `body` over the unconsumed bytes, in place (do not keep the pointer).
    @inlinable
    public func withUnsafeBytes<Value, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        try body(UnsafeRawBufferPointer(start: base.map { $0 + consumed }, count: count))
    }

    /// Marks the first `byteCount` bytes as used: they are dropped from the buffer.
    ///
    /// - Precondition: `byteCount <= count`.
    @inlinable public mutating func consume(_ byteCount: Int) {
        precondition(byteCount >= 0 && byteCount <= count, "StreamInput: consumed too much")
        consumed += byteCount
    }

    /// Copies out and consumes the first `byteCount` bytes (all of them, if fewer wait).
    public mutating func read(_ byteCount: Int) -> [UInt8] {
        let taken = min(max(byteCount, 0), count)
        let bytes = withUnsafeBytes { Array($0.prefix(taken)) }
        consumed += taken
        return bytes
    }

    /// How many bytes the borrower consumed.
    var consumedCount: Int { consumed }
}

/// A TCP-like service: listen for connections, connect to a listener. Implemented by
/// kernel sockets (``SocketStreams``) and, later, by the Oasis stack; write the
/// application generic over it (`some StreamService`) and it runs on either.
///
/// ```swift
/// func echo(_ connection: some StreamConnection) {
///     func pump(_ input: inout StreamInput) {
///         input.consume(input.withUnsafeBytes { (try? connection.write($0)) ?? 0 })
///         if input.isFinished && input.isEmpty { connection.close() }
///     }
///     connection.onReceive(pump)    // what the send buffer cannot take waits in the
///     connection.onWritable { connection.withInput(pump) }   // input: backpressure
/// }
/// let listener = try tcp.listen(port: 7, echo)
/// ```
public protocol StreamService: AnyObject {
    /// A connection of this service.
    associatedtype Connection: StreamConnection
    /// A listening port of this service.
    associatedtype Listener: StreamListener

    /// The loop every callback of this service runs on.
    var loop: EventLoop { get }

    /// Listens on `port` (0: a port the service picks; see ``StreamListener/local``).
    /// Each connection that completes its handshake is handed to `accept`, on the loop,
    /// already reading into its receive buffer. Up to `backlog` connections wait
    /// while the application does not accept (``StreamListener/isAccepting``); beyond
    /// that, new ones are refused or left to retry.
    ///
    /// - Throws: ``StreamError/addressInUse(_:)``, or ``StreamError/system(operation:errno:)``.
    func listen(port: UInt16, backlog: Int, _ accept: @escaping (Connection) -> Void)
        throws(StreamError) -> Listener

    /// Opens a connection to `remote`. The promise resolves with the connection once
    /// established, or fails with a ``StreamError`` (``StreamError/refused(_:)``,
    /// ``StreamError/timedOut``, ``StreamError/unreachable(_:)``, ...). Cancelling it
    /// abandons the attempt.
    ///
    /// ```swift
    /// tcp.connect(to: server).map { connection in try connection.write(hello) }
    /// ```
    func connect(to remote: StreamEndpoint) -> Promise<Connection>
}

/// A listening port. Close it to stop listening; connections already accepted stay open.
///
/// ```swift
/// listener.isAccepting = open < limit     // the rest wait in the backlog
/// ```
public protocol StreamListener: AnyObject {
    /// The address and port listened on (the port the service picked, for port 0).
    var local: StreamEndpoint { get }
    /// Connections handed to the application so far.
    var accepted: UInt64 { get }
    /// Whether connections are handed over as they arrive (the default). While false,
    /// established connections wait in the backlog.
    var isAccepting: Bool { get set }
    /// Stops listening; connections waiting in the backlog are refused.
    func close()
}

/// One TCP-like connection, confined to its service's loop.
///
/// Receiving: the bytes received and not consumed sit in a receive buffer of
/// ``receiveCapacity`` bytes, lent to ``onReceive(_:)``'s handler as a ``StreamInput``.
/// While the buffer is full the connection reads nothing from the transport, so a
/// sender that outruns the application is slowed down by the transport's own flow
/// control (the kernel's window, or the Oasis stack's).
///
/// Sending: ``write(_:)`` copies into a send buffer of ``sendCapacity`` bytes and says
/// how many it took; the connection sends them in the background (writes made in one
/// loop turn leave together). When a write was cut short, ``onWritable(_:)``'s handler
/// runs once room opens.
///
/// ```swift
/// connection.onReceive { input in answer(&input, on: connection) }
/// connection.onWritable { resumeAnswering(connection) }
/// connection.onClose { error in forget(connection, error) }
/// ```
///
/// Handlers are released when the connection closes.
public protocol StreamConnection: AnyObject {
    /// This side's address and port.
    var local: StreamEndpoint { get }
    /// The peer's address and port.
    var remote: StreamEndpoint { get }
    /// Where the connection is in its life.
    var state: StreamState { get }

    /// Whether short writes go at once rather than wait for outstanding data's
    /// acknowledgment (TCP_NODELAY: Nagle's algorithm off). On by default on kernel
    /// sockets, whose writes the surface already gathers per loop turn; off by
    /// default on the Oasis stack, as in a kernel socket.
    var noDelay: Bool { get set }
    /// Keepalive probes on an idle connection, or nil (the default: off).
    ///
    /// ```swift
    /// connection.keepalive = StreamKeepalive(idle: .seconds(60), interval: .seconds(10), count: 5)
    /// ```
    var keepalive: StreamKeepalive? { get set }
    /// The congestion control algorithm (TCP_CONGESTION); CUBIC by default.
    var congestionControl: StreamCongestionControl { get set }

    /// The most bytes the receive buffer holds. Raise it to fit the application's
    /// largest message (a message longer than it can never be whole in the buffer).
    var receiveCapacity: Int { get set }
    /// The most bytes the send buffer holds.
    var sendCapacity: Int { get set }
    /// Bytes written and not yet taken by the transport.
    var sendQueued: Int { get }

    /// Calls `handler` on the loop whenever bytes arrive or the peer finishes sending,
    /// with every received byte not yet consumed. Replaces any earlier handler; set
    /// while bytes already wait, it is called for them on the next loop turn.
    ///
    /// ```swift
    /// connection.onReceive { input in print(input.read(input.count)) }
    /// ```
    func onReceive(_ handler: @escaping (inout StreamInput) -> Void)

    /// Lends the received, unconsumed bytes to `body` now (outside a receive handler):
    /// how an application that stopped consuming takes up where it left off. Reading
    /// from the transport resumes once there is room.
    ///
    /// ```swift
    /// connection.onWritable { connection.withInput { input in answer(&input) } }
    /// ```
    ///
    /// - Precondition: not called from inside this connection's receive handler.
    func withInput<Value, Failure: Error>(_ body: (inout StreamInput) throws(Failure) -> Value)
        throws(Failure) -> Value

    /// A promise resolved the next time bytes arrive, the peer finishes sending or the
    /// connection closes (at once if the input is finished or the connection closed).
    func readable() -> Promise<Void>

    /// Copies as much of `bytes` into the send buffer as it has room for and returns
    /// how many bytes it took (possibly 0).
    ///
    /// ```swift
    /// let taken = try connection.write(bytes)      // bytes[taken...] wait for onWritable
    /// ```
    ///
    /// - Throws: ``StreamError/closed`` after ``shutdownWrite()``, ``close()`` or
    ///   ``reset()``; the error that closed the connection after a failure.
    func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> Int

    /// Calls `handler` on the loop once room opens in the send buffer after a write
    /// was cut short (took fewer bytes than offered). Replaces any earlier handler.
    func onWritable(_ handler: @escaping () -> Void)

    /// A promise resolved when the send buffer has room (at once if it has) or the
    /// connection closes.
    func writable() -> Promise<Void>

    /// Half-closes: once the queued bytes are sent, tells the peer that this side has
    /// finished sending (TCP's FIN). Receiving goes on.
    func shutdownWrite()

    /// Closes gracefully: nothing more is received or delivered, the queued bytes are
    /// sent, then the connection is released (the peer sees end of stream).
    func close()

    /// Aborts: the queued bytes are dropped and the peer gets a reset (its next read
    /// or write fails with `ECONNRESET`).
    func reset()

    /// Calls `handler` on the loop once the connection has closed: with `nil` when it
    /// closed normally (both sides finished, ``close()``, ``reset()``), else with the
    /// error that ended it. Replaces any earlier handler; runs at once if closed. It
    /// may run inside the call that closed the connection (``reset()``, or
    /// ``close()`` with nothing left to send), so do not hold state half-changed there.
    func onClose(_ handler: @escaping (StreamError?) -> Void)

    /// A promise resolved, as ``onClose(_:)``'s handler is called, when the connection
    /// has closed.
    ///
    /// ```swift
    /// let error = try await connection.closed().value
    /// ```
    func closed() -> Promise<StreamError?>
}

// MARK: - Conveniences

extension StreamService {
    /// Listens with a backlog of 128 connections.
    ///
    /// ```swift
    /// let listener = try tcp.listen(port: 53) { connection in serve(connection) }
    /// ```
    public func listen(port: UInt16, _ accept: @escaping (Connection) -> Void)
        throws(StreamError) -> Listener
    {
        try listen(port: port, backlog: 128, accept)
    }

    /// Opens a connection to `remote` from async code running on the loop.
    ///
    /// ```swift
    /// let connection = try await tcp.connect(to: StreamEndpoint(address: server, port: 53))
    /// ```
    ///
    /// (In async code, the promise form needs its type spelt out:
    /// `let pending: Promise<SocketStreams.Connection> = tcp.connect(to: server)`.)
    public nonisolated(nonsending) func connect(to remote: StreamEndpoint) async throws(StreamError)
        -> Connection
    {
        let pending: Promise<Connection> = connect(to: remote)
        return try await pending.streamValue()
    }

    /// The connections arriving on `port`, as an async sequence (see ``IncomingConnections``).
    ///
    /// ```swift
    /// for await connection in try tcp.incoming(port: 7) { serve(connection) }
    /// ```
    public func incoming(port: UInt16, backlog: Int = 128) throws(StreamError)
        -> IncomingConnections<Self>
    {
        try IncomingConnections(listeningOn: port, of: self, backlog: backlog)
    }
}

extension StreamConnection {
    /// Room left in the send buffer.
    public var writableBytes: Int { max(0, sendCapacity - sendQueued) }

    /// Copies as much of `bytes` as there is room for; returns how many it took.
    ///
    /// ```swift
    /// let taken = try connection.write(Array("hello\n".utf8))
    /// ```
    public func write(_ bytes: [UInt8]) throws(StreamError) -> Int {
        try bytes.withUnsafeBytes { raw in Result { () throws(StreamError) in try write(raw) } }
            .get()
    }

    /// Waits until `parse` makes a value out of the received bytes (it is called with
    /// every unconsumed byte, each time more arrive, and consumes what it used), and
    /// returns the value; `nil` if the stream ends first (the rest stays in the buffer).
    ///
    /// ```swift
    /// let line = try await connection.read { input in
    ///     (0..<input.count).first { input[$0] == 10 }.map { input.read($0 + 1) }
    /// }
    /// ```
    ///
    /// - Throws: the error that closed the connection; ``StreamError/closed`` if it was
    ///   closed by this side; ``StreamError/cancelled``.
    public nonisolated(nonsending) func read<Value>(
        _ parse: (inout StreamInput) -> Value?
    ) async throws(StreamError) -> Value? {
        while true {
            let (value, finished) = withInput { input in (parse(&input), input.isFinished) }
            if let value { return value }
            if finished { return nil }
            if case .closed(let error) = state { throw error ?? .closed }
            try await readable().streamValue()
        }
    }

    /// Waits for bytes and returns up to `maximum` of them (consumed); `nil` at the end
    /// of the stream.
    ///
    /// ```swift
    /// while let bytes = try await connection.read() { total += bytes.count }
    /// ```
    public nonisolated(nonsending) func read(maximum: Int = .max) async throws(StreamError)
        -> [UInt8]?
    {
        try await read { input in input.isEmpty ? nil : input.read(min(maximum, input.count)) }
    }

    /// Writes all of `bytes`, waiting for room in the send buffer as often as needed.
    ///
    /// ```swift
    /// try await connection.writeAll(request)
    /// ```
    public nonisolated(nonsending) func writeAll(_ bytes: [UInt8]) async throws(StreamError) {
        var offset = 0
        while true {
            offset += try bytes.withUnsafeBytes { raw in
                Result { () throws(StreamError) in
                    try write(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                }
            }.get()
            if offset == bytes.count { return }
            try await writable().streamValue()
        }
    }
}

// MARK: - Accepting from async code

/// The connections arriving on one port, as an async sequence, on the loop:
///
/// ```swift
/// let incoming = try tcp.incoming(port: 7)
/// while let connection = await incoming.accept() { serve(connection) }
/// ```
///
/// Connections accepted while nobody waits queue up to `capacity`; beyond that the
/// listener stops accepting and the next ones wait in its backlog, until the reader
/// catches up. ``close()`` stops listening and ends the sequence.
public final class IncomingConnections<Service: StreamService>: AsyncSequence,
    AsyncIteratorProtocol
{
    public typealias Element = Service.Connection
    public typealias Failure = Never

    /// The port's listener.
    public let listener: Service.Listener
    private let inbox: Inbox
    private let waiter = LoopWaiter()

    /// What the accept callback fills and the reader empties: apart from the sequence
    /// so that the callback, made before the listener exists, can refer to it.
    private final class Inbox {
        var queue = Deque<Service.Connection>()
        var finished = false
        let capacity: Int
        weak var listener: Service.Listener?

        init(capacity: Int) { self.capacity = capacity }
    }

    /// Listens on `port` of `service`; connections arrive through the sequence.
    public init(
        listeningOn port: UInt16, of service: Service, backlog: Int = 128, capacity: Int = 16
    )
        throws(StreamError)
    {
        let inbox = Inbox(capacity: Swift.max(capacity, 1))
        let waiter = self.waiter
        listener = try service.listen(port: port, backlog: backlog) { [weak inbox] connection in
            // The sequence was dropped without close() (its deinit closes the listener,
            // but a connection may already be on its way): nobody will take this one.
            guard let inbox, !inbox.finished else {
                connection.close()
                return
            }
            inbox.queue.append(connection)
            if inbox.queue.count >= inbox.capacity { inbox.listener?.isAccepting = false }
            waiter.wake()
        }
        inbox.listener = listener
        self.inbox = inbox
    }

    /// The next connection; nil once ``close()`` was called or the task is cancelled.
    public nonisolated(nonsending) func accept() async -> Service.Connection? {
        while true {
            if let connection = inbox.queue.popFirst() {
                if !inbox.finished { listener.isAccepting = true }
                return connection
            }
            if inbox.finished || Task.isCancelled { return nil }
            await waiter.wait { [inbox] in !inbox.queue.isEmpty || inbox.finished }
        }
    }

    /// The same as ``accept()``.
    public nonisolated(nonsending) func next() async -> Service.Connection? {
        await accept()
    }

    /// Stops listening; connections accepted and not yet taken are closed, and a
    /// pending ``accept()`` returns nil.
    public func close() {
        guard !inbox.finished else { return }
        inbox.finished = true
        listener.close()
        while let connection = inbox.queue.popFirst() { connection.close() }
        waiter.wake()
    }

    /// A sequence dropped without ``close()`` (a `for await` loop left with `break`)
    /// stops listening all the same.
    deinit { close() }

    public func makeAsyncIterator() -> IncomingConnections { self }
}

/// One task waiting on the loop for something a loop callback will provide: the
/// callback calls ``wake()``, the task looks again. Task cancellation wakes it too.
final class LoopWaiter {
    private var continuation: UnsafeContinuation<Void, Never>?

    /// Suspends until ``wake()`` or task cancellation, unless `ready` says there is
    /// no need (checked once more just before suspending).
    nonisolated(nonsending) func wait(unless ready: () -> Bool) async {
        let bound = EventLoop.current.map { LoopBound(self, on: $0) }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                if ready() || Task.isCancelled {
                    continuation.resume()
                } else {
                    precondition(self.continuation == nil, "one task waits at a time")
                    self.continuation = continuation
                }
            }
        } onCancel: {
            guard let bound else { return }
            bound.loop.execute { bound.value.wake() }
        }
    }

    /// Resumes the waiting task, if any.
    func wake() {
        continuation?.resume()
        continuation = nil
    }
}

// MARK: - Waiting on a promise from async code

extension Promise {
    /// Waits for the promise from a task running on its loop, and returns its value
    /// (which need not be `Sendable`: it never leaves the loop's thread), or throws its
    /// failure as a ``StreamError``. Cancelling the task cancels the promise.
    nonisolated(nonsending) func streamValue() async throws(StreamError) -> Value {
        precondition(loop.inLoopThread, "await stream operations from a task on their loop")
        let outcome: Result<Value, any Error>
        if let settled = result {
            outcome = settled
        } else {
            let bound = LoopBound(self, on: loop)
            outcome = await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<Outcome, Never>) in
                    onResult { continuation.resume(returning: Outcome(result: $0)) }
                }.result
            } onCancel: {
                bound.loop.execute { bound.value.cancel() }
            }
        }
        switch outcome {
        case .success(let value): return value
        case .failure(let error as StreamError): throw error
        case .failure(let error) where error is Cancelled || error is CancellationError:
            throw .cancelled
        case .failure(let error): throw .system(operation: "\(error)", errno: 0)
        }
    }

    /// An outcome handed from a promise callback to the task waiting on the same thread.
    private struct Outcome: @unchecked Sendable {
        let result: Result<Value, any Error>
    }
}
