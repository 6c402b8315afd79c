// A shared ring, byte for byte Xen's io/ring.h: the header, the slots, the private
// indices of each end, and the same barriers in the same places.

import CXen

/// How one kind of ring lays out its requests and responses: the C structs
/// `DEFINE_RING_TYPES(name, request, response)` is given, written and read in place.
///
/// A slot holds a request or a response (`union name_sring_entry`), so ``slotSize`` is
/// the size of the larger of the two, rounded up to the alignment of the union.
/// Fields are little-endian, as on every architecture Xen runs PV drivers on here.
public protocol RingLayout {
    associatedtype Request
    associatedtype Response
    /// `sizeof(union name_sring_entry)`.
    static var slotSize: Int { get }
    static func loadRequest(from slot: UnsafeRawPointer) -> Request
    static func storeRequest(_ request: Request, to slot: UnsafeMutableRawPointer)
    static func loadResponse(from slot: UnsafeRawPointer) -> Response
    static func storeResponse(_ response: Response, to slot: UnsafeMutableRawPointer)
}

/// What is wrong with a ring: the page it was given, or an index the other end wrote.
///
/// The shared indices are written by another domain and are not trusted: a producer
/// that claims more entries than can exist is reported here, before any slot is read.
public enum SharedRingError: Error, Equatable, CustomStringConvertible {
    /// The memory cannot hold the 64-byte header and at least one slot.
    case areaTooSmall(bytes: Int, slotSize: Int)
    /// No free request slot (front) or response slot (back).
    case full(size: Int)
    /// The peer's `req_prod` is more than the ring's size ahead of our `rsp_prod_pvt`
    /// (io/ring.h's `RING_REQUEST_PROD_OVERFLOW`).
    case requestProducerOverrun(producer: UInt32, responsesProduced: UInt32, size: Int)
    /// The peer's `rsp_prod` claims responses to requests we never pushed.
    case responseProducerOverrun(producer: UInt32, consumer: UInt32, requestsPushed: UInt32)

    public var description: String {
        switch self {
        case .areaTooSmall(let bytes, let slotSize):
            return "\(bytes) bytes cannot hold a ring header and one \(slotSize)-byte slot"
        case .full(let size): return "the \(size)-slot ring is full"
        case .requestProducerOverrun(let producer, let produced, let size):
            return
                "peer's req_prod \(producer) is more than \(size) ahead of rsp_prod_pvt \(produced)"
        case .responseProducerOverrun(let producer, let consumer, let pushed):
            return
                "peer's rsp_prod \(producer) (rsp_cons \(consumer)) answers requests never pushed (req_prod \(pushed))"
        }
    }
}

/// The shared page's header and slot arithmetic (`struct name_sring`): `req_prod`,
/// `req_event`, `rsp_prod`, `rsp_event` (4 bytes each), then 48 bytes of padding
/// (`pvt` and `__pad`), then the slots from byte 64.
public struct SharedRingArea: @unchecked Sendable {
    /// Where the slots start.
    public static let headerSize = 64
    @usableFromInline static let requestProducer = 0
    @usableFromInline static let requestEvent = 4
    @usableFromInline static let responseProducer = 8
    @usableFromInline static let responseEvent = 12

    /// The start of the shared memory.
    public let base: UnsafeMutableRawPointer
    /// How many slots: the most that fit, rounded down to a power of two (`__RD32`).
    public let size: Int
    @usableFromInline let slotSize: Int

    /// Lays the ring over `byteCount` bytes at `base` (usually one 4 KiB page).
    public init(base: UnsafeMutableRawPointer, byteCount: Int, slotSize: Int)
        throws(SharedRingError)
    {
        let fitting = (byteCount - SharedRingArea.headerSize) / slotSize
        guard byteCount > SharedRingArea.headerSize, fitting >= 1 else {
            throw .areaTooSmall(bytes: byteCount, slotSize: slotSize)
        }
        var size = 1
        while size * 2 <= fitting { size *= 2 }
        self.base = base
        self.size = size
        self.slotSize = slotSize
    }

    /// `SHARED_RING_INIT`: producers 0, event thresholds 1, padding zeroed.
    public func initialise() {
        store(SharedRingArea.requestProducer, 0)
        store(SharedRingArea.responseProducer, 0)
        store(SharedRingArea.requestEvent, 1)
        store(SharedRingArea.responseEvent, 1)
        (base + 16).initializeMemory(as: UInt8.self, repeating: 0, count: 48)
    }

    @inlinable func load(_ offset: Int) -> UInt32 { oasis_xen_load_index(base + offset) }
    @inlinable func store(_ offset: Int, _ value: UInt32) {
        oasis_xen_store_index(base + offset, value)
    }
    @inlinable func slot(_ index: UInt32) -> UnsafeMutableRawPointer {
        base + SharedRingArea.headerSize + Int(index & UInt32(size - 1)) * slotSize
    }

    /// The shared `req_prod`, as the peer left it.
    public var requestProducer: UInt32 { load(SharedRingArea.requestProducer) }
    /// The shared `req_event`.
    public var requestEvent: UInt32 { load(SharedRingArea.requestEvent) }
    /// The shared `rsp_prod`.
    public var responseProducer: UInt32 { load(SharedRingArea.responseProducer) }
    /// The shared `rsp_event`.
    public var responseEvent: UInt32 { load(SharedRingArea.responseEvent) }
}

/// The front end of a ring (`struct name_front_ring`): it produces requests and
/// consumes responses. A netfront holds one per ring; so does a blkfront.
///
/// ```swift
/// var tx = try FrontRing<NetifTransmitLayout>(initialising: page, byteCount: 4096)
/// try tx.putRequest(request)
/// if tx.pushRequests() { try channels.notify(port) }     // only when the peer asked
/// while try tx.hasUnconsumedResponses() { let response = tx.takeResponse() … }
/// ```
///
/// The memory belongs to the caller and must outlive the ring. Not thread-safe: one
/// loop drives one end; the other end is another domain (or process).
public struct FrontRing<Layout: RingLayout> {
    public let area: SharedRingArea
    /// `req_prod_pvt`: requests written, pushed or not.
    @usableFromInline var requestProducerPrivate: UInt32
    /// `rsp_cons`: responses consumed.
    @usableFromInline var responseConsumer: UInt32
    /// The last `req_prod` we published: the limit on responses the peer may produce.
    @usableFromInline var requestsPushed: UInt32

    /// `SHARED_RING_INIT` + `FRONT_RING_INIT`: a new ring over the memory.
    public init(initialising base: UnsafeMutableRawPointer, byteCount: Int)
        throws(SharedRingError)
    {
        area = try SharedRingArea(base: base, byteCount: byteCount, slotSize: Layout.slotSize)
        area.initialise()
        requestProducerPrivate = 0
        responseConsumer = 0
        requestsPushed = 0
    }

    /// `FRONT_RING_ATTACH`: takes over a ring whose indices are all at `index`.
    public init(attaching base: UnsafeMutableRawPointer, byteCount: Int, at index: UInt32 = 0)
        throws(SharedRingError)
    {
        area = try SharedRingArea(base: base, byteCount: byteCount, slotSize: Layout.slotSize)
        requestProducerPrivate = index
        responseConsumer = index
        requestsPushed = index
    }

    /// `RING_SIZE`.
    public var size: Int { area.size }
    /// `req_prod_pvt`.
    public var privateRequestProducer: UInt32 { requestProducerPrivate }
    /// `rsp_cons`.
    public var consumedResponses: UInt32 { responseConsumer }

    /// `RING_FREE_REQUESTS`: slots neither holding a request nor an unconsumed response.
    @inlinable public var freeRequests: Int {
        area.size - Int(requestProducerPrivate &- responseConsumer)
    }

    /// Writes a request at `req_prod_pvt` and advances it (`RING_GET_REQUEST` and
    /// `req_prod_pvt++`). Not visible to the peer until ``pushRequests()``.
    @inlinable public mutating func putRequest(_ request: Layout.Request) throws(SharedRingError) {
        guard freeRequests > 0 else { throw .full(size: area.size) }
        Layout.storeRequest(request, to: area.slot(requestProducerPrivate))
        requestProducerPrivate &+= 1
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the requests written so far and
    /// says whether the peer asked to be notified of them (its `req_event` falls among
    /// the new ones).
    @inlinable public mutating func pushRequests() -> Bool {
        let old = area.load(SharedRingArea.requestProducer)
        let new = requestProducerPrivate
        XenMemoryBarrier.write()  // the back sees requests before the producer index
        area.store(SharedRingArea.requestProducer, new)
        requestsPushed = new
        XenMemoryBarrier.full()  // the back sees the index before we read req_event
        let event = area.load(SharedRingArea.requestEvent)
        return (new &- event) < (new &- old)
    }

    /// How many responses wait (`RING_HAS_UNCONSUMED_RESPONSES`), checked: a `rsp_prod`
    /// beyond the requests we pushed is an error, never a read.
    @inlinable public func unconsumedResponses() throws(SharedRingError) -> Int {
        let producer = area.load(SharedRingArea.responseProducer)
        let waiting = producer &- responseConsumer
        guard waiting <= requestsPushed &- responseConsumer else {
            throw .responseProducerOverrun(
                producer: producer, consumer: responseConsumer, requestsPushed: requestsPushed)
        }
        XenMemoryBarrier.read()  // read the responses only after the index that covers them
        return Int(waiting)
    }

    /// Reads the response at `rsp_cons` and advances it (`RING_COPY_RESPONSE`). Call
    /// only after ``unconsumedResponses()`` said one waits; the slot is read once.
    @inlinable public mutating func takeResponse() -> Layout.Response {
        let response = Layout.loadResponse(from: area.slot(responseConsumer))
        responseConsumer &+= 1
        return response
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: if nothing waits, asks the peer to notify on
    /// the next response (`rsp_event = rsp_cons + 1`) and looks once more, so a
    /// response pushed meanwhile is not missed. True when there is work.
    @inlinable public mutating func finalCheckForResponses() throws(SharedRingError) -> Bool {
        if try unconsumedResponses() > 0 { return true }
        area.store(SharedRingArea.responseEvent, responseConsumer &+ 1)
        XenMemoryBarrier.full()
        return try unconsumedResponses() > 0
    }
}

/// The back end of a ring (`struct name_back_ring`): it consumes requests and produces
/// responses. Netback holds these; Oasis uses one in tests and the bench to play it.
public struct BackRing<Layout: RingLayout> {
    public let area: SharedRingArea
    /// `rsp_prod_pvt`.
    @usableFromInline var responseProducerPrivate: UInt32
    /// `req_cons`.
    @usableFromInline var requestConsumer: UInt32

    /// `BACK_RING_ATTACH`: the front has initialised the shared page; start at `index`.
    public init(attaching base: UnsafeMutableRawPointer, byteCount: Int, at index: UInt32 = 0)
        throws(SharedRingError)
    {
        area = try SharedRingArea(base: base, byteCount: byteCount, slotSize: Layout.slotSize)
        responseProducerPrivate = index
        requestConsumer = index
    }

    /// `RING_SIZE`.
    public var size: Int { area.size }
    /// `rsp_prod_pvt`.
    public var privateResponseProducer: UInt32 { responseProducerPrivate }
    /// `req_cons`.
    public var consumedRequests: UInt32 { requestConsumer }

    /// How many requests may be taken (`RING_HAS_UNCONSUMED_REQUESTS`: the requests
    /// waiting, bounded by the response slots free), checked with
    /// `RING_REQUEST_PROD_OVERFLOW` first.
    @inlinable public func unconsumedRequests() throws(SharedRingError) -> Int {
        let producer = area.load(SharedRingArea.requestProducer)
        guard producer &- responseProducerPrivate <= UInt32(area.size) else {
            throw .requestProducerOverrun(
                producer: producer, responsesProduced: responseProducerPrivate, size: area.size)
        }
        XenMemoryBarrier.read()
        let requests = producer &- requestConsumer
        let room = UInt32(area.size) &- (requestConsumer &- responseProducerPrivate)
        return Int(min(requests, room))
    }

    /// Reads the request at `req_cons` and advances it (`RING_COPY_REQUEST`).
    @inlinable public mutating func takeRequest() -> Layout.Request {
        let request = Layout.loadRequest(from: area.slot(requestConsumer))
        requestConsumer &+= 1
        return request
    }

    /// Writes a response at `rsp_prod_pvt` and advances it. A response needs a request
    /// taken before it.
    @inlinable public mutating func putResponse(_ response: Layout.Response)
        throws(SharedRingError)
    {
        guard responseProducerPrivate != requestConsumer else { throw .full(size: area.size) }
        Layout.storeResponse(response, to: area.slot(responseProducerPrivate))
        responseProducerPrivate &+= 1
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    @inlinable public mutating func pushResponses() -> Bool {
        let old = area.load(SharedRingArea.responseProducer)
        let new = responseProducerPrivate
        XenMemoryBarrier.write()  // the front sees responses before the producer index
        area.store(SharedRingArea.responseProducer, new)
        XenMemoryBarrier.full()  // the front sees the index before we read rsp_event
        let event = area.load(SharedRingArea.responseEvent)
        return (new &- event) < (new &- old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    @inlinable public mutating func finalCheckForRequests() throws(SharedRingError) -> Bool {
        if try unconsumedRequests() > 0 { return true }
        area.store(SharedRingArea.requestEvent, requestConsumer &+ 1)
        XenMemoryBarrier.full()
        return try unconsumedRequests() > 0
    }
}
