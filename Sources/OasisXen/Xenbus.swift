// The xenbus handshake every split-driver frontend performs (netfront, blkfront): find
// the backend, follow its state through xenstore, publish our nodes, and close.

import OasisLoop

#if canImport(Glibc)
    import Glibc
#endif

/// The xenbus states both ends publish at `.../state` (io/xenbus.h).
public enum XenbusState: Int, Sendable, CustomStringConvertible {
    case unknown = 0
    case initialising = 1
    case initWait = 2
    case initialised = 3
    case connected = 4
    case closing = 5
    case closed = 6
    case reconfiguring = 7
    case reconfigured = 8

    public var description: String {
        let names = [
            "Unknown", "Initialising", "InitWait", "Initialised", "Connected", "Closing", "Closed",
            "Reconfiguring", "Reconfigured",
        ]
        return "\(rawValue) (\(names[rawValue]))"
    }
}

/// Why a Xen frontend could not connect, or why it stopped.
public enum XenFrontendError: Error, Equatable, CustomStringConvertible {
    case xen(XenError)
    case loop(LoopError)
    /// A node the toolstack must have written is missing.
    case missingNode(String)
    /// A node holds something unusable.
    case badNode(path: String, value: String)
    /// The backend did not reach the state in time.
    case timeout(waitingFor: String)
    /// The backend closed (or vanished) during the handshake; its `error` node if any.
    case backendRefused(state: Int, error: String?)
    /// The backend left the connected state while we were running.
    case backendClosed(state: Int)
    /// A shared ring index from the backend was impossible.
    case ring(SharedRingError)
    /// A transmit response named an id that is not in flight.
    case unknownTransmitID(UInt16)
    /// A receive response named an id with no buffer posted.
    case unknownReceiveID(UInt16)
    /// A receive response placed a frame outside the page it was given.
    case lengthBeyondPage(id: UInt16, offset: Int, size: Int)
    /// A block response named an id that is not in flight.
    case unknownRequestID(UInt64)
    /// A block response echoed another operation than its request's.
    case operationMismatch(id: UInt64, expected: UInt8, echoed: UInt8)
    /// A block response carried a status that is not `BLKIF_RSP_OKAY`, `ERROR` or
    /// `EOPNOTSUPP`.
    case badStatus(id: UInt64, status: Int16)
    /// The backend's device properties cannot be served (a sector size that is not a
    /// power of two from 512 to 4096, no sectors).
    case unsupportedDisk(String)

    public var description: String {
        switch self {
        case .xen(let error): return error.description
        case .loop(let error): return "\(error)"
        case .missingNode(let path): return "xenstore node \(path) is missing"
        case .badNode(let path, let value): return "xenstore node \(path) holds \"\(value)\""
        case .timeout(let what): return "timed out waiting for \(what)"
        case .backendRefused(let state, let error):
            return "the backend went to state \(state) during the handshake"
                + (error.map { ": \($0)" } ?? "")
        case .backendClosed(let state): return "the backend closed (state \(state))"
        case .ring(let error): return "misbehaving backend: \(error)"
        case .unknownTransmitID(let id):
            return "misbehaving backend: TX response for id \(id), not in flight"
        case .unknownReceiveID(let id):
            return "misbehaving backend: RX response for id \(id), not posted"
        case .lengthBeyondPage(let id, let offset, let size):
            return
                "misbehaving backend: RX id \(id) claims \(size) bytes at offset \(offset) of a 4096-byte page"
        case .unknownRequestID(let id):
            return "misbehaving backend: block response for id \(id), not in flight"
        case .operationMismatch(let id, let expected, let echoed):
            return
                "misbehaving backend: block response for id \(id) echoes operation \(echoed), not \(expected)"
        case .badStatus(let id, let status):
            return "misbehaving backend: block response for id \(id) has status \(status)"
        case .unsupportedDisk(let reason): return "unsupported disk: \(reason)"
        }
    }
}

/// The netfront's errors are every frontend's.
public typealias NetfrontError = XenFrontendError

/// The frontend's half of the xenbus handshake for one device, `device/KIND/INDEX`:
/// shared by ``Netfront`` and the block frontend.
///
/// ```swift
/// let bus = try XenbusFrontend(store: xen.store, kind: "vif", index: 0)
/// try bus.waitForBackend(until: .initWait, timeout: .seconds(10))
/// // share rings, allocate the event channel ...
/// try bus.publish([("tx-ring-ref", "8"), ("event-channel", "5")], state: .connected)
/// try bus.waitForBackend(until: .connected, timeout: .seconds(10))
/// ```
///
/// Creating it reads `backend` and `backend-id` and watches the backend's `state`;
/// ``close(timeout:)`` walks both ends through Closing and Closed and leaves ours at
/// Initialising, so that the backend can be connected again.
public struct XenbusFrontend<Store: XenStoreFacility> {
    public let store: Store
    /// `device/KIND/INDEX`.
    public let frontendPath: String
    /// The backend's xenstore directory.
    public let backendPath: String
    /// The backend's domain.
    public let backendDomain: XenDomainID
    /// The watch token on the backend's state.
    public let token: String

    /// Finds the backend of `device/kind/index` and watches its state.
    public init(store: Store, kind: String, index: Int) throws(XenFrontendError) {
        self.store = store
        frontendPath = "device/\(kind)/\(index)"
        token = "oasis-\(kind)\(index)-backend-state"
        let backend = try Self.required(store, "\(frontendPath)/backend")
        let backendID = try Self.required(store, "\(frontendPath)/backend-id")
        guard let domain = UInt16(backendID) else {
            throw .badNode(path: "\(frontendPath)/backend-id", value: backendID)
        }
        backendPath = backend
        backendDomain = XenDomainID(domain)
        let path = "\(backend)/state"
        let token = self.token
        try Self.xen { () throws(XenError) in try store.watch(path, token: token) }
    }

    /// Runs a facility call, turning its error into ours.
    public static func xen<T>(_ body: () throws(XenError) -> T) throws(XenFrontendError) -> T {
        do {
            return try body()
        } catch {
            throw .xen(error)
        }
    }

    private static func required(_ store: Store, _ path: String) throws(XenFrontendError) -> String
    {
        guard let value = try xen({ () throws(XenError) in try store.read(path, in: .none) }) else {
            throw .missingNode(path)
        }
        return value
    }

    /// A node of ours the toolstack must have written (`mac`, `virtual-device`).
    public func required(_ node: String) throws(XenFrontendError) -> String {
        try Self.required(store, "\(frontendPath)/\(node)")
    }

    /// A node the backend published (`sectors`, `feature-flush-cache`), if present.
    public func backendNode(_ node: String) throws(XenFrontendError) -> String? {
        let path = "\(backendPath)/\(node)"
        return try Self.xen { () throws(XenError) in try store.read(path, in: .none) }
    }

    /// A numeric backend node; absent is `nil`, unparseable is ``XenFrontendError/badNode(path:value:)``.
    public func backendNumber<T: FixedWidthInteger>(_ node: String, as: T.Type = T.self)
        throws(XenFrontendError) -> T?
    {
        guard let text = try backendNode(node) else { return nil }
        guard let value = T(text.trimmingSpaces) else {
            throw .badNode(path: "\(backendPath)/\(node)", value: text)
        }
        return value
    }

    /// The backend's state now (0 when unreadable).
    public func backendState() throws(XenFrontendError) -> Int {
        let path = "\(backendPath)/state"
        let text = try Self.xen { () throws(XenError) in try store.read(path, in: .none) }
        return text.flatMap { Int($0) } ?? 0
    }

    /// Writes our nodes, then our state: the backend reads the nodes when it sees it.
    public func publish(_ nodes: [(String, String)], state: XenbusState) throws(XenFrontendError) {
        for (node, value) in nodes + [("state", "\(state.rawValue)")] {
            let path = "\(frontendPath)/\(node)"
            try Self.xen { () throws(XenError) in try store.write(value, to: path, in: .none) }
        }
    }

    /// Sets our state alone.
    public func setState(_ state: XenbusState) throws(XenFrontendError) {
        try publish([], state: state)
    }

    /// Blocks until the backend's state is `wanted`, draining watch events. A backend
    /// that closes instead ends the wait with ``XenFrontendError/backendRefused(state:error:)``.
    public func waitForBackend(until wanted: XenbusState, timeout: Duration)
        throws(XenFrontendError)
    {
        let deadline = ContinuousClock.now + timeout
        let store = self.store
        let descriptor = try Self.xen { () throws(XenError) in try store.watchFileDescriptor }
        while true {
            while try Self.xen({ () throws(XenError) in try store.nextWatchEvent() }) != nil {}
            let state = try backendState()
            if state == wanted.rawValue { return }
            if state >= XenbusState.closing.rawValue
                && wanted.rawValue < XenbusState.closing.rawValue
            {
                let error = try? backendNode("error")
                throw .backendRefused(state: state, error: error ?? nil)
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw .timeout(waitingFor: "\(backendPath)/state = \(wanted)")
            }
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + 1)
            var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, min(milliseconds, 100))
        }
    }

    /// Drains pending watch events; the backend's state after them.
    public func drainWatch() throws(XenFrontendError) -> Int {
        let store = self.store
        while try Self.xen({ () throws(XenError) in try store.nextWatchEvent() }) != nil {}
        return try backendState()
    }

    /// The orderly goodbye: Closing, wait for the backend's Closing, Closed, wait for its
    /// Closed, then Initialising (ready for a new connection). With `orderly` false (the
    /// backend already failed) nothing is written. Stops watching either way.
    public func close(timeout: Duration, orderly: Bool = true) {
        if orderly {
            let wait = min(timeout, .seconds(2))
            try? setState(.closing)
            try? waitForBackend(until: .closing, timeout: wait)
            try? setState(.closed)
            try? waitForBackend(until: .closed, timeout: wait)
            try? setState(.initialising)
        }
        try? store.unwatch("\(backendPath)/state", token: token)
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var text = Substring(self)
        while text.first == " " || text.first == "\n" { text.removeFirst() }
        while text.last == " " || text.last == "\n" { text.removeLast() }
        return text
    }
}
