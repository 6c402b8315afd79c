// One connection and one listening port of the Oasis stack's TCP, as the Stream
// surface presents them to applications.

import OasisBits
import OasisLoop
import OasisTCP
import OasisWire

extension TCPLayer {
    /// A listening port. Established connections wait in its backlog while the
    /// application does not accept; half-open ones are counted toward the SYN backlog.
    public final class Listener: StreamListener {
        public let local: StreamEndpoint
        public private(set) var accepted: UInt64 = 0
        let layer: TCPLayer
        let backlog: Int
        private let accept: (Connection) -> Void
        /// Established, not yet handed to the application.
        private var waiting: [Connection] = []
        var halfOpen = 0
        var closed = false
        /// The receive buffer new connections start with (their receive capacity).
        public var receiveCapacity: Int?

        init(
            layer: TCPLayer, local: StreamEndpoint, backlog: Int,
            accept: @escaping (Connection) -> Void
        ) {
            self.layer = layer
            self.local = local
            self.backlog = backlog
            self.accept = accept
        }

        public var isAccepting = true {
            didSet { if isAccepting { handOver() } }
        }

        /// A connection of this port completed its handshake.
        func established(_ connection: Connection) {
            guard !closed else {
                connection.reset()
                return
            }
            if isAccepting && waiting.isEmpty {
                accepted &+= 1
                accept(connection)
            } else if waiting.count < backlog {
                waiting.append(connection)
            } else {
                // The backlog is full: this one is refused (the kernel drops the ACK
                // instead and lets the peer retry; a reset tells it at once).
                connection.reset()
            }
        }

        private func handOver() {
            while isAccepting && !waiting.isEmpty {
                let connection = waiting.removeFirst()
                guard connection.tcb.state != .closed else { continue }
                accepted &+= 1
                accept(connection)
            }
        }

        public func close() {
            guard !closed else { return }
            closed = true
            if layer.listeners[local.port] === self { layer.listeners[local.port] = nil }
            for connection in waiting { connection.reset() }
            waiting = []
        }
    }

    /// One connection: the control block, the application's handlers, its place in the
    /// layer's timer queue.
    public final class Connection: StreamConnection {
        public let local: StreamEndpoint
        public var remote: StreamEndpoint {
            StreamEndpoint(
                address: IPv4Address(rawValue: key.remote),
                port: UInt16(truncatingIfNeeded: key.ports >> 16))
        }
        let key: TCPConnectionKey
        /// The layer, held while the connection is in its table (a cycle the table's
        /// removal breaks).
        let layer: TCPLayer
        @exclusivity(unchecked) var tcb: TCPControlBlock
        var listener: Listener?
        var connectPromise: Promise<Connection>?
        /// When this connection last sent a challenge ACK (RFC 5961), for its own limit.
        var lastChallengeAt = Int64.min / 2
        /// Its place in the layer's timer queue, or -1.
        var timerIndex: Int32 = -1
        // The flags, together (the object's layout follows this order).
        var isDirty = false
        var inTimeWait = false
        private var halfOpenCounted = true
        /// A write took fewer bytes than offered: ``onWritable(_:)``'s handler is due.
        private var writeWasCut = false
        /// Input waits for a receive handler set since it arrived.
        private var deliveryDue = false
        private var lending = false
        private var closeRequested = false
        private var outputFinishing = false
        /// Closed, as the application sees it (the control block may linger in TIME-WAIT).
        private var isClosed = false

        private var receiveHandler: ((inout StreamInput) -> Void)?
        private var writableHandler: (() -> Void)?
        private var closeHandler: ((StreamError?) -> Void)?
        /// The async surface's waiters, made on its first use (most connections have
        /// handlers only).
        private final class Waiters {
            var readable: [Promise<Void>] = []
            var writable: [Promise<Void>] = []
            var close: [Promise<StreamError?>] = []
        }
        private var asyncWaiters: Waiters?
        private var waiters: Waiters {
            if let asyncWaiters { return asyncWaiters }
            let made = Waiters()
            asyncWaiters = made
            return made
        }
        private var closeError: StreamError?

        init(
            layer: TCPLayer, tcb: consuming TCPControlBlock, local: StreamEndpoint,
            remote: StreamEndpoint
        ) {
            self.layer = layer
            self.tcb = tcb
            self.tcb.segmentationLimit = layer.segmentationLimit
            self.tcb.receiveBuffer.memory = layer.receiveMemory
            self.local = local
            key = TCPConnectionKey(
                remote: remote.address, remotePort: remote.port, localPort: local.port)
            halfOpenCounted = false
        }

        private var loop: EventLoop { layer.loop }

        // MARK: State

        public var state: StreamState {
            if isClosed { return .closed(closeError) }
            if closeRequested { return .closing }
            let inputDone = tcb.inputFinished
            if inputDone && outputFinishing { return .closing }
            if inputDone { return .inputFinished }
            if outputFinishing { return .outputFinished }
            return .open
        }

        /// The control block's state (RFC 9293).
        public var tcpState: TCPState { tcb.state }
        /// Counters, the round-trip estimate and the window, as `ss -ti` shows them.
        public var statistics: TCPStatistics { tcb.statistics }
        public var roundTripTime: Duration? { tcb.smoothedRoundTrip.map { .nanoseconds($0) } }
        public var congestionWindow: Int { tcb.congestion.window }
        public var slowStartThreshold: Int { tcb.congestion.slowStartThreshold }
        public var maximumSegmentSize: Int { tcb.sendMSS }

        public var noDelay: Bool {
            get { tcb.configuration.noDelay }
            set {
                tcb.setNoDelay(newValue)
                touch()
            }
        }

        public var keepalive: TCPKeepalive? {
            get { tcb.configuration.keepalive }
            set {
                tcb.setKeepalive(newValue, now: layer.nowNanoseconds)
                touch()
            }
        }

        public var congestionControl: CongestionAlgorithm {
            get { tcb.configuration.congestion }
            set { tcb.setCongestion(newValue) }
        }

        public var receiveCapacity: Int {
            get { tcb.receiveBuffer.limit }
            set { tcb.receiveBuffer.limit = max(newValue, 1) }
        }

        public var sendCapacity: Int {
            get { tcb.sendBuffer.limit }
            set { tcb.sendBuffer.limit = max(newValue, 1) }
        }

        public var sendQueued: Int { tcb.sendBuffer.count }

        // MARK: Receiving

        public func onReceive(_ handler: @escaping (inout StreamInput) -> Void) {
            guard !isClosed else { return }
            receiveHandler = handler
            if tcb.receiveBuffer.count > 0 || tcb.inputFinished {
                deliveryDue = true
                touch()
            }
        }

        public func withInput<Value, Failure: Error>(
            _ body: (inout StreamInput) throws(Failure) -> Value
        ) throws(Failure) -> Value {
            let value = try lend(body)
            touch()
            return value
        }

        public func readable() -> Promise<Void> {
            if tcb.inputFinished || isClosed || tcb.receiveBuffer.count > 0 {
                return Promise(on: loop, value: ())
            }
            let promise = Promise<Void>(on: loop)
            waiters.readable.append(promise)
            return promise
        }

        private func lend<Value, Failure: Error>(
            _ body: (inout StreamInput) throws(Failure) -> Value
        ) throws(Failure) -> Value {
            precondition(!lending, "StreamConnection: the input is already lent (nested withInput)")
            lending = true
            defer { lending = false }
            var view = StreamInput(tcb.receiveBuffer.bytes, isFinished: tcb.inputFinished)
            let value: Value
            do {
                value = try body(&view)
            } catch {
                consumeLent(view.consumedCount)
                throw error
            }
            consumeLent(view.consumedCount)
            return value
        }

        private func consumeLent(_ count: Int) {
            // The handler may have closed or reset the connection, which empties the
            // buffer it was lent: what it consumed is gone already.
            let count = min(count, tcb.receiveBuffer.count)
            guard count > 0 else { return }
            tcb.consume(count)
        }

        // MARK: Sending

        public func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> Int {
            if isClosed { throw closeError ?? .closed }
            if outputFinishing { throw .closed }
            guard !bytes.isEmpty else { return 0 }
            let taken = tcb.write(bytes)
            if taken < bytes.count { writeWasCut = true }
            if taken > 0 { touch() }
            return taken
        }

        public func onWritable(_ handler: @escaping () -> Void) {
            guard !isClosed else { return }
            writableHandler = handler
        }

        public func writable() -> Promise<Void> {
            if isClosed || tcb.sendBuffer.room > 0 { return Promise(on: loop, value: ()) }
            let promise = Promise<Void>(on: loop)
            waiters.writable.append(promise)
            return promise
        }

        // MARK: Closing

        public func shutdownWrite() {
            guard !isClosed, !outputFinishing else { return }
            outputFinishing = true
            tcb.shutdownWrite()
            touch()
        }

        public func close() {
            guard !isClosed, !closeRequested else { return }
            closeRequested = true
            outputFinishing = true
            receiveHandler = nil
            tcb.applicationClose(now: layer.nowNanoseconds)
            touch()
        }

        public func reset() {
            guard !isClosed else { return }
            tcb.abort()
            touch()
        }

        public func onClose(_ handler: @escaping (StreamError?) -> Void) {
            if isClosed {
                handler(closeError)
            } else {
                closeHandler = handler
            }
        }

        public func closed() -> Promise<StreamError?> {
            if isClosed { return Promise(on: loop, value: closeError) }
            let promise = Promise<StreamError?>(on: loop)
            waiters.close.append(promise)
            return promise
        }

        // MARK: Events

        /// Something changed from the application's side: this connection's turn comes
        /// at the end of the current batch or loop turn.
        private func touch() {
            layer.changed(self)
            layer.scheduleFlush()
        }

        /// What the control block reported, turned into the application's callbacks.
        func handle(_ events: TCPEvents) {
            if events.contains(.established) {
                if let listener, !halfOpenCounted {
                    halfOpenCounted = true
                    listener.halfOpen -= 1
                    listener.established(self)
                }
                if let promise = connectPromise {
                    connectPromise = nil
                    promise.settle(.success(self))
                }
            }
            if events.contains(.readable) || deliveryDue {
                deliveryDue = false
                if let handler = receiveHandler, !closeRequested, !isClosed,
                    tcb.receiveBuffer.count > 0 || tcb.inputFinished
                {
                    lend(handler)
                }
                if let asyncWaiters { wake(&asyncWaiters.readable) }
            }
            if events.contains(.writable) && tcb.sendBuffer.room > 0 {
                if writeWasCut, let handler = writableHandler {
                    writeWasCut = false
                    handler()
                }
                if let asyncWaiters { wake(&asyncWaiters.writable) }
            }
            if events.contains(.closed) || tcb.state == .closed || tcb.state == .timeWait {
                if tcb.state == .closed || tcb.state == .timeWait { finish() }
            }
        }

        /// The connection is over for the application: callbacks released, waiters
        /// woken, the connect promise or the listener's count settled.
        private func finish() {
            guard !isClosed else { return }
            isClosed = true
            let error = Self.streamError(
                tcb.closeReason, remote: remote, connecting: connectPromise != nil)
            closeError = error
            if let listener, !halfOpenCounted {
                halfOpenCounted = true
                listener.halfOpen -= 1
            }
            if let promise = connectPromise {
                connectPromise = nil
                promise.settle(.failure(error ?? .closed))
            }
            receiveHandler = nil
            writableHandler = nil
            let handler = closeHandler
            closeHandler = nil
            guard let asyncWaiters else {
                handler?(error)
                return
            }
            wake(&asyncWaiters.readable)
            wake(&asyncWaiters.writable)
            let waiters = asyncWaiters.close
            asyncWaiters.close = []
            handler?(error)
            for waiter in waiters { waiter.settle(.success(error)) }
        }

        static func streamError(_ reason: TCPCloseReason?, remote: StreamEndpoint, connecting: Bool)
            -> StreamError?
        {
            switch reason {
            case .none, .normal: return nil
            case .refused: return .refused(remote)
            case .reset: return connecting ? .refused(remote) : .resetByPeer
            case .timedOut: return .timedOut
            case .unreachable: return .unreachable(remote.address)
            }
        }

        private func wake(_ waiters: inout [Promise<Void>]) {
            guard !waiters.isEmpty else { return }
            let woken = waiters
            waiters = []
            for waiter in woken { waiter.settle(.success(())) }
        }
    }
}
