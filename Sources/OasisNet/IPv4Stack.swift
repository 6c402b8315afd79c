// The direct stack: the layers put together over one device and the loop (Mirage's
// `Tcpip_stack_direct`). Each layer is generic over the one below and specialised at
// compile time; this type wires the receive path through them with static calls.

import OasisBits
import OasisDevices
import OasisLoop
import OasisTCP
import OasisWire

/// How an ``IPv4Stack`` is set up.
public struct IPv4StackConfiguration: Sendable {
    /// The stack's address and subnet, e.g. `192.0.2.2/24`.
    public var network: IPv4Network
    /// Where packets for other subnets go; nil: only the local subnet is reachable.
    public var gateway: IPv4Address?
    /// The largest IP packet to send, when less than the device's MTU (DHCP option 26).
    public var mtu: Int?
    /// The DNS servers the network names (DHCP option 6), for applications to use.
    public var dnsServers: [IPv4Address] = []
    /// ARP settings. Up to 64 packets wait per unresolved address (Linux keeps about
    /// 200 KB): a fragmented datagram sent before its next hop is known must fit.
    public var arp: ArpCache.Configuration = {
        var arp = ArpCache.Configuration()
        arp.waitingPerAddress = 64
        arp.maximumWaiting = 128  // far below a device pool's buffers
        return arp
    }()
    public var reassembly = IPv4Reassembler.Configuration()
    /// ICMP errors per second (unreachables), and the burst allowed.
    public var icmpErrorsPerSecond = 100
    public var icmpErrorBurst = 20
    /// Announce the address with a gratuitous ARP when the stack starts.
    public var gratuitousArp = true
    /// Answer ICMP echo requests (the tutorial's ping responder).
    public var answersPing = true
    /// Most UDP ports listened on at once.
    public var maximumUDPListeners = 64
    /// TCP: the layer's bounds and every connection's settings.
    public var tcp = TCPLayerConfiguration()

    public init(network: IPv4Network, gateway: IPv4Address? = nil) {
        self.network = network
        self.gateway = gateway
    }

    /// A stack with no address yet, for a DHCP client to configure
    /// (``IPv4Configuration/unconfigured``).
    public static var unconfigured: IPv4StackConfiguration {
        IPv4StackConfiguration(network: IPv4Configuration.unconfigured)
    }

    /// The IP layer's part.
    public var ipv4: IPv4Configuration {
        var ip = IPv4Configuration(network: network, gateway: gateway, mtu: mtu)
        ip.reassembly = reassembly
        ip.icmpErrorsPerSecond = icmpErrorsPerSecond
        ip.icmpErrorBurst = icmpErrorBurst
        return ip
    }
}

/// The Oasis stack over one device: Ethernet and ARP (``EthernetLink``), IPv4 with
/// reassembly and fragmentation (``IPv4Layer``), ICMP (``ICMPv4Layer``) and UDP
/// (``UDPLayer``), all on the loop's thread. It is the stack's ``DatagramService``.
///
/// ```swift
/// let stack = IPv4Stack(device: tap, configuration: .init(network: IPv4Network("192.0.2.2/24")!), on: loop)
/// try stack.start()
/// try stack.listen(port: 7) { datagram in try? stack.send(datagram.payload, to: datagram.source, from: 7) }
/// ```
///
/// A device's batch of frames goes through the layers in one call (``receive(_:)``);
/// the datagrams it held reach each UDP listener as one batch, and the replies sent
/// meanwhile leave together. A frame is parsed where it arrived and a reply is built in
/// front of the payload it answers: nothing is copied but fragments (into the
/// reassembly buffer) and packets that wait for ARP.
public final class IPv4Stack<Device: NetworkDevice>: DatagramService, StreamService {
    public typealias Link = EthernetLink<Device>
    public typealias IP = IPv4Layer<Link>

    public let device: Device
    /// The configuration: as given, then as ``reconfigure(network:gateway:mtu:dnsServers:)``
    /// changes it.
    public private(set) var configuration: IPv4StackConfiguration
    /// The layers, bottom up.
    public let link: Link
    public let ip: IP
    public let icmp: ICMPv4Layer<IP>
    public let udp: UDPLayer<IP>
    public let tcp: TCPLayer<IP>
    public let loop: EventLoop

    public init(device: Device, configuration: IPv4StackConfiguration, on loop: EventLoop) {
        self.device = device
        self.configuration = configuration
        link = EthernetLink(
            device: device, address: configuration.network.address, arp: configuration.arp,
            on: loop)
        ip = IPv4Layer(link: link, configuration: configuration.ipv4, on: loop)
        icmp = ICMPv4Layer(ip: ip, answersPing: configuration.answersPing)
        udp = UDPLayer(ip: ip, maximumListeners: configuration.maximumUDPListeners)
        tcp = TCPLayer(ip: ip, on: loop, configuration: configuration.tcp)
        self.loop = loop
        // ICMP errors about our segments reach TCP (path MTU, unreachables).
        icmp.errorHandler = { [weak tcp] report in
            report.protocol == .tcp ? tcp?.icmpError(report) ?? false : false
        }
    }

    /// The stack's address; 0.0.0.0 while it has none.
    public var address: IPv4Address { configuration.network.address }

    /// Whether the stack has an address.
    public var isConfigured: Bool { !address.isUnspecified }

    /// Takes a new address, subnet, gateway, MTU and DNS servers (a DHCP lease), and
    /// announces the address when it has one and ``IPv4StackConfiguration/gratuitousArp``
    /// says so. TCP connections on an old address are left to time out; listeners
    /// and UDP ports stay and take the new address.
    ///
    /// ```swift
    /// stack.reconfigure(network: IPv4Network("192.0.2.50/24")!, gateway: IPv4Address("192.0.2.1"))
    /// ```
    public func reconfigure(
        network: IPv4Network, gateway: IPv4Address?, mtu: Int? = nil, dnsServers: [IPv4Address] = []
    ) {
        let announce = network.address != address
        configuration.network = network
        configuration.gateway = gateway
        configuration.mtu = mtu
        configuration.dnsServers = dnsServers
        link.reconfigure(address: network.address)
        ip.reconfigure(configuration.ipv4)
        if announce && isConfigured && configuration.gratuitousArp && started { link.announce() }
    }

    /// Drops the address: the stack goes back to 0.0.0.0, as before a DHCP lease.
    public func unconfigure() {
        reconfigure(network: IPv4Configuration.unconfigured, gateway: nil)
    }

    /// Whether ``start()`` was called (an address is announced only once it was).
    @usableFromInline internal var started = false

    /// Starts receiving from the device and announces the address. Inlinable, so that
    /// the receive handler is compiled where the device's type is known: the whole
    /// receive path is then specialised for it, with no dynamic dispatch.
    @inlinable
    public func start() throws(DeviceError) {
        let stack = Unretained(self)
        try device.start { (batch: inout PacketBatch) in stack.call { $0.receive(&batch) } }
        started = true
        if configuration.gratuitousArp && isConfigured { link.announce() }
    }

    /// Work to do when the stack stops, while its device is still open (a DHCP client
    /// sends its DHCPRELEASE), in the order given; each runs once.
    ///
    /// ```swift
    /// stack.beforeStop { dhcp.stop() }
    /// ```
    public func beforeStop(_ body: @escaping () -> Void) {
        stopHandlers.append(body)
    }

    private var stopHandlers: [() -> Void] = []

    /// Stops receiving; closes the device.
    public func stop() {
        let handlers = stopHandlers
        stopHandlers.removeAll()
        for handler in handlers { handler() }
        link.stop()
        ip.stop()
        device.close()
    }

    /// The device's handler holds the stack unretained (no reference count per
    /// batch): a stack dropped while its device lives stops it first.
    deinit { stop() }

    /// Handles a batch of frames from the device, through every layer; the datagrams it
    /// held reach their listeners as a batch at the end.
    @inlinable
    public func receive(_ batch: inout PacketBatch) {
        tcp.beginBatch()
        link.receive(&batch, to: self)
        udp.deliverPending()
        tcp.endOfBatch()
    }

    // MARK: Counters

    /// Every drop, per layer and reason.
    public var drops: NetworkDropCounters {
        var all = NetworkDropCounters()
        let linkDrops = link.drops
        all.ethernet = linkDrops.ethernet
        all.arp = linkDrops.arp
        let ipDrops = ip.drops
        all.ipv4 = ipDrops.ipv4
        all.reassembly = ipDrops.reassembly
        all.icmp = icmp.drops
        all.icmp.count(.rateLimited, ip.icmpErrorDrops[.rateLimited])
        all.udp = udp.drops
        return all
    }

    /// Echo requests answered.
    public var echoRepliesSent: UInt64 { icmp.echoRepliesSent }
    /// Datagrams delivered to listeners, and sent.
    public var datagramsDelivered: UInt64 { udp.datagramsDelivered }
    public var datagramsSent: UInt64 { udp.datagramsSent }
    /// Bytes held by datagrams waiting for their missing fragments.
    public var reassemblyBytesHeld: Int { ip.reassemblyBytesHeld }
    /// Entries in the ARP cache.
    public var arpEntries: Int { link.arpEntries }

    // MARK: Datagram service (UDP)

    public func listen(port: UInt16, batches handler: @escaping (inout DatagramBatch) -> Void)
        throws(DatagramError)
    {
        try udp.listen(port: port, batches: handler)
    }

    public func stopListening(port: UInt16) {
        udp.stopListening(port: port)
    }

    @inlinable
    public func send(
        _ payload: consuming Packet, to destination: DatagramEndpoint, from port: UInt16
    ) throws(DatagramError) {
        try udp.send(payload, to: destination, from: port)
    }

    @inlinable
    public func allocatePayload() throws(DatagramError) -> Packet {
        try udp.allocatePayload()
    }
}

extension IPv4Stack: LinkReceiver {
    @inlinable
    public func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) {
        ip.receive(packet, linkBroadcast: linkBroadcast, to: self)
    }
}

extension IPv4Stack: IPv4Receiver {
    @inlinable
    public func accepts(_ protocol: IPProtocol) -> Bool {
        `protocol` == .udp || `protocol` == .tcp || `protocol` == .icmp
    }

    @inlinable
    public func receive(_ payload: consuming Packet, info: IPv4Info) {
        switch info.protocol {
        case .udp: udp.receive(payload, info: info)
        case .tcp: tcp.receive(payload, info: info)
        case .icmp: icmp.receive(payload, info: info)
        default: break
        }
    }
}

// MARK: Stream service (TCP)

extension IPv4Stack {
    public typealias Connection = TCPLayer<IP>.Connection
    public typealias Listener = TCPLayer<IP>.Listener

    public func listen(port: UInt16, backlog: Int, _ accept: @escaping (Connection) -> Void)
        throws(StreamError) -> Listener
    {
        try tcp.listen(port: port, backlog: backlog, accept)
    }

    public func connect(to remote: StreamEndpoint) -> Promise<Connection> {
        tcp.connect(to: remote)
    }
}
