// `oasis openflow switch`: an OpenFlow 1.0 switch with ports on TAP or pcap devices,
// dialing controllers and listening for `ovs-ofctl`, its channel on kernel sockets.

import ArgumentParser
import Glibc
import OasisDevices
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisSwitch
import OasisWire
import OasisXen

struct OpenFlowSwitchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "An OpenFlow 1.0 switch: ports on TAP or pcap devices, controllers over TCP.",
        discussion: """
            oasis openflow switch --port tap:s1p1 --port tap:s1p2 --controller tcp:127.0.0.1:6653
            oasis openflow switch --port tap:a --port tap:b --listen ptcp:6634 --fail-mode standalone
            ovs-ofctl -O OpenFlow10 -F openflow10 dump-flows tcp:127.0.0.1:6634
            """)

    @Option(
        name: .customLong("port"),
        help:
            "A port: tap:NAME (created if missing), pcap:INTERFACE, xdp:INTERFACE or xen:VIF (a Xen netfront, device/vif/VIF); numbered 1, 2, … in order."
    )
    var ports: [String] = []

    @Option(
        name: .customLong("local"),
        help: ArgumentHelp(
            "The LOCAL port (65534): tap:NAME, the host's interface to the bridge as Open "
                + "vSwitch's bridge interface (created if missing).", valueName: "tap:NAME"))
    var localPort: String?

    @Option(
        name: .customLong("controller"),
        help: "A controller to dial, tcp:HOST:PORT (again with backoff when it goes).")
    var controllers: [String] = []

    @Option(
        help: "Listen for controllers and tools, ptcp:PORT[:ADDRESS] (default address 127.0.0.1).")
    var listen: String?

    @Option(help: "The datapath id (FEATURES_REPLY), decimal or 0x hex.")
    var datapathID: String = "0x1"

    @Option(
        help: "With no controller: secure (emergency flows only) or standalone (learning switch).")
    var failMode: String = "secure"

    @Option(
        help: ArgumentHelp(
            "xen: ports on the simulated hypervisor served by xen/netback-sim at this socket.",
            valueName: "socket"))
    var xenSim: String?

    @Option(help: "xen: ports: pages granted to the backend for each port's packet buffers.")
    var xenBufferPages = 512

    @Option(
        name: .customLong("channel"),
        help: ArgumentHelp(
            "What the OpenFlow channel runs on: socket (kernel sockets), or the Oasis stack's "
                + "TCP on tap, pcap or xdp (at --ip, on --tap/--pcap/--xdp or a TAP in a "
                + "namespace of its own).", valueName: "backend"))
    var channelBackend: Backend = .socket

    @OptionGroup var stackOptions: StackOptions

    @OptionGroup var loopOptions: LoopOptions

    @Option(help: "Stop after this many seconds (default: run until SIGINT/SIGTERM).")
    var seconds: Double?

    func run() throws {
        guard !ports.isEmpty else { throw ValidationError("give at least one --port") }
        guard let mode = FailMode(rawValue: failMode) else {
            throw ValidationError("--fail-mode must be secure or standalone")
        }
        let id: UInt64? =
            datapathID.hasPrefix("0x")
            ? UInt64(datapathID.dropFirst(2), radix: 16) : UInt64(datapathID)
        guard let id else { throw ValidationError("--datapath-id: not a number: \(datapathID)") }
        let dials = try controllers.map {
            try Self.endpoint($0, scheme: "tcp", defaultAddress: nil)
        }
        let passive = try listen.map {
            try Self.endpoint($0, scheme: "ptcp", defaultAddress: IPv4Address(127, 0, 0, 1))
        }

        let loop = try loopOptions.makeLoop()
        let stopper = SignalStopper(loop: loop)
        let datapath = Datapath(on: loop)
        // Xen ports share one connection to the hypervisor (or its simulator), closed
        // after the ports; each port is a netfront, disconnected from its backend at exit.
        var closers: [() -> Void] = []
        defer { for close in closers.reversed() { close() } }
        var portFailure: NetfrontError?
        var openXen: ((Int) throws -> any NetworkDevice)?
        if ports.contains(where: { $0.hasPrefix("xen:") }) {
            let pages = xenBufferPages
            func opener<Facilities: XenFacilities>(_ xen: Facilities) -> (Int) throws ->
                any NetworkDevice
            {
                { vif in
                    let netfront = try Netfront(
                        facilities: xen, vif: vif, on: loop, bufferPages: pages)
                    netfront.onFailure = { error in
                        Console.log("oasis: \(netfront.name): \(error)")
                        portFailure = error
                        loop.stop()
                    }
                    Console.log(
                        "oasis: \(netfront.name) connected to backend \(netfront.backendPath) "
                            + "(\(netfront.backendDomain))")
                    return netfront
                }
            }
            if let xenSim {
                let xen = try SimulatedHypervisor.connect(to: xenSim)
                closers.append { xen.close() }
                openXen = opener(xen)
            } else {
                let xen = try XenLibraries.open()
                closers.append { xen.close() }
                openXen = opener(xen)
            }
        }
        closers.append { datapath.close() }
        var xenPorts: Set<PortNumber> = []
        for (index, text) in ports.enumerated() {
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw ValidationError(
                    "--port: tap:NAME, pcap:INTERFACE, xdp:INTERFACE or xen:VIF, not \(text)")
            }
            let mac = MACAddress(0x0200_0a5e_0000 | UInt64(index + 1))
            let device: any NetworkDevice
            switch parts[0] {
            case "tap": device = try TapDevice(attachingTo: parts[1], on: loop, macAddress: mac)
            case "pcap": device = try PcapDevice(interface: parts[1], on: loop, macAddress: mac)
            case "xdp":
                // Queue 0 of the interface (a veth has one), native XDP where the driver
                // has it.
                device = try XdpDevice(interface: parts[1], queue: 0, on: loop, macAddress: mac)
            case "xen":
                guard let vif = Int(parts[1]), vif >= 0, let openXen else {
                    throw ValidationError("--port: xen:VIF wants a number, not \(text)")
                }
                device = try openXen(vif)
            default:
                throw ValidationError(
                    "--port: tap:NAME, pcap:INTERFACE, xdp:INTERFACE or xen:VIF, not \(text)")
            }
            let port = try datapath.addPort(device)
            if parts[0] == "xen" { xenPorts.insert(port.number) }
            if parts[0] != "xen" {
                let kernel = KernelInterface(name: device.name)
                if let address = kernel.address { port.hardwareAddress = address }
                port.currentFeatures = kernel.currentFeatures
            }
            Console.log("oasis: port \(port.number.rawValue): \(text) (\(device.name))")
        }
        if let localPort {
            guard localPort.hasPrefix("tap:"), localPort.count > 4 else {
                throw ValidationError("--local: tap:NAME, not \(localPort)")
            }
            let device = try TapDevice(attachingTo: String(localPort.dropFirst(4)), on: loop)
            let port = try datapath.addPort(device, number: .local)
            if let address = KernelInterface(name: device.name).address {
                port.hardwareAddress = address
            }
            Console.log("oasis: port LOCAL: \(localPort) (\(device.name))")
        }
        // PORT_MOD down and up take the kernel interface under the port down and up,
        // as Open vSwitch does (a Xen port has no interface of ours to take down).
        datapath.portConfigured = { port, previous in
            let down = port.config.contains(.portDown)
            guard down != previous.contains(.portDown), !xenPorts.contains(port.number) else {
                return
            }
            do {
                try TapInterface.setLinkUp(!down, interface: port.device.name)
                Console.log(
                    "oasis: port \(port.number.rawValue) \(port.device.name) set \(down ? "down" : "up")"
                )
            } catch {
                Console.log("oasis: port \(port.number.rawValue): \(error)")
            }
        }
        let setup = SwitchChannelSetup(
            datapath: datapath, datapathID: id, failMode: mode, passive: passive, dials: dials,
            seconds: seconds)
        switch channelBackend {
        case .socket:
            let streams = SocketStreams(address: passive?.address ?? .any, on: loop)
            try setup.run(on: streams, loop: loop, where: "kernel sockets")
            streams.close()
        case .tap: try stackOptions.runOnTap(setup, loop: loop)
        case .xdp: try stackOptions.runOnXdp(setup, loop: loop)
        case .pcap: try stackOptions.runOnPcap(setup, loop: loop)
        default:
            throw ValidationError("--channel: socket, tap, pcap or xdp")
        }
        _ = stopper
        if let portFailure { throw portFailure }
    }

    /// `SCHEME:HOST:PORT` (tcp) or `SCHEME:PORT[:ADDRESS]` (ptcp), as Open vSwitch writes them.
    static func endpoint(_ text: String, scheme: String, defaultAddress: IPv4Address?) throws
        -> StreamEndpoint
    {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == scheme else {
            throw ValidationError("\(text): expected \(scheme):…")
        }
        if scheme == "tcp" {
            guard parts.count == 3, let address = IPv4Address(parts[1]), let port = UInt16(parts[2])
            else { throw ValidationError("\(text): expected tcp:ADDRESS:PORT") }
            return StreamEndpoint(address: address, port: port)
        }
        guard parts.count == 2 || parts.count == 3, let port = UInt16(parts[1]) else {
            throw ValidationError("\(text): expected ptcp:PORT[:ADDRESS]")
        }
        let address = parts.count == 3 ? IPv4Address(parts[2]) : defaultAddress
        guard let address else { throw ValidationError("\(text): not an IPv4 address") }
        return StreamEndpoint(address: address, port: port)
    }
}

/// What the kernel says of a network interface (sysfs), for the port descriptions
/// Open vSwitch gives: its address, and its speed and duplex as `ofp_port_features`.
struct KernelInterface {
    var address: MACAddress?
    var currentFeatures: PortFeatures = []

    init(name: String) {
        let directory = "/sys/class/net/\(name)/"
        func read(_ file: String) -> String? {
            let fd = open(directory + file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n").first
                .map(String.init)
        }
        if let text = read("address") {
            let bytes = text.split(separator: ":").compactMap { UInt8($0, radix: 16) }
            if bytes.count == 6 { address = MACAddress(bytes.reduce(0) { $0 << 8 | UInt64($1) }) }
        }
        // speed is unreadable (EINVAL) while the link is down: no features then.
        guard let speed = read("speed").flatMap(Int.init) else { return }
        let full = read("duplex") == "full"
        switch speed {
        case 10: currentFeatures = full ? .full10Mb : .half10Mb
        case 100: currentFeatures = full ? .full100Mb : .half100Mb
        case 1000: currentFeatures = full ? .full1Gb : .half1Gb
        case 10000: currentFeatures = full ? .full10Gb : []
        default: break
        }
    }
}

/// The switch's channel on any Stream surface: kernel sockets, or the Oasis stack's TCP
/// (`--channel tap|pcap|xdp`, the stack at `--ip` on its own device); runs the loop
/// until stopped and prints the counters.
struct SwitchChannelSetup: StackApplication {
    var datapath: Datapath
    var datapathID: UInt64
    var failMode: FailMode
    var passive: StreamEndpoint?
    var dials: [StreamEndpoint]
    var seconds: Double?

    func run<Streams: StreamService>(on streams: Streams, loop: EventLoop, where place: String)
        throws
    {
        let id = datapathID
        let mode = failMode
        let channel = SwitchChannel(datapath: datapath, streams: streams, datapathID: id)
        channel.failMode = mode
        channel.log = { Console.log("oasis: \($0)") }
        Console.log("oasis: channel on \(place)")
        if let passive {
            try channel.listen(port: passive.port)
            Console.log("oasis: listening on ptcp:\(passive.port):\(passive.address)")
        }
        for endpoint in dials {
            channel.connect(to: endpoint)
            Console.log("oasis: controller tcp:\(endpoint.address):\(endpoint.port)")
        }
        if dials.isEmpty && mode == .standalone { datapath.missAction = .normal }
        try runUntilStopped(loop, seconds: seconds)
        let counters = channel.counters
        Console.log(
            "oasis: switch: \(datapath.table.count) flows, lookups \(datapath.table.lookupCount) "
                + "(matched \(datapath.table.matchedCount), cache hits \(datapath.table.cacheHits)), "
                + "misses \(datapath.misses), to the controller \(datapath.packetsToController), "
                + "drops \(datapath.drops)")
        for port in datapath.ports.values.sorted(by: { $0.number.rawValue < $1.number.rawValue }) {
            Console.log(
                "oasis: port \(port.number.rawValue) \(port.device.name): rx \(port.receivedPackets) "
                    + "pkts \(port.receivedBytes) B (dropped \(port.receiveDrops)), tx \(port.sentPackets) "
                    + "pkts \(port.sentBytes) B (dropped \(port.sendDrops))")
        }
        Console.log(
            "oasis: channel: sessions \(counters.sessionsOpened) opened \(counters.sessionsClosed) closed, "
                + "messages in \(counters.messagesReceived) out \(counters.messagesSent), "
                + "errors sent \(counters.errorsSent), echo timeouts \(counters.echoTimeouts), "
                + "slow peers dropped \(counters.slowPeersDropped)")
        channel.stop()
        datapath.close()
    }

    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        try stack.start()
        if let namespace {
            Console.log("oasis: the channel's namespace: \(namespace.name)")
        }
        try run(
            on: stack, loop: loop,
            where: "the Oasis stack at \(stack.configuration.network) on \(stack.device.name)")
        stack.stop()
    }
}
