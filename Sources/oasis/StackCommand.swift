// `oasis stack`: the tutorial's networking demo made real. The Oasis stack drives a
// device directly and runs a ping responder and a UDP echo service on port 7.

import ArgumentParser
import Glibc
import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisWire
import OasisXen
import Synchronization

struct StackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stack",
        abstract: "Run the Oasis stack with a ping responder and UDP echo on port 7.",
        discussion: """
            With --backend tap and no --tap, it creates its own network namespace with a \
            TAP device, addresses the kernel's side as the .1 of the subnet, and prints \
            the command to ping it. With --backend memory it runs a second Oasis stack on \
            the other end of an in-memory link and exchanges UDP echo with it. With \
            --backend socket the echo service runs on the kernel's UDP sockets. With \
            --backend xen it drives a Xen netfront: through the real Xen libraries (in a \
            Xen domain), or with --xen-sim SOCKET through xen/netback-sim. With --iperf3 it \
            also serves iperf3 on TCP port 5201; with --iperf3-client ADDRESS it runs one \
            iperf3 test against that server and exits (on kernel sockets too). With \
            --workers N on --backend xdp or tap, N stacks answer for the same address, \
            each on its own thread and loop over one queue of the device: a receive queue \
            of the interface (xdp; default: one per core, at most one per queue) or a \
            queue of a multi-queue TAP (tap; default: 1).
            """)

    @Option(help: "Where packets go: tap, pcap, xdp, memory, socket, xen.")
    var backend: Backend = .tap

    @Option(help: "Xen: the virtual interface number (device/vif/N).")
    var vif = 0

    @Option(
        help: ArgumentHelp(
            "Xen: use the simulated hypervisor served by xen/netback-sim at this socket.",
            valueName: "socket"))
    var xenSim: String?

    @Option(help: "Xen: pages granted to the backend for packet buffers.")
    var xenBufferPages = 512

    @OptionGroup var stackOptions: StackOptions
    @OptionGroup var loopOptions: LoopOptions

    @Option(help: "UDP port of the echo service.")
    var echoPort: UInt16 = 7

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    @Option(
        help: ArgumentHelp(
            "Stacks, each on its own thread, loop and queue of the device: xdp (default: "
                + "one per core and receive queue) or tap (a multi-queue TAP; default: 1).",
            valueName: "n"))
    var workers: Int?

    @OptionGroup var iperf3: IPerf3Options

    func validate() throws {
        if let workers, workers > 1, backend != .xdp && backend != .tap {
            throw ValidationError(
                "--workers above 1 needs a device with several queues: --backend xdp or tap")
        }
        if stackOptions.impair != nil, backend == .socket || backend == .memory {
            throw ValidationError(
                "--impair wraps the Oasis stack's device (--backend tap, pcap, xdp or xen)")
        }
        if stackOptions.usesDHCP, backend == .socket || backend == .memory {
            throw ValidationError(
                "--ip dhcp configures the Oasis stack on a device (--backend tap, pcap, xdp or xen)"
            )
        }
    }

    func run() throws {
        let configuration = try stackOptions.configuration()
        let loop = try loopOptions.makeLoop()
        let stopper = SignalStopper(loop: loop)
        let echo = EchoApplication(echoPort: echoPort, seconds: seconds, iperf3: iperf3)
        if backend == .tap || backend == .xdp {
            let splittable =
                stackOptions.allowsWorkers && !iperf3.serve && iperf3.client == nil
            let count = try stackOptions.workerCount(
                requested: workers, backend: backend, splittable: splittable)
            if count > 1 {
                let shared = WorkerShared(value: echo)
                let make: @Sendable (Int) -> EchoApplication = { index in
                    var echo = shared.value
                    echo.worker = index
                    echo.workers = count
                    return echo
                }
                if backend == .tap {
                    try stackOptions.runWorkersOnTap(
                        count: count, main: loop, loopOptions: loopOptions, stopper: stopper,
                        make: make)
                } else {
                    try stackOptions.runWorkersOnXdp(
                        count: count, main: loop, loopOptions: loopOptions, stopper: stopper,
                        make: make)
                }
                return
            }
        }

        switch backend {
        case .tap:
            try stackOptions.runOnTap(echo, loop: loop)
        case .pcap:
            try stackOptions.runOnPcap(echo, loop: loop)
        case .xdp:
            try stackOptions.runOnXdp(echo, loop: loop)
        case .memory:
            try MemoryDemo.run(configuration: configuration, loop: loop, echoPort: echoPort)
            return
        case .socket:
            let sockets = SocketDatagrams(address: configuration.network.address, on: loop)
            try UDPEcho.start(on: sockets, port: echoPort)
            Console.log(
                "oasis: UDP echo on kernel sockets at \(configuration.network.address):\(echoPort)")
            let streams = SocketStreams(address: configuration.network.address, on: loop)
            let iperf3Server = try iperf3.startServer(on: streams)
            defer { iperf3Server?.close() }
            if iperf3.client != nil {
                try iperf3.runClient(on: streams, loop: loop)
            } else {
                try runUntilStopped(loop, seconds: seconds)
            }
            streams.close()
            sockets.close()
        case .xen:
            if let xenSim {
                let xen = try SimulatedHypervisor.connect(to: xenSim)
                defer { xen.close() }
                try serveNetfront(
                    facilities: xen, configuration: configuration, loop: loop, echo: echo)
            } else {
                let xen = try XenLibraries.open()
                defer { xen.close() }
                try serveNetfront(
                    facilities: xen, configuration: configuration, loop: loop, echo: echo)
            }
        }
        _ = stopper
    }

    private func serveNetfront<Facilities: XenFacilities>(
        facilities: Facilities, configuration: IPv4StackConfiguration, loop: EventLoop,
        echo: EchoApplication
    ) throws {
        // --offload asks netback for GSO both ways too (64 KiB TCP segments), with
        // buffers of 17 pages: 44 of them, which with the rings and the 256 landing
        // pages stays within gntalloc's default limit of 1024 grants.
        let netfront = try Netfront(
            facilities: facilities, vif: vif, on: loop,
            bufferPages: stackOptions.offload ? max(xenBufferPages, 17 * 44) : xenBufferPages,
            features: stackOptions.offload ? .all : .standard)
        defer { netfront.close() }
        var failure: NetfrontError? = nil
        netfront.onFailure = { error in
            Console.log("oasis: \(netfront.name): \(error)")
            failure = error
            loop.stop()
        }
        netfront.onLinkChange = { up in
            Console.log(
                "oasis: \(netfront.name) link \(up ? "up again" : "down") "
                    + "(backend \(netfront.backendPath), reconnections \(netfront.reconnections))")
        }
        Console.log(
            "oasis: \(netfront.name) connected to backend \(netfront.backendPath) "
                + "(\(netfront.backendDomain)), features \(netfront.features), "
                + "MTU \(netfront.capabilities.mtu)")
        try stackOptions.run(
            echo, device: netfront, configuration: configuration, loop: loop, namespace: nil)
        if let failure { throw failure }
    }

}

/// The ping responder (the stack's own) and UDP echo on `echoPort`.
struct EchoApplication: StackApplication {
    var echoPort: UInt16
    var seconds: Double?
    var iperf3: IPerf3Options
    /// This stack's worker, of `workers` (`--workers`).
    var worker = 0
    var workers = 1

    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        try stack.start()
        try UDPEcho.start(on: stack, port: echoPort)
        let tcp = try TCPServices.start(on: stack, echo: echoPort)
        defer { for listener in tcp { listener.close() } }
        let iperf3Server = try iperf3.startServer(on: stack)
        defer { iperf3Server?.close() }
        let label = workers > 1 ? "worker \(worker) " : ""
        Console.log(
            "oasis: \(label)stack at \(stack.configuration.network) on \(stack.device.name) "
                + "(\(stack.device.macAddress)), ping responder, UDP echo on port \(echoPort), "
                + "TCP echo on \(echoPort), discard on 9, chargen on 19"
                + (iperf3Server == nil ? "" : ", iperf3 on \(iperf3.port)"))
        if let namespace, stack.isConfigured {
            Console.log(
                "oasis: ping it with: ip netns exec \(namespace.name) ping \(stack.address)")
        }
        // With --iperf3-client the run is the test; its failure fails the command, once
        // the stack has reported.
        let outcome = Result {
            if iperf3.client != nil {
                try iperf3.runClient(on: stack, loop: loop)
            } else {
                try runUntilStopped(loop, seconds: seconds)
            }
        }
        if let iperf3Server { Console.log("oasis: iperf3 \(iperf3Server.statistics.summary)") }
        Console.log("oasis: \(label)device \(stack.device.counters)")
        Console.log(
            "oasis: \(label)echo replies \(stack.echoRepliesSent), datagrams in \(stack.datagramsDelivered) "
                + "out \(stack.datagramsSent), drops \(stack.drops.summary)")
        Console.log("oasis: \(label)tcp \(stack.tcp.summary)")
        stack.stop()
        try outcome.get()
    }
}

extension IPv4Network {
    /// The first host of the subnet other than this address: where the kernel's side
    /// of a namespace TAP goes (192.0.2.1 for 192.0.2.2/24).
    var peerAddress: IPv4Address {
        let first = IPv4Address(rawValue: networkAddress.rawValue &+ 1)
        return first == address ? IPv4Address(rawValue: networkAddress.rawValue &+ 2) : first
    }
}

extension NetworkDropCounters {
    /// The non-zero counters, e.g. `udp.noListener=3 ipv4.notForUs=1`, or `none`.
    var summary: String {
        var parts: [String] = []
        func add<Reason: DropReason>(_ layer: String, _ counters: DropCounters<Reason>) {
            for reason in Reason.allCases where counters[reason] > 0 {
                parts.append("\(layer).\(reason)=\(counters[reason])")
            }
        }
        add("ethernet", ethernet)
        add("arp", arp)
        add("ipv4", ipv4)
        add("reassembly", reassembly)
        add("icmp", icmp)
        add("udp", udp)
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }
}

/// A network namespace `oasis-<pid>` this process creates for its TAP and removes on
/// exit, with the kernel's side of the TAP addressed in the stack's subnet.
struct OwnNamespace {
    let name: String
    let hostAddress: IPv4Address
    let network: IPv4Network
    var path: String { NetworkNamespace.path(named: name) }

    static func create(hostAddress: IPv4Address, network: IPv4Network) throws -> OwnNamespace {
        let name = "oasis-\(getpid())"
        try runCommand(["ip", "netns", "add", name])
        return OwnNamespace(name: name, hostAddress: hostAddress, network: network)
    }

    func configureKernelSide() throws {
        let exec = ["ip", "netns", "exec", name]
        try runCommand(exec + ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        try runCommand(exec + ["ip", "link", "set", "lo", "up"])
        try runCommand(
            exec + ["ip", "addr", "add", "\(hostAddress)/\(network.prefixLength)", "dev", "tap0"])
        try runCommand(exec + ["ip", "link", "set", "tap0", "up"])
    }

    func remove() {
        try? runCommand(["ip", "netns", "del", name])
    }
}

struct CommandFailed: Error, CustomStringConvertible {
    var command: [String]
    var status: Int32
    var description: String { "`\(command.joined(separator: " "))` exited with \(status)" }
}

/// Runs a command (found on PATH) and waits for it; throws if it fails.
func runCommand(_ arguments: [String]) throws {
    var pid: pid_t = 0
    var cArguments = arguments.map { strdup($0) } + [nil]
    defer { for pointer in cArguments { free(pointer) } }
    let spawned = posix_spawnp(&pid, arguments[0], nil, nil, &cArguments, environ)
    guard spawned == 0 else { throw CommandFailed(command: arguments, status: -spawned) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = (status >> 8) & 0xff
    guard status & 0x7f == 0, exitStatus == 0 else {
        throw CommandFailed(command: arguments, status: exitStatus)
    }
}

/// Stops the loop on SIGINT or SIGTERM, so that a command cleans up (removes its
/// namespace, closes its capture) instead of dying mid-way. The signals are blocked in
/// every thread and taken by one thread with `sigwait`; `EventLoop.stop()` is safe from
/// any thread.
final class SignalStopper: Sendable {
    final class Actions: Sendable {
        let list = Mutex<[@Sendable () -> Void]>([])
    }
    private let extra = Actions()

    /// Also runs `action` on SIGINT or SIGTERM (on the signal thread), before the loop
    /// is stopped.
    func also(_ action: @escaping @Sendable () -> Void) {
        extra.list.withLock { $0.append(action) }
    }

    init(loop: EventLoop) {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let extra = self.extra
        startThread(detached: true) {
            var signals = sigset_t()
            sigemptyset(&signals)
            sigaddset(&signals, SIGINT)
            sigaddset(&signals, SIGTERM)
            var received: Int32 = 0
            sigwait(&signals, &received)
            for action in extra.list.withLock({ $0 }) { action() }
            loop.stop()
        }
    }
}
