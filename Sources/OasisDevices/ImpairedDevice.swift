// `--impair SPEC` on any backend: loss, duplication, reordering, delay, corruption and
// a rate limit, seeded, each way on its own. The kernel here has no netem; this is ours.

import DequeModule
import OasisBits
import OasisLoop
import OasisWire

/// What an ``ImpairedDevice`` did to the frames going one way.
public struct ImpairmentCounters: Hashable, Sendable, CustomStringConvertible {
    /// Frames that came to the impairment.
    public var frames: UInt64 = 0
    /// Frames dropped by the loss stage.
    public var lost: UInt64 = 0
    /// Copies made by the duplication stage.
    public var duplicated: UInt64 = 0
    /// Frames held back to be overtaken.
    public var reordered: UInt64 = 0
    /// Frames that waited in the delay queue.
    public var delayed: UInt64 = 0
    /// Frames with a bit flipped.
    public var corrupted: UInt64 = 0
    /// Frames dropped because the rate's queue was full.
    public var rateDropped: UInt64 = 0
    /// Frames dropped because the delay or reordering queue was full, or the wrapper's
    /// pool had no buffer to copy a frame it had to hold, duplicate or corrupt.
    public var queueFull: UInt64 = 0

    public init() {}

    public var description: String {
        "frames \(frames) lost \(lost) duplicated \(duplicated) reordered \(reordered) "
            + "delayed \(delayed) corrupted \(corrupted) rate-dropped \(rateDropped) "
            + "queue-full \(queueFull)"
    }
}

/// Wraps a device and impairs the frames it carries, each way as configured: loss,
/// duplication, corruption, reordering, delay with jitter and a rate limit (see
/// ``Impairment`` for the stages and ``ImpairmentConfiguration`` for the text form).
/// It is how Oasis tests TCP under loss on a kernel without netem, and what
/// `oasis stack --impair SPEC` and `oasis dns --impair SPEC` put over their device.
///
/// ```swift
/// let loop = try EventLoop(clock: .virtual)
/// let (a, b) = MemoryDevice.pair(on: loop)
/// let lossy = ImpairedDevice(
///     a, configuration: try ImpairmentConfiguration(parsing: "loss=5%,delay=2ms,seed=7"),
///     on: loop)
/// let stack = IPv4Stack(device: lossy, configuration: …, on: loop)
/// ```
///
/// Decisions come from seeded generators (``ImpairmentDecisions``): the same seed, the
/// same configuration and the same frames give the same losses, copies and delays.
/// Held frames are released by timers on the loop, so on a virtual clock a 5 ms delay
/// costs no real time.
///
/// Memory is bounded: a frame the wrapper holds (delayed, set aside to be reordered,
/// waiting for the rate) or makes (a duplicate, a corrupted copy) lives in a buffer of
/// the wrapper's own pool (``impairmentPool``), never in the base device's, so holding
/// frames cannot starve the device of receive buffers. Each queue holds at most
/// ``Impairment/limit`` frames, and the pool makes at most enough buffers for the
/// queues; beyond that frames are dropped and counted (``ImpairmentCounters``).
///
/// A direction with no impairment costs nothing: received frames go to the handler as
/// the base delivers them (the handler is the base's own), and a transmitted frame
/// goes to the base after one test.
///
/// Like every device it lives on its loop's thread.
public final class ImpairedDevice<Base: NetworkDevice>: NetworkDevice {
    /// The device frames really go through.
    public let base: Base
    /// What is done each way.
    public let configuration: ImpairmentConfiguration
    /// Where held, duplicated and corrupted frames live.
    public let impairmentPool: BufferPool

    private let loop: EventLoop
    @exclusivity(unchecked) private var inbound: ImpairmentPipeline?
    @exclusivity(unchecked) private var outbound: ImpairmentPipeline?
    @exclusivity(unchecked) private var handler = CallbackSlot<PacketBatch>()
    @exclusivity(unchecked) private var delivery = PacketBatch(capacity: deviceReceiveBatch)
    @exclusivity(unchecked) private var isClosed = false

    /// Wraps `base`, impairing its frames as `configuration` says, with timers on `loop`
    /// (the loop `base` runs on).
    public init(_ base: Base, configuration: ImpairmentConfiguration, on loop: EventLoop) {
        self.base = base
        self.configuration = configuration
        self.loop = loop
        var buffers = 0
        for impairment in [configuration.inbound, configuration.outbound] where !impairment.isNone {
            let limit = ImpairmentPipeline.clampedLimit(impairment.limit)
            // Three queues, plus the copies in flight to the stack or the wire.
            buffers += (impairment.holdsFrames ? 3 * limit : 0) + 2 * deviceReceiveBatch
        }
        impairmentPool = BufferPool(headroom: base.pool.headroom, limit: max(1, buffers))
        if !configuration.inbound.isNone {
            inbound = ImpairmentPipeline(
                configuration.inbound, seed: configuration.seed, direction: .inbound,
                pool: impairmentPool)
        }
        if !configuration.outbound.isNone {
            outbound = ImpairmentPipeline(
                configuration.outbound, seed: configuration.seed, direction: .outbound,
                pool: impairmentPool)
        }
    }

    /// The same device, impaired as `specification` says (``ImpairmentConfiguration``'s
    /// text form).
    ///
    /// - Throws: ``ImpairmentSpecificationError`` naming the bad field.
    public convenience init(
        _ base: Base, specification: String, on loop: EventLoop
    ) throws(ImpairmentSpecificationError) {
        self.init(
            base, configuration: try ImpairmentConfiguration(parsing: specification), on: loop)
    }

    public var name: String { base.name }
    public var macAddress: MACAddress { base.macAddress }
    public var capabilities: DeviceCapabilities { base.capabilities }
    public var isLinkUp: Bool { base.isLinkUp }
    /// The base device's counters: what really crossed the wire.
    public var counters: DeviceCounters { base.counters }
    public var pool: BufferPool { base.pool }

    /// What was done to received frames.
    public var inboundCounters: ImpairmentCounters { inbound?.counters ?? ImpairmentCounters() }
    /// What was done to transmitted frames.
    public var outboundCounters: ImpairmentCounters { outbound?.counters ?? ImpairmentCounters() }
    /// Frames held right now, both ways.
    public var heldFrames: Int { (inbound?.heldCount ?? 0) + (outbound?.heldCount ?? 0) }

    /// One line for the report on exit: `in: frames … ; out: frames …`.
    public var impairmentSummary: String {
        "\(configuration) — in: \(inboundCounters); out: \(outboundCounters)"
    }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard !isClosed else { throw .closed(device: name) }
        guard inbound != nil else {
            // Nothing to do on the way in: the base calls the handler itself.
            try base.start(receiving: handler)
            return
        }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        self.handler.set(handler)
        let device = Unretained(self)
        try base.start { (batch: inout PacketBatch) in
            device.call { $0.receive(&batch) }
        }
    }

    private func receive(_ batch: inout PacketBatch) {
        guard !isClosed, let inbound else { return }
        let now = nanoseconds(loop.now)
        for index in batch.indices {
            guard let frame = batch.take(at: index) else { continue }
            inbound.process(frame, now: now) { deliver($0) }
        }
        deliverPending()
        arm(inbound, direction: .inbound)
    }

    private func deliver(_ frame: consuming Packet) {
        guard !isClosed else { return }
        delivery.append(frame)
        if delivery.isFull { deliverPending() }
    }

    private func deliverPending() {
        guard !delivery.isEmpty else { return }
        if !isClosed { handler(&delivery) }
        delivery.removeAll()
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard let outbound else {
            try base.transmit(frame)
            return
        }
        guard !isClosed else { throw .closed(device: name) }
        let limit = capabilities.maximumFrameSize
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        var failure: DeviceError?
        outbound.process(frame, now: nanoseconds(loop.now)) { out in
            do throws(DeviceError) { try base.transmit(out) } catch { failure = failure ?? error }
        }
        arm(outbound, direction: .outbound)
        if let failure { throw failure }
    }

    /// Releases what is due in `direction` and arms its timer for what is next.
    private func release(_ direction: ImpairmentDecisions.Direction) {
        guard !isClosed else { return }
        let now = nanoseconds(loop.now)
        switch direction {
        case .inbound:
            guard let inbound else { return }
            inbound.armed = nil
            inbound.release(now: now) { deliver($0) }
            deliverPending()
            arm(inbound, direction: .inbound)
        case .outbound:
            guard let outbound else { return }
            outbound.armed = nil
            outbound.release(now: now) { out in
                // A frame the base refuses now (closed under us) is gone: as on a wire.
                try? base.transmit(out)
            }
            arm(outbound, direction: .outbound)
        }
    }

    /// Keeps one timer per direction, at the earliest time something it holds is due.
    private func arm(_ pipeline: ImpairmentPipeline, direction: ImpairmentDecisions.Direction) {
        guard !isClosed else { return }
        let next = pipeline.nextDeadline()
        if let armed = pipeline.armed {
            if let next, armed.deadline <= next { return }
            loop.cancelTimer(armed.id)
            pipeline.armed = nil
        }
        guard let next else { return }
        let id = loop.schedule(at: .nanoseconds(next)) { [weak self] in self?.release(direction) }
        pipeline.armed = (next, id)
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        handler.clear()
        for pipeline in [inbound, outbound] {
            guard let pipeline else { continue }
            if let armed = pipeline.armed { loop.cancelTimer(armed.id) }
            pipeline.armed = nil
            pipeline.removeAll()
        }
        base.close()
    }

    public func onFailure(_ handler: @escaping (DeviceError) -> Void) {
        base.onFailure(handler)
    }

    /// The base device's handler holds this one unretained: dropping it closes both.
    deinit { close() }
}

/// A loop time in whole nanoseconds.
@inline(__always)
func nanoseconds(_ time: Duration) -> Int64 { nanosecondsClamped(time) }

/// The stages one direction's frames pass (see ``Impairment``), sans I/O: frames go in
/// with the time, come out through `emit`, and ``nextDeadline()`` says when to call
/// ``release(now:emit:)`` again.
final class ImpairmentPipeline {
    private struct Aside {
        /// Released once this many frames have passed in all.
        var afterPassed: UInt64
        var deadline: Int64
        var frame: Bits
    }

    private struct Delayed {
        var release: Int64
        var frame: Bits
    }

    static func clampedLimit(_ limit: Int) -> Int { min(max(limit, 1), 100_000) }

    private(set) var counters = ImpairmentCounters()
    var armed: (deadline: Int64, id: TimerID)?

    private var decisions: ImpairmentDecisions
    private let pool: BufferPool
    private let limit: Int
    private let reorderGap: UInt64
    private let reorderTimeout: Int64
    private let delays: Bool
    /// Bits per second, 0 for no limit.
    private let rate: Int64
    /// The bucket's size and what it holds, in bits times 10⁹ (so that a refill of
    /// `rate · elapsed nanoseconds` is exact).
    private let creditLimit: Int64
    private var credit: Int64
    private var creditTime: Int64 = 0

    private var aside = Deque<Aside>()
    private var passed: UInt64 = 0
    private var delayed = Deque<Delayed>()
    private var lastRelease: Int64 = 0
    private var rateQueue = Deque<Bits>()

    init(
        _ impairment: Impairment, seed: UInt64, direction: ImpairmentDecisions.Direction,
        pool: BufferPool
    ) {
        decisions = ImpairmentDecisions(impairment, seed: seed, direction: direction)
        self.pool = pool
        limit = Self.clampedLimit(impairment.limit)
        reorderGap = UInt64(min(max(impairment.reorderGap, 1), 10_000))
        reorderTimeout = min(nanosecondsClamped(impairment.reorderTimeout), 60_000_000_000)
        delays = impairment.delay > .zero || impairment.jitter > .zero
        rate = Int64(min(max(impairment.rate ?? 0, 0), 1_000_000_000_000))
        // At least a page (the largest frame a buffer holds), at most 64 MiB.
        let burstBits = Int64(min(max(impairment.burst, Buffer.pageSize), 64 << 20)) * 8
        creditLimit = burstBits * 1_000_000_000
        credit = creditLimit
        creditTime = 0
        if rate > 0 { creditTime = .min }
    }

    /// Frames held in the three queues.
    var heldCount: Int { aside.count + delayed.count + rateQueue.count }

    /// Drops every held frame (the device is closing).
    func removeAll() {
        aside.removeAll()
        delayed.removeAll()
        rateQueue.removeAll()
    }

    /// Takes one frame through the stages at time `now`; whatever leaves (the frame,
    /// its duplicate, frames released by it) goes to `emit`, in order.
    func process(_ frame: consuming Packet, now: Int64, emit: (consuming Packet) -> Void) {
        release(now: now, emit: emit)
        counters.frames &+= 1
        if decisions.loses() {
            counters.lost &+= 1
            return
        }
        var duplicate: Packet? = nil
        if decisions.duplicates() {
            do {
                duplicate = try frame.copy(into: pool)
                counters.duplicated &+= 1
            } catch {
                counters.queueFull &+= 1
            }
        }
        shape(frame, owned: false, now: now, emit: emit)
        if let duplicate = duplicate.take() { shape(duplicate, owned: true, now: now, emit: emit) }
    }

    /// Releases what is due at `now`: frames set aside too long, delays that have run
    /// out, frames the rate now lets through.
    func release(now: Int64, emit: (consuming Packet) -> Void) {
        while let first = aside.first, first.deadline <= now {
            aside.removeFirst()
            enterDelay(Packet(first.frame), owned: true, now: now, emit: emit)
        }
        while let first = delayed.first, first.release <= now {
            delayed.removeFirst()
            enterRate(Packet(first.frame), owned: true, now: now, emit: emit)
        }
        drainRate(now: now, emit: emit)
    }

    /// When something held is due next, if anything is held.
    func nextDeadline() -> Int64? {
        var next: Int64? = nil
        func consider(_ time: Int64) { next = min(next ?? time, time) }
        if let first = aside.first { consider(first.deadline) }
        if let first = delayed.first { consider(first.release) }
        if let first = rateQueue.first, rate > 0 {
            let missing = cost(of: first.count) - credit
            let wait = missing <= 0 ? 0 : (missing + rate - 1) / rate
            consider(creditTime &+ wait)
        }
        return next
    }

    // MARK: Stages

    /// The frame in the wrapper's pool: itself if it is there already, else a copy.
    private func own(_ frame: consuming Packet, owned: Bool) -> Packet? {
        if owned { return frame }
        return try? frame.copy(into: pool)
    }

    private func shape(
        _ frame: consuming Packet, owned: Bool, now: Int64, emit: (consuming Packet) -> Void
    ) {
        var frame = frame
        var owned = owned
        if let bit = decisions.corruptedBit(frameLength: frame.count) {
            // Flipped in a copy: the buffer may be shared (a frame a sender keeps).
            guard var copy = own(frame, owned: owned) else {
                counters.queueFull &+= 1
                return
            }
            let offset = bit / 8
            if let byte = try? copy.read(UInt8.self, at: offset) {
                try? copy.write(byte ^ UInt8(1 << (bit % 8)), at: offset)
                counters.corrupted &+= 1
            }
            frame = copy
            owned = true
        }
        if decisions.reorders() && aside.count < limit {
            guard let held = own(frame, owned: owned) else {
                counters.queueFull &+= 1
                return
            }
            counters.reordered &+= 1
            aside.append(
                Aside(
                    afterPassed: passed &+ reorderGap, deadline: now &+ reorderTimeout,
                    frame: Bits(held)))
            return
        }
        enterDelay(frame, owned: owned, now: now, emit: emit)
        passed &+= 1
        while let first = aside.first, first.afterPassed <= passed {
            aside.removeFirst()
            enterDelay(Packet(first.frame), owned: true, now: now, emit: emit)
        }
    }

    private func enterDelay(
        _ frame: consuming Packet, owned: Bool, now: Int64, emit: (consuming Packet) -> Void
    ) {
        guard delays else {
            enterRate(frame, owned: owned, now: now, emit: emit)
            return
        }
        // Never before a frame that came earlier: delay keeps the order.
        let release = max(now &+ decisions.delay(), lastRelease)
        if release <= now && delayed.isEmpty {
            enterRate(frame, owned: owned, now: now, emit: emit)
            return
        }
        guard delayed.count < limit, let held = own(frame, owned: owned) else {
            counters.queueFull &+= 1
            return
        }
        counters.delayed &+= 1
        lastRelease = release
        delayed.append(Delayed(release: release, frame: Bits(held)))
    }

    private func cost(of byteCount: Int) -> Int64 { Int64(byteCount) * 8 * 1_000_000_000 }

    private func refill(now: Int64) {
        guard now > creditTime else { return }
        if creditTime == .min {
            creditTime = now
            return
        }
        let (added, overflow) = (now &- creditTime).multipliedReportingOverflow(by: rate)
        credit = overflow ? creditLimit : min(creditLimit, credit &+ added)
        creditTime = now
    }

    private func enterRate(
        _ frame: consuming Packet, owned: Bool, now: Int64, emit: (consuming Packet) -> Void
    ) {
        guard rate > 0 else {
            emit(frame)
            return
        }
        refill(now: now)
        let cost = cost(of: frame.count)
        if rateQueue.isEmpty && credit >= cost {
            credit -= cost
            emit(frame)
            return
        }
        guard rateQueue.count < limit else {
            counters.rateDropped &+= 1
            return
        }
        guard let held = own(frame, owned: owned) else {
            counters.queueFull &+= 1
            return
        }
        rateQueue.append(Bits(held))
    }

    private func drainRate(now: Int64, emit: (consuming Packet) -> Void) {
        guard rate > 0, !rateQueue.isEmpty else { return }
        refill(now: now)
        while let first = rateQueue.first, credit >= cost(of: first.count) {
            credit -= cost(of: first.count)
            rateQueue.removeFirst()
            emit(Packet(first))
        }
    }
}
