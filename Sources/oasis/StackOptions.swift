// The options and the device set-up shared by every command that runs an application
// on the Oasis stack (`oasis stack`, `oasis dns`): the stack's address, a TAP of its own
// in a namespace it creates (or an existing one), libpcap on an interface, a capture.

import ArgumentParser
import OasisDevices
import OasisLoop
import OasisNet
import OasisWire

/// How to reach the network through the Oasis stack.
struct StackOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The stack's address and subnet, or `dhcp` to ask a DHCP server for them "
                + "(and the gateway, MTU and DNS servers)."))
    var ip = "192.0.2.2/24"

    /// Whether the address comes from DHCP (`--ip dhcp`).
    var usesDHCP: Bool { ip == "dhcp" }

    @Option(help: "The gateway for other subnets.")
    var gateway: String?

    @Option(help: "Attach to this existing TAP device in the current namespace.")
    var tap: String?

    @Option(help: "Run on this interface through libpcap (--backend pcap).")
    var pcap: String?

    @Option(help: "Run on this interface through AF_XDP (--backend xdp).")
    var xdp: String?

    @Option(help: "AF_XDP: the interface's receive queue to own.")
    var xdpQueue: UInt32 = 0

    @Flag(help: "AF_XDP: attach in generic (skb) mode even where the driver has native XDP.")
    var xdpGeneric = false

    @Option(
        help: "The stack's Ethernet address (default: locally administered; xdp: the interface's)."
    )
    var mac: String?

    @Option(help: "Write every frame in and out to this pcap file.")
    var capture: String?

    @Flag(help: "TAP: carry a virtio-net header and let the kernel offload checksums.")
    var vnetHeader = false

    @Flag(
        help: """
            TAP: offload TCP both ways through the virtio-net header (implies \
            --vnet-header): 64 KiB segments to the kernel for it to cut (TSO), coalesced \
            ones from it (TSO/GRO), checksums left partial. Xen: ask netback for \
            feature-gso-tcpv4 both ways as well (scatter-gather and checksum offload are \
            always asked for).
            """)
    var offload = false

    /// The TAP options from --vnet-header and --offload.
    var tapOptions: TapDevice.Options {
        var options: TapDevice.Options = []
        if vnetHeader { options.insert(.vnetHeader) }
        if offload { options.insert(.offload) }
        return options
    }

    @Option(
        help: ArgumentHelp(
            "Impair the device's frames: loss, dup, reorder, corrupt, delay, jitter, rate "
                + "(in: or out: for one way), seeded.",
            discussion:
                "e.g. loss=2%,dup=1%,reorder=1%,delay=5ms,jitter=1ms,out:rate=100mbit,seed=42",
            valueName: "spec"))
    var impair: String?

    /// The --impair specification, parsed; nil without one.
    func impairment() throws -> ImpairmentConfiguration? {
        guard let impair else { return nil }
        do {
            return try ImpairmentConfiguration(parsing: impair)
        } catch {
            throw ValidationError("--impair: \(error)")
        }
    }

    func validate() throws {
        _ = try impairment()
        // The impairment wrapper holds and copies frames in one-page buffers and
        // refuses frames above the MTU: a 64 KiB segment would never get through it.
        if offload && impair != nil {
            throw ValidationError("--offload and --impair cannot be used together yet")
        }
    }

    /// The stack's network, checked; 0.0.0.0/32 with `--ip dhcp` until a lease comes.
    func network() throws -> IPv4Network {
        if usesDHCP { return IPv4Configuration.unconfigured }
        guard let network = IPv4Network(ip) else {
            throw ValidationError("--ip must be ADDRESS/PREFIX, e.g. 192.0.2.2/24")
        }
        return network
    }

    /// The stack's configuration from --ip and --gateway.
    func configuration() throws -> IPv4StackConfiguration {
        let gatewayAddress = try gateway.map { text in
            guard let address = IPv4Address(text) else {
                throw ValidationError("--gateway must be an IPv4 address")
            }
            guard !usesDHCP else {
                throw ValidationError("--gateway comes from DHCP with --ip dhcp")
            }
            return address
        }
        var configuration = IPv4StackConfiguration(network: try network(), gateway: gatewayAddress)
        configuration.gratuitousArp = true
        return configuration
    }

    /// The --mac address, checked.
    func macAddress() throws -> MACAddress? {
        try mac.map { text in
            guard let address = MACAddress(text) else {
                throw ValidationError("--mac must look like 02:00:00:00:00:02")
            }
            // A station's own address: not a group (multicast, broadcast), not zero.
            guard address.isUnicast else {
                throw ValidationError("--mac must be a unicast address, not \(address)")
            }
            return address
        }
    }

    /// Runs `application` on the Oasis stack over a TAP: `--tap NAME` in the current
    /// namespace, or `tap0` in a namespace `oasis-<pid>` created here (the kernel's side
    /// addressed as the subnet's first other host) and removed on the way out.
    func runOnTap(_ application: some StackApplication, loop: EventLoop) throws {
        let configuration = try configuration()
        let macAddress = try macAddress()
        var namespace: OwnNamespace? = nil
        let device: TapDevice
        if let tap {
            device = try TapDevice(
                attachingTo: tap, on: loop, macAddress: macAddress,
                options: tapOptions)
        } else {
            // With DHCP the kernel's side is 192.0.2.1/24, for a DHCP server run there.
            let network = usesDHCP ? IPv4Network("192.0.2.2/24")! : configuration.network
            let own = try OwnNamespace.create(hostAddress: network.peerAddress, network: network)
            namespace = own
            do {
                device = try NetworkNamespace.withEntered(path: own.path) {
                    try TapDevice(
                        attachingTo: "tap0", on: loop, macAddress: macAddress,
                        options: tapOptions)
                }
                try own.configureKernelSide()
            } catch {
                own.remove()
                throw error
            }
        }
        defer { namespace?.remove() }
        try run(
            application, device: device, configuration: configuration, loop: loop,
            namespace: namespace)
    }

    /// Runs `application` on the Oasis stack over `--pcap IFACE`.
    func runOnPcap(_ application: some StackApplication, loop: EventLoop) throws {
        guard let pcap else { throw ValidationError("--backend pcap needs --pcap IFACE") }
        let device = try PcapDevice(
            interface: pcap, on: loop, macAddress: try macAddress() ?? MACAddress(0x0200_0a5e_0002))
        try run(
            application, device: device, configuration: try configuration(), loop: loop,
            namespace: nil)
    }

    /// Runs `application` on the Oasis stack over AF_XDP on `--xdp IFACE`: the stack
    /// owns the interface's queue (and answers for its address) until it stops.
    func runOnXdp(_ application: some StackApplication, loop: EventLoop) throws {
        guard let xdp else { throw ValidationError("--backend xdp needs --xdp IFACE") }
        let device = try XdpDevice(
            interface: xdp, queue: xdpQueue, on: loop, macAddress: try macAddress(),
            options: xdpGeneric ? [.generic] : [])
        defer { device.close() }
        Console.log(
            "oasis: AF_XDP on \(xdp) queue \(xdpQueue): "
                + "\(device.isNative ? "native" : "generic") XDP, "
                + "\(device.isCopyMode ? "copy" : "zero-copy") mode")
        try run(
            application, device: device, configuration: try configuration(), loop: loop,
            namespace: nil)
        if let statistics = device.kernelStatistics {
            Console.log("oasis: AF_XDP \(statistics)")
        }
    }

    /// Runs `application` on an Oasis stack over `device` (through the impairment when
    /// --impair is given, and a capture of what the stack sees when --capture is).
    ///
    /// With `siblings` (`--workers`), the stack is worker `worker` of several on one
    /// interface, and tells the others the ARP it hears.
    func run<Device: NetworkDevice>(
        _ application: some StackApplication, device: Device,
        configuration: IPv4StackConfiguration, loop: EventLoop, namespace: OwnNamespace?,
        siblings: ArpSiblings? = nil, worker: Int = 0
    ) throws {
        // A device that stops on its own (its interface deleted) ends the run: the
        // application reports what it did, and the command fails.
        let failure = DeviceFailure()
        device.onFailure { error in
            Console.log("oasis: \(device.name) stopped: \(error)")
            failure.error = error
            loop.stop()
        }
        if let impairment = try impairment() {
            let impaired = ImpairedDevice(device, configuration: impairment, on: loop)
            Console.log("oasis: impairing \(device.name): \(impairment)")
            try runCapturing(
                application, device: impaired, configuration: configuration, loop: loop,
                namespace: namespace, siblings: siblings, worker: worker)
            Console.log("oasis: impairment in: \(impaired.inboundCounters)")
            Console.log("oasis: impairment out: \(impaired.outboundCounters)")
        } else {
            try runCapturing(
                application, device: device, configuration: configuration, loop: loop,
                namespace: namespace, siblings: siblings, worker: worker)
        }
        if failure.error != nil { throw ExitCode.failure }
    }

    private func runCapturing<Device: NetworkDevice>(
        _ application: some StackApplication, device: Device,
        configuration: IPv4StackConfiguration, loop: EventLoop, namespace: OwnNamespace?,
        siblings: ArpSiblings?, worker: Int
    ) throws {
        if let capture {
            let capturing = try CapturingDevice(device, path: capture)
            let stack = IPv4Stack(device: capturing, configuration: configuration, on: loop)
            Self.reportConflicts(on: stack)
            if usesDHCP { try Self.startDHCP(on: stack, loop: loop, namespace: namespace) }
            try application.run(on: stack, loop: loop, namespace: namespace)
        } else {
            let stack = IPv4Stack(device: device, configuration: configuration, on: loop)
            siblings?.join(stack.link, index: worker, loop: loop)
            Self.reportConflicts(on: stack)
            if usesDHCP { try Self.startDHCP(on: stack, loop: loop, namespace: namespace) }
            try application.run(on: stack, loop: loop, namespace: namespace)
        }
    }

    /// `--ip dhcp`: a DHCP client on the stack, started once the loop runs (the
    /// application starts the device first), saying on the console what it gets; its
    /// lease is released when the stack stops.
    static func startDHCP<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        var configuration = DHCPClient.Configuration()
        // RFC 2131 §4.4.1 and RFC 5227: probe an acknowledged address before using it.
        configuration.probeTime = .seconds(1)
        let dhcp = DHCPClientDriver(stack: stack, configuration: configuration)
        dhcp.onChange = { lease in
            if let lease {
                Console.log("oasis: dhcp: leased \(lease)")
            } else {
                Console.log("oasis: dhcp: lease lost, address dropped")
            }
        }
        dhcp.onDecline = { address in
            Console.log("oasis: dhcp: \(address) is in use (ARP probe): declined")
        }
        if let namespace {
            Console.log(
                "oasis: dhcp: asking on \(stack.device.name); serve it with e.g. ip netns exec "
                    + "\(namespace.name) dnsmasq --no-daemon --port=0 --interface=tap0 "
                    + "--dhcp-range=192.0.2.50,192.0.2.99,2m")
        }
        loop.enqueue {
            do {
                try dhcp.start()
            } catch {
                Console.log("oasis: dhcp: \(error)")
            }
        }
        // The driver lives until the stack stops, and releases its lease then.
        stack.beforeStop {
            if let lease = dhcp.lease { Console.log("oasis: dhcp: releasing \(lease.address)") }
            dhcp.stop()
            let ignored = dhcp.ignored
            Console.log(
                "oasis: dhcp: sent \(dhcp.messagesSent), acknowledged \(dhcp.acknowledgements), "
                    + "ignored \(ignored.notOurs) not ours, \(ignored.unexpected) unexpected, "
                    + "\(ignored.invalid) invalid, \(dhcp.malformed) malformed")
        }
    }

    /// Says on the console when another station claims the stack's address (RFC 5227).
    static func reportConflicts<Device: NetworkDevice>(on stack: IPv4Stack<Device>) {
        let address = stack.address
        stack.link.onAddressConflict = { claimant in
            Console.log(
                "oasis: ARP: \(claimant) claims our address \(address) "
                    + "(RFC 5227 address conflict; defended at most every 10 s)")
        }
    }
}

/// Where a device's failure is kept for the command to see after the loop stops.
final class DeviceFailure {
    var error: DeviceError?
}

/// An application run on an Oasis stack set up from ``StackOptions``: it starts the
/// stack, serves until the loop stops, and reports.
protocol StackApplication {
    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?) throws
}

/// Runs `loop` until it is stopped (a signal, through ``SignalStopper``), or for
/// `seconds` when given.
func runUntilStopped(_ loop: EventLoop, seconds: Double?) throws {
    if let seconds {
        loop.schedule(after: try milliseconds(seconds, option: "--seconds")) { loop.stop() }
    }
    // Runs until stopped: the device's or the sockets' descriptors keep the loop alive.
    try loop.run()
}

/// A number of seconds from the command line as a duration; a `ValidationError` for a
/// value that is not a finite, positive, sane number (instead of a trap in `Int(...)`).
func milliseconds(_ seconds: Double, option: String) throws -> Duration {
    guard seconds.isFinite, seconds > 0, seconds < 1e9 else {
        throw ValidationError("\(option) must be a positive number of seconds")
    }
    return .milliseconds(Int(seconds * 1000))
}
