// `--workers N` on the Oasis stack: one queue of the device, one thread, one loop and
// one stack per worker, all answering for the same address, with nothing shared on the
// per-packet path. AF_XDP: a socket per receive queue, one program steering each frame
// by its queue (RSS, or a multi-queue veth, spreads the flows); TAP: one descriptor per
// queue of a multi-queue TAP (the kernel spreads the flows by their hash).

import ArgumentParser
import Glibc
import OasisDevices
import OasisLoop
import OasisNet
import OasisWire
import Synchronization

/// ARP heard by one worker, told to the others. The kernel hashes every ARP frame of a
/// peer to the same queue (ARP has no ports), so without this only one worker would
/// learn the peer's address, and a reply to a request another worker sent would never
/// reach it. ARP is rare: this is the one piece of state the workers exchange, off the
/// per-packet path, each worker's cache still its own.
final class ArpSiblings: Sendable {
    private struct Member: Sendable {
        let index: Int
        let learn: LoopBound<(ArpRepr, MACAddress) -> Void>
    }
    private let members = Mutex<[Member]>([])

    /// Adds worker `index`'s link: what it hears goes to the others, what they hear
    /// comes to it (on `loop`, its loop).
    func join<Device: NetworkDevice>(_ link: EthernetLink<Device>, index: Int, loop: EventLoop) {
        let learn = LoopBound<(ArpRepr, MACAddress) -> Void>(
            { message, source in link.learn(fromSibling: message, linkSource: source) }, on: loop)
        members.withLock { $0.append(Member(index: index, learn: learn)) }
        link.onArpReceived = { [self] message, source in
            for member in members.withLock({ $0 }) where member.index != index {
                let learn = member.learn
                learn.loop.execute { learn.value(message, source) }
            }
        }
    }

    /// Forgets every link (each one's callback holds these siblings).
    func clear() {
        members.withLock { $0.removeAll() }
    }
}

/// The threads and loops of `--workers N` on the Oasis stack. Worker 0 runs on the
/// calling thread's loop; the others each on a thread and loop of their own. Any
/// worker that stops (a signal, --seconds, its device failing) stops them all.
final class StackWorkerPool: @unchecked Sendable {
    // @unchecked: `threads` is touched by the starting thread only.
    let count: Int
    let siblings = ArpSiblings()
    private let loops = Mutex<[EventLoop]>([])
    private let failures = Mutex<[String]>([])
    private var threads: [pthread_t] = []

    init(count: Int, main: EventLoop) {
        self.count = count
        loops.withLock { $0.append(main) }
    }

    /// Stops every worker's loop (from any thread).
    func stopAll() {
        for loop in loops.withLock({ $0 }) { loop.stop() }
    }

    /// What went wrong in the workers, once they stopped.
    var failureMessages: [String] { failures.withLock { $0 } }

    /// Starts worker `index` on a thread of its own: `open` makes its loop's device
    /// there (its failure is thrown here), then `serve` runs its application until its
    /// loop stops. Returns once the device is open.
    func start(
        worker index: Int, loopOptions: LoopOptions,
        open: @escaping @Sendable (EventLoop) throws -> (() throws -> Void)
    ) throws {
        let ready = StartState()
        let started = startThread { [self] in
            let serve: () throws -> Void
            let loop: EventLoop
            do {
                loop = try loopOptions.makeLoop()
                serve = try open(loop)
            } catch {
                ready.state.withLock { $0 = (true, error) }
                return
            }
            loops.withLock { $0.append(loop) }
            ready.state.withLock { $0.done = true }
            do {
                try serve()
            } catch {
                failures.withLock { $0.append("worker \(index): \(error)") }
            }
            stopAll()
        }
        guard let thread = started else {
            throw ValidationError("--workers: could not start a thread")
        }
        threads.append(thread)
        while true {
            let state = ready.state.withLock { $0 }
            if let error = state.error { throw error }
            if state.done { return }
            usleep(1000)
        }
    }

    /// Runs worker 0's `serve` on this thread, then stops and waits for the others.
    func runMain(_ serve: () throws -> Void) throws {
        defer { joinAll() }
        try serve()
    }

    /// Stops every worker and waits for their threads.
    func joinAll() {
        stopAll()
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        siblings.clear()
    }
}

/// A value handed to worker threads that only read it.
struct WorkerShared<Value>: @unchecked Sendable {
    let value: Value
}

extension StackOptions {
    /// How many workers `--workers` asks for on this stack backend, checked: AF_XDP one
    /// per receive queue from --xdp-queue on (default: min(cores, those queues)), TAP
    /// one per queue of a multi-queue TAP (default: 1, a TAP of one queue); pcap, Xen
    /// and memory one. `splittable` is false for applications that cannot run once per
    /// queue (DHCP, a capture, iperf3, NOTIFY): those take 1 unless asked for more, which fails.
    func workerCount(requested: Int?, backend: Backend, splittable: Bool) throws -> Int {
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let requested, !(1...256).contains(requested) {
            throw ValidationError("--workers must be within 1...256")
        }
        let count: Int
        switch backend {
        case .xdp:
            guard let xdp else { throw ValidationError("--backend xdp needs --xdp IFACE") }
            let queues = XdpDevice.queueCount(of: xdp) ?? 1
            let available = max(1, queues - Int(xdpQueue))
            if let requested, requested > available {
                throw ValidationError(
                    "--workers \(requested): \(xdp) has \(queues) receive queue(s), "
                        + "\(available) from --xdp-queue \(xdpQueue) on (one worker per queue)")
            }
            count = requested ?? (splittable ? min(cores, available) : 1)
            if requested == nil {
                Console.log(
                    "oasis: \(count) worker\(count == 1 ? "" : "s") (--workers): one per receive "
                        + "queue of \(xdp) from queue \(xdpQueue) on, at most one per core "
                        + "(\(queues) queue\(queues == 1 ? "" : "s"), \(cores) cores)"
                        + (splittable ? "" : "; one for --ip dhcp, --capture, iperf3 or --notify"))
            }
            if count < available {
                Console.log(
                    "oasis: \(xdp) has \(queues) receive queues and \(count) worker(s) own "
                        + "\(count) of them: frames on the others go to the kernel (ethtool -L "
                        + "\(xdp) to have fewer queues, or --workers \(available))")
            }
        case .tap:
            count = requested ?? 1
        default:
            if let requested, requested > 1 {
                throw ValidationError(
                    "--workers above 1 needs a device with several queues: --backend xdp "
                        + "(a queue per worker) or tap (a multi-queue TAP); not \(backend.rawValue)"
                )
            }
            count = 1
        }
        if count > 1 && !splittable {
            throw ValidationError(
                "--workers above 1 cannot be used with --ip dhcp, --capture, iperf3 or --notify "
                    + "yet (one stack each, on one queue)")
        }
        return count
    }

    /// Whether the stack options allow a stack per queue.
    var allowsWorkers: Bool { !usesDHCP && capture == nil }

    /// Runs `count` workers over AF_XDP on `--xdp IFACE`, queues `--xdp-queue` on: the
    /// first queue's device attaches the program, the others join it, each on the loop
    /// and thread of its worker. `make(i)` gives worker i's application, on its thread.
    func runWorkersOnXdp<Application: StackApplication & SendableMetatype>(
        count: Int, main loop: EventLoop, loopOptions: LoopOptions, stopper: SignalStopper,
        make: @escaping @Sendable (Int) -> Application
    ) throws {
        guard let xdp else { throw ValidationError("--backend xdp needs --xdp IFACE") }
        let options: XdpDevice.Options = xdpGeneric ? [.generic] : []
        let first = try XdpDevice(
            interface: xdp, queue: xdpQueue, on: loop, macAddress: try macAddress(),
            options: options, queueCount: xdpQueue + UInt32(count))
        defer { first.close() }
        Console.log(
            "oasis: AF_XDP on \(xdp) queues \(xdpQueue)...\(xdpQueue + UInt32(count - 1)), "
                + "a worker each: \(first.isNative ? "native" : "generic") XDP, "
                + "\(first.isCopyMode ? "copy" : "zero-copy") mode")
        let pool = StackWorkerPool(count: count, main: loop)
        stopper.also { pool.stopAll() }
        let share = first.share
        let shared = WorkerShared(value: self)
        do {
            for index in 1..<count {
                try pool.start(worker: index, loopOptions: loopOptions) { loop in
                    let options = shared.value
                    let device = try XdpDevice(
                        joining: share, queue: options.xdpQueue + UInt32(index), on: loop,
                        options: options.xdpGeneric ? [.generic] : [])
                    return {
                        defer { device.close() }
                        try options.run(
                            make(index), device: device,
                            configuration: try options.configuration(worker: index), loop: loop,
                            namespace: nil, siblings: pool.siblings, worker: index)
                        Self.logStatistics(of: device, worker: index)
                    }
                }
            }
        } catch {
            pool.joinAll()
            throw error
        }
        try pool.runMain {
            try run(
                make(0), device: first, configuration: try configuration(worker: 0), loop: loop,
                namespace: nil, siblings: pool.siblings, worker: 0)
        }
        Self.logStatistics(of: first, worker: 0)
        for failure in pool.failureMessages { Console.log("oasis: \(failure)") }
        if !pool.failureMessages.isEmpty { throw ExitCode.failure }
    }

    private static func logStatistics(of device: XdpDevice, worker: Int) {
        if let statistics = device.kernelStatistics {
            Console.log("oasis: worker \(worker) AF_XDP queue \(device.queue) \(statistics)")
        }
    }

    /// Runs `count` workers over one multi-queue TAP: `--tap NAME` in the current
    /// namespace, or `tap0` in a namespace of its own, one descriptor (a queue) per
    /// worker, each on its worker's loop and thread.
    func runWorkersOnTap<Application: StackApplication & SendableMetatype>(
        count: Int, main loop: EventLoop, loopOptions: LoopOptions, stopper: SignalStopper,
        make: @escaping @Sendable (Int) -> Application
    ) throws {
        let configuration = try configuration(worker: 0)
        let macAddress = try macAddress()
        let options = tapOptions.union(.multiQueue)
        var namespace: OwnNamespace? = nil
        let first: TapDevice
        if let tap {
            first = try TapDevice(
                attachingTo: tap, on: loop, macAddress: macAddress, options: options)
        } else {
            let network = configuration.network
            let own = try OwnNamespace.create(hostAddress: network.peerAddress, network: network)
            namespace = own
            do {
                first = try NetworkNamespace.withEntered(path: own.path) {
                    try TapDevice(
                        attachingTo: "tap0", on: loop, macAddress: macAddress, options: options)
                }
                try own.configureKernelSide()
            } catch {
                own.remove()
                throw error
            }
        }
        defer { namespace?.remove() }
        Console.log("oasis: multi-queue TAP \(first.name), \(count) queues, a worker each")
        let pool = StackWorkerPool(count: count, main: loop)
        stopper.also { pool.stopAll() }
        let shared = WorkerShared(value: self)
        let name = first.name
        let path = namespace?.path
        // Every queue answers for the first one's address (the default is the TAP's).
        let mac = first.macAddress
        do {
            for index in 1..<count {
                try pool.start(worker: index, loopOptions: loopOptions) { loop in
                    let openQueue = {
                        try TapDevice(
                            attachingTo: name, on: loop, macAddress: mac, options: options)
                    }
                    let device =
                        try path.map { try NetworkNamespace.withEntered(path: $0, openQueue) }
                        ?? openQueue()
                    let options = shared.value
                    return {
                        defer { device.close() }
                        try options.run(
                            make(index), device: device,
                            configuration: try options.configuration(worker: index), loop: loop,
                            namespace: nil, siblings: pool.siblings, worker: index)
                    }
                }
            }
        } catch {
            pool.joinAll()
            first.close()
            throw error
        }
        try pool.runMain {
            try run(
                make(0), device: first, configuration: configuration, loop: loop,
                namespace: namespace, siblings: pool.siblings, worker: 0)
        }
        first.close()
        for failure in pool.failureMessages { Console.log("oasis: \(failure)") }
        if !pool.failureMessages.isEmpty { throw ExitCode.failure }
    }

    /// Worker `index`'s stack configuration: the same address for every worker; only
    /// the first announces it (one gratuitous ARP, not one per queue).
    func configuration(worker index: Int) throws -> IPv4StackConfiguration {
        var configuration = try configuration()
        configuration.gratuitousArp = index == 0
        return configuration
    }
}
