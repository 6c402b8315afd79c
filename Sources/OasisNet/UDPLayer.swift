// UDP over an IP layer, and the Datagram surface on it.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire

/// UDP over an IP layer (RFC 768): the ``DatagramService`` of the Oasis stack.
///
/// Datagrams that arrive during one device batch are handed to each listener as one
/// batch when the batch ends (``deliverPending()``), so an application can prepare for
/// all of them before it answers the first; a reply is built in front of the request's
/// own payload when there is room, and leaves through the IP layer below.
///
/// ```swift
/// let udp = UDPLayer(ip: ip)
/// try udp.listen(port: 7) { datagram in try? udp.send(datagram.payload, to: datagram.source, from: 7) }
/// ```
public final class UDPLayer<IP: IPLayer>: DatagramService {
    /// The IP layer below.
    public let ip: IP
    /// Datagrams delivered to listeners, and sent.
    public var datagramsDelivered: UInt64 { _datagramsDelivered }
    public var datagramsSent: UInt64 { _datagramsSent }
    @exclusivity(unchecked) @usableFromInline internal var _datagramsDelivered: UInt64 = 0
    @exclusivity(unchecked) @usableFromInline internal var _datagramsSent: UInt64 = 0
    @exclusivity(unchecked) @usableFromInline internal var ownDrops = DropCounters<UDPDropReason>()
    // Not visible to inlined code: a non-copyable stored property that is
    // (`@usableFromInline`) crashes the 6.3 optimiser ("inlining a resilient function
    // into a fragile function", in its setter). Inlined code reaches them through the
    // small methods below, which touch nothing of the layer below.
    @exclusivity(unchecked) private var listeners: ListenerTable
    /// Datagrams received in the current batch, waiting for ``deliverPending()``, and
    /// the listener each is for (a ``ListenerTable`` token: its slot and generation, so
    /// that a port stopped meanwhile, whose slot another port took, gets nothing).
    @exclusivity(unchecked) private var pending: DatagramBatch
    private let pendingListener: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var scratch: DatagramBatch

    /// The most datagrams gathered for listeners between two deliveries (a device's
    /// batch is at most ``deviceReceiveBatch`` frames).
    public static var batchCapacity: Int { 64 }

    /// UDP over `ip`, with room for `maximumListeners` listening ports.
    public init(ip: IP, maximumListeners: Int = 64) {
        self.ip = ip
        listeners = ListenerTable(capacity: maximumListeners)
        pending = DatagramBatch(capacity: Self.batchCapacity)
        scratch = DatagramBatch(capacity: Self.batchCapacity)
        pendingListener = .allocate(capacity: Self.batchCapacity)
    }

    deinit {
        pendingListener.deallocate()
    }

    /// What was dropped, and why.
    public var drops: DropCounters<UDPDropReason> { ownDrops }

    // MARK: Receive

    /// Handles one UDP datagram (`datagram` is the IP payload): checks it, and queues it
    /// for its listener, or answers port unreachable when there is none.
    @inlinable
    public func receive(_ datagram: consuming Packet, info: IPv4Info) {
        var datagram = datagram
        let sourcePort: UInt16
        let destinationPort: UInt16
        let length: Int
        do throws(UDPError) {
            let view = try UDPDatagram(checking: datagram.bytes)
            if !ip.receiveChecksums.contains(.udp)
                && !view.verifyChecksum(source: info.source, destination: info.destination)
            {
                throw UDPError.badChecksum(found: view.checksum)
            }
            sourcePort = view.sourcePort
            destinationPort = view.destinationPort
            length = view.length
        } catch {
            ownDrops.count(error.dropReason)
            return
        }
        guard let listener = listener(on: destinationPort) else {
            ownDrops.count(.noListener)
            // RFC 1122 §3.2.2.1 / §4.1.3.1: port unreachable, never for broadcasts.
            ip.sendUnreachable(.portUnreachable, about: datagram, info: info)
            return
        }
        // Checked by the view: the length is within the datagram.
        try? datagram.truncate(to: length)
        try? datagram.shift(by: UDPHeader.size)
        enqueue(
            Datagram(
                source: DatagramEndpoint(address: info.source, port: sourcePort),
                destination: DatagramEndpoint(address: info.destination, port: destinationPort),
                payload: datagram, isBroadcast: info.isBroadcast),
            for: listener)
    }

    /// The listener on `port`, if any, as a token for ``enqueue(_:for:)``.
    @usableFromInline
    internal func listener(on port: UInt16) -> Int? {
        listeners.token(of: port)
    }

    /// Gathers a datagram for `listener` until the batch ends.
    @usableFromInline
    internal func enqueue(_ datagram: consuming Datagram, for listener: Int) {
        if pending.isFull { deliverPending() }
        pendingListener[pending.count] = listener
        pending.append(datagram)
    }

    /// Hands the datagrams gathered since the last call to their listeners, a batch per
    /// listener. The stack calls it when a device batch has been handled.
    public func deliverPending() {
        let count = pending.count
        guard count > 0 else { return }
        let first = pendingListener[0]
        var single = true
        for index in 1..<count where pendingListener[index] != first {
            single = false
            break
        }
        if single {
            deliver(&pending, to: first)
            pending.removeAll()
            return
        }
        // Several listeners: each gets its own datagrams, in order, as one batch.
        for index in 0..<count {
            let listener = pendingListener[index]
            guard listener >= 0 else { continue }
            for later in index..<count where pendingListener[later] == listener {
                if let datagram = pending.take(at: later) { scratch.append(datagram) }
                pendingListener[later] = -1
            }
            deliver(&scratch, to: listener)
            scratch.removeAll()
        }
        pending.removeAll()
    }

    /// One listener's batch, unless it stopped listening since its datagrams arrived
    /// (an earlier listener's handler may stop it): then they are dropped, counted.
    private func deliver(_ batch: inout DatagramBatch, to listener: Int) {
        let count = batch.count
        if listeners.call(listener, with: &batch) {
            _datagramsDelivered &+= UInt64(count)
        } else {
            ownDrops.count(.noListener, UInt64(count))
        }
    }

    // MARK: Datagram service

    public func listen(port: UInt16, batches handler: @escaping (inout DatagramBatch) -> Void)
        throws(DatagramError)
    {
        guard listeners.index(of: port) == nil else { throw .portInUse(port) }
        guard listeners.add(port: port, handler: handler) else {
            throw .tooManyListeners(listeners.capacity)
        }
    }

    public func stopListening(port: UInt16) {
        listeners.remove(port: port)
    }

    @inlinable
    public func allocatePayload() throws(DatagramError) -> Packet {
        guard var packet = ip.allocatePacket() else { throw .noBuffers }
        // Leave room for our header too.
        _ = try? packet.move(toOffset: max(packet.offset, ip.headroom &+ UDPHeader.size), count: 0)
        return packet
    }

    @inlinable
    public func send(
        _ payload: consuming Packet, to destination: DatagramEndpoint, from port: UInt16
    ) throws(DatagramError) {
        let length = payload.count
        guard length <= maximumUDPPayload else { throw .payloadTooLarge(length) }
        var datagram = payload
        // Built in place when there is room in front for every header (a received
        // payload being answered); otherwise copied into a buffer of the device's pool.
        if datagram.headroom < UDPHeader.size &+ ip.headroom {
            datagram = try copyWithRoom(datagram)
        }
        do {
            try UDPRepr(sourcePort: port, destinationPort: destination.port).emit(
                prependingTo: &datagram, source: ip.address, destination: destination.address)
        } catch {
            throw .payloadTooLarge(length)
        }
        guard ip.send(datagram, protocol: .udp, to: destination.address) else {
            throw .unreachable(destination.address)
        }
        _datagramsSent &+= 1
    }

    /// A copy of `payload` with room in front for the headers: a pool buffer, or one of
    /// its own for a payload larger than a pool buffer holds.
    @usableFromInline
    internal func copyWithRoom(_ payload: borrowing Packet) throws(DatagramError) -> Packet {
        let room = UDPHeader.size &+ ip.headroom
        var copy: Packet
        if let pooled = try? allocatePayload(), pooled.tailroom >= payload.count {
            copy = pooled
        } else {
            guard
                let large = try? Packet(
                    buffer: Buffer(byteCount: room &+ payload.count), offset: room, count: 0)
            else { throw .noBuffers }
            copy = large
        }
        let copied = payload.withUnsafeBytes { bytes in (try? copy.append(contentsOf: bytes)) != nil
        }
        guard copied else { throw .noBuffers }
        return copy
    }
}

/// The listening ports of a UDP layer and their handlers, in fixed storage: finding a
/// port and calling its handler touch no reference count.
struct ListenerTable: ~Copyable {
    struct Listener {
        var port: UInt16
        var isActive: Bool
        /// Bumped each time the slot is taken or given up: a token names one listener.
        var generation: UInt32
        var handler: CallbackSlot<DatagramBatch>
    }

    let slots: UnsafeMutablePointer<Listener>
    let capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        slots = .allocate(capacity: self.capacity)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// The slot of the active listener on `port`.
    func index(of port: UInt16) -> Int? {
        for index in 0..<count where slots[index].port == port && slots[index].isActive {
            return index
        }
        return nil
    }

    /// The active listener on `port` as a token: its slot in the low 32 bits, the
    /// slot's generation above.
    func token(of port: UInt16) -> Int? {
        guard let index = index(of: port) else { return nil }
        return index | Int(slots[index].generation) << 32
    }

    /// Calls the listener `token` names, if it is still listening; false if not.
    func call(_ token: Int, with batch: inout DatagramBatch) -> Bool {
        let index = token & 0xffff_ffff
        guard index < count, slots[index].isActive,
            Int(slots[index].generation) == token >> 32
        else { return false }
        (slots + index).pointee.handler(&batch)
        return true
    }

    mutating func add(port: UInt16, handler: @escaping (inout DatagramBatch) -> Void) -> Bool {
        // Reuse a slot whose listener stopped (its old handler lives until then).
        for index in 0..<count where !slots[index].isActive {
            slots[index].port = port
            slots[index].isActive = true
            slots[index].generation &+= 1
            slots[index].handler.set(handler)
            return true
        }
        guard count < capacity else { return false }
        var slot = CallbackSlot<DatagramBatch>()
        slot.set(handler)
        (slots + count).initialize(
            to: Listener(port: port, isActive: true, generation: 0, handler: slot))
        count += 1
        return true
    }

    mutating func remove(port: UInt16) {
        guard let index = index(of: port) else { return }
        slots[index].isActive = false
        slots[index].generation &+= 1
        slots[index].handler.clear()
    }
}
