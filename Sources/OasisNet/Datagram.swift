// The `Datagram` surface: what UDP-like applications (the DNS server, echo) program
// against. Two implementations: the Oasis stack (`UDPLayer`, through `IPv4Stack`) and
// kernel sockets (`SocketDatagrams`), so one application runs on either — the
// tutorial's unix-direct and unix-socket.

import DequeModule
import OasisBits
import OasisLoop
import OasisWire

/// An IPv4 address and a port.
public struct DatagramEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16

    @inlinable
    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { "\(address):\(port)" }
}

/// One datagram received: who sent it, where to, and its payload — the packet it
/// arrived in, its window on the payload (for the Oasis stack, the device's receive
/// buffer: no copy). Whoever holds the datagram owns that buffer; sending the payload
/// back (``DatagramService/send(_:to:from:)``) hands it on, and a reply built in it
/// has the room in front for its headers.
@frozen
public struct Datagram: ~Copyable {
    public var source: DatagramEndpoint
    public var destination: DatagramEndpoint
    public var payload: Packet
    /// Sent to a broadcast address (the subnet's or 255.255.255.255), as far as the
    /// service knows: the Oasis stack does; kernel sockets do not say (false).
    public var isBroadcast: Bool

    @inlinable
    public init(
        source: DatagramEndpoint, destination: DatagramEndpoint, payload: consuming Packet,
        isBroadcast: Bool = false
    ) {
        self.source = source
        self.destination = destination
        self.payload = payload
        self.isBroadcast = isBroadcast
    }
}

/// The datagrams that arrived together for one port, handed to its listener in one call.
public typealias DatagramBatch = Batch<Datagram>

/// Why a datagram operation failed.
public enum DatagramError: Error, Equatable, CustomStringConvertible {
    /// Another listener holds the port.
    case portInUse(UInt16)
    /// The payload does not fit in one IPv4 datagram (65 507 bytes of UDP payload).
    case payloadTooLarge(Int)
    /// No buffer was free to build the datagram in.
    case noBuffers
    /// The destination is not reachable: no route to it (or the datagram could not be
    /// built on its way down). A next hop ARP has not resolved yet is not an error: the
    /// datagram waits, and is dropped (counted by the ARP cache) if ARP gives up.
    case unreachable(IPv4Address)
    /// A kernel socket call failed (`errno`).
    case system(operation: String, errno: Int32)
    /// Every listener slot is taken.
    case tooManyListeners(Int)

    public var description: String {
        switch self {
        case .portInUse(let port): return "UDP port \(port) is in use"
        case .payloadTooLarge(let size): return "a \(size)-byte payload does not fit a UDP datagram"
        case .noBuffers: return "no free buffer to send from"
        case .unreachable(let address): return "\(address) is unreachable"
        case .system(let operation, let code): return "\(operation) failed: errno \(code)"
        case .tooManyListeners(let limit): return "every one of the \(limit) listeners is in use"
        }
    }
}

/// The largest UDP payload in one IPv4 datagram.
public let maximumUDPPayload = 65_535 - 20 - 8

/// A UDP-like service: listen on ports, receive datagrams through a callback on the
/// loop, send datagrams. Implemented by the Oasis stack and by kernel sockets.
///
/// ```swift
/// try udp.listen(port: 7) { datagram in                       // one at a time
///     try? udp.send(datagram.payload, to: datagram.source, from: 7)   // echo, in place
/// }
/// try udp.listen(port: 53, batches: { batch in … })           // or all that came together
/// ```
///
/// Datagrams are owned: a handler that does not send or keep one lets it go, and its
/// buffer returns to its pool.
public protocol DatagramService: AnyObject {
    /// Delivers the datagrams arriving for `port` to `handler` in batches, on the loop:
    /// those that arrived together (a device's batch on the Oasis stack; up to 32
    /// waiting datagrams on kernel sockets), so that an application can prepare for
    /// all of them before it answers the first. The handler takes the datagrams it
    /// keeps (``Batch/take(at:)``); replies sent while a batch is handled may leave
    /// together.
    func listen(port: UInt16, batches handler: @escaping (inout DatagramBatch) -> Void)
        throws(DatagramError)
    /// Stops delivering datagrams for `port`.
    func stopListening(port: UInt16)
    /// Sends `payload` to `destination` from the local `port`, taking it over. The
    /// payload may be a received datagram's: the stack then builds the reply's headers
    /// in front of it, in the same buffer, without copying.
    func send(_ payload: consuming Packet, to destination: DatagramEndpoint, from port: UInt16)
        throws(DatagramError)
    /// An empty packet to write a payload into, with room in front for every header the
    /// service adds: bytes sent from it are copied once, into a buffer that is reused.
    func allocatePayload() throws(DatagramError) -> Packet
}

extension DatagramService {
    /// Delivers every datagram arriving for `port` to `handler`, one at a time.
    public func listen(port: UInt16, _ handler: @escaping (consuming Datagram) -> Void)
        throws(DatagramError)
    {
        try listen(port: port) { (batch: inout DatagramBatch) in
            for index in batch.indices {
                if let datagram = batch.take(at: index) { handler(datagram) }
            }
        }
    }

    /// Sends a copy of `bytes`, written into a packet from ``allocatePayload()`` (or,
    /// for a datagram larger than a pool buffer holds, one of its own).
    public func send(
        _ bytes: some Collection<UInt8>, to destination: DatagramEndpoint, from port: UInt16
    ) throws(DatagramError) {
        guard bytes.count <= maximumUDPPayload else { throw .payloadTooLarge(bytes.count) }
        var payload = try allocatePayload()
        if bytes.count > payload.tailroom {
            let headroom = payload.headroom
            guard
                let large = try? Packet(
                    buffer: Buffer(byteCount: headroom + bytes.count), offset: headroom, count: 0)
            else { throw .noBuffers }
            payload = large
        }
        do {
            try payload.append(contentsOf: bytes)
        } catch {
            throw .noBuffers
        }
        try send(payload, to: destination, from: port)
    }
}

/// A datagram as ``DatagramReceiver`` hands it out: its payload as a copyable view.
public struct ReceivedDatagram {
    public var source: DatagramEndpoint
    public var destination: DatagramEndpoint
    public var payload: Bits
}

/// Datagrams for one port as an async sequence, on the loop:
///
/// ```swift
/// for await datagram in try DatagramReceiver(listeningOn: 5353, of: udp) {
///     try udp.send(answer(datagram.payload), to: datagram.source, from: 5353)
/// }
/// ```
///
/// Datagrams that arrive while nobody is waiting queue up to `capacity`; beyond that
/// they are dropped and counted in ``dropped`` (a slow reader must not make the stack
/// hold every buffer). Confined to the loop's thread, like the views it hands out.
public final class DatagramReceiver: AsyncSequence, AsyncIteratorProtocol {
    public typealias Element = ReceivedDatagram
    public typealias Failure = Never

    private var queue = Deque<ReceivedDatagram>()
    private var waiter: UnsafeContinuation<Handover?, Never>?

    /// A datagram handed from the listener callback to the waiting task. Both run on the
    /// loop's thread (the task on the loop's executor), so nothing crosses threads; the
    /// box only tells the compiler what the loop guarantees.
    private struct Handover: @unchecked Sendable {
        let datagram: ReceivedDatagram
    }
    private var finished = false
    /// The most datagrams held while nobody reads.
    public let capacity: Int
    /// Datagrams dropped because the queue was full.
    public private(set) var dropped: UInt64 = 0
    private let stop: () -> Void
    /// The loop the receiver was made on (its waits are resumed there).
    private let loop: EventLoop?

    /// Listens on `port` of `service` and delivers what arrives through the sequence.
    public init(listeningOn port: UInt16, of service: some DatagramService, capacity: Int = 256)
        throws(DatagramError)
    {
        self.capacity = capacity
        loop = EventLoop.current
        stop = { [weak service] in service?.stopListening(port: port) }
        try service.listen(port: port) { [weak self] (datagram: consuming Datagram) in
            let source = datagram.source
            let destination = datagram.destination
            self?.deliver(
                ReceivedDatagram(
                    source: source, destination: destination, payload: Bits(datagram.payload)))
        }
    }

    private func deliver(_ datagram: ReceivedDatagram) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: Handover(datagram: datagram))
        } else if queue.count < capacity {
            queue.append(datagram)
        } else {
            dropped &+= 1
        }
    }

    /// The next datagram; nil once ``finish()`` was called.
    public nonisolated(nonsending) func next() async -> ReceivedDatagram? {
        if let datagram = takeQueued() { return datagram }
        if finished || Task.isCancelled { return nil }
        // Cancelling the waiting task ends the wait with nil (as an AsyncStream does).
        // The handler may run on any thread: it hops to the loop, where the waiter lives.
        let bound = loop.map { LoopBound(self, on: $0) }
        return await withTaskCancellationHandler {
            // The body may run after an executor hop, when a datagram has already been
            // queued: it checks the queue (and cancellation) again before it waits.
            await withUnsafeContinuation {
                (continuation: UnsafeContinuation<Handover?, Never>) in
                if let datagram = takeQueued() {
                    continuation.resume(returning: Handover(datagram: datagram))
                } else if finished || Task.isCancelled {
                    continuation.resume(returning: nil)
                } else {
                    precondition(waiter == nil, "DatagramReceiver: one reader at a time")
                    waiter = continuation
                }
            }?.datagram
        } onCancel: {
            guard let bound else { return }
            bound.loop.execute { bound.value.cancelWaiter() }
        }
    }

    /// Ends a pending wait with nil (its task was cancelled).
    private func cancelWaiter() {
        waiter?.resume(returning: nil)
        waiter = nil
    }

    /// The oldest queued datagram, released from the queue so that its buffer returns
    /// to the pool as soon as the reader drops it.
    private func takeQueued() -> ReceivedDatagram? {
        queue.popFirst()
    }

    /// Stops listening; a pending ``next()`` returns nil.
    public func finish() {
        guard !finished else { return }
        finished = true
        stop()
        waiter?.resume(returning: nil)
        waiter = nil
    }

    public func makeAsyncIterator() -> DatagramReceiver { self }
}
