// The DHCP client on a stack and its loop: `DHCPClient` (sans I/O) given a UDP port,
// a timer, and the stack to configure.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire

/// Runs a ``DHCPClient`` on an ``IPv4Stack``: listens on UDP port 68, sends from
/// 0.0.0.0:68 to 255.255.255.255:67 (or to the server, once it has an address), arms a
/// loop timer at the client's deadlines, and configures the stack with each lease —
/// address, subnet (option 1), gateway (3), MTU (26), DNS servers (6) — or drops the
/// address when the lease is refused or expires.
///
/// ```swift
/// let stack = IPv4Stack(device: tap, configuration: .unconfigured, on: loop)
/// try stack.start()
/// let dhcp = DHCPClientDriver(stack: stack)
/// dhcp.onChange = { lease in Console.log("dhcp: \(lease.map(\.description) ?? "no lease")") }
/// try dhcp.start()
/// // … later: DHCPRELEASE, and the stack back to 0.0.0.0
/// dhcp.stop()
/// ```
public final class DHCPClientDriver<Device: NetworkDevice> {
    /// The UDP ports of RFC 2131 §4.1.
    public static var clientPort: UInt16 { 68 }
    public static var serverPort: UInt16 { 67 }

    /// The stack configured.
    public let stack: IPv4Stack<Device>
    private var client: DHCPClient
    private var timer: (id: TimerID, deadline: Duration)?
    private var listening = false
    private var waiters: [Resolver<DHCPLease>] = []
    /// Received datagrams on port 68 that did not parse as DHCP, and messages that
    /// could not be sent (no buffer, no route).
    public private(set) var malformed = 0
    public private(set) var sendFailures = 0

    /// Called with each lease the stack takes, and with nil when it loses one.
    public var onChange: ((DHCPLease?) -> Void)?
    /// Called when an ARP probe of an acknowledged address finds it in use.
    public var onDecline: ((IPv4Address) -> Void)?

    /// A driver for `stack` (which should start unconfigured:
    /// ``IPv4StackConfiguration/unconfigured``). `seed` fixes the client's randomness.
    public init(
        stack: IPv4Stack<Device>, configuration: DHCPClient.Configuration = .init(),
        seed: UInt64? = nil
    ) {
        self.stack = stack
        client = DHCPClient(
            macAddress: stack.device.macAddress, configuration: configuration, seed: seed)
    }

    deinit {
        if let timer { stack.loop.cancelTimer(timer.id) }
    }

    /// The client's state.
    public var state: DHCPClient.State { client.state }
    /// The lease in use, if any.
    public var lease: DHCPLease? {
        switch client.state {
        case .bound, .renewing, .rebinding: client.lease
        default: nil
        }
    }
    /// The client's counters: replies ignored, messages sent, acknowledgements.
    public var ignored: DHCPClient.Ignored { client.ignored }
    public var messagesSent: Int { client.messagesSent }
    public var acknowledgements: Int { client.acknowledgements }

    /// Listens on port 68 and sends the first DHCPDISCOVER.
    public func start() throws(DatagramError) {
        if !listening {
            try stack.listen(port: Self.clientPort) { [weak self] (batch: inout DatagramBatch) in
                self?.receive(&batch)
            }
            listening = true
        }
        perform(client.start(now: stack.loop.now))
    }

    /// Gives the lease back (DHCPRELEASE), drops the address, stops listening.
    public func stop() {
        perform(client.stop(now: stack.loop.now))
        if let timer { stack.loop.cancelTimer(timer.id) }
        timer = nil
        if listening { stack.stopListening(port: Self.clientPort) }
        listening = false
        for waiter in waiters { _ = waiter.fail(DHCPClientStopped()) }
        waiters.removeAll()
    }

    /// A promise of the next lease the stack takes (now, if it has one).
    public func leased() -> Promise<DHCPLease> {
        if let lease { return Promise(on: stack.loop, value: lease) }
        let promise = Promise<DHCPLease>(on: stack.loop)
        waiters.append(Resolver(promise))
        return promise
    }

    // MARK: Receive

    private func receive(_ batch: inout DatagramBatch) {
        for index in batch.indices {
            guard let datagram = batch.take(at: index) else { continue }
            // Only a server's port; a client on port 68 elsewhere is not one.
            guard datagram.source.port == Self.serverPort else {
                malformed += 1
                continue
            }
            let message: DHCPMessage
            do {
                message = try DHCPMessage.parse(datagram.payload.bytes)
            } catch {
                malformed += 1
                continue
            }
            perform(client.receive(message, now: stack.loop.now))
        }
    }

    // MARK: Actions

    private func perform(_ actions: [DHCPClient.Action]) {
        for action in actions {
            switch action {
            case .send(let message, let destination):
                send(message, to: destination)
            case .configure(let lease):
                stack.reconfigure(
                    network: lease.network, gateway: lease.gateway, mtu: lease.mtu,
                    dnsServers: lease.dnsServers)
                onChange?(lease)
                let waiting = waiters
                waiters.removeAll()
                for waiter in waiting { _ = waiter.resolve(lease) }
            case .unconfigure:
                stack.unconfigure()
                onChange?(nil)
            case .probe(let address):
                probe(address)
            }
        }
        armTimer()
    }

    private func send(_ message: DHCPMessage, to destination: DHCPClient.Destination) {
        let address: IPv4Address
        switch destination {
        case .broadcast: address = .broadcast
        case .server(let server): address = server
        }
        do throws(DatagramError) {
            var payload = try stack.allocatePayload()
            let bytes = message.encoded()
            guard (try? payload.append(contentsOf: bytes)) != nil else { throw .noBuffers }
            try stack.send(
                payload, to: DatagramEndpoint(address: address, port: Self.serverPort),
                from: Self.clientPort)
        } catch {
            sendFailures += 1
        }
    }

    /// RFC 5227 §2.1.1: ARP requests for the address from 0.0.0.0; a reply (or a
    /// probe of its own) from another station means it is taken.
    private func probe(_ address: IPv4Address) {
        stack.link.probe(address) { [weak self] in
            guard let self, self.client.state == .checking, self.client.lease?.address == address
            else { return }
            self.onDecline?(address)
            self.perform(self.client.addressInUse(now: self.stack.loop.now))
        }
    }

    private func armTimer() {
        guard let deadline = client.nextDeadline else {
            if let timer { stack.loop.cancelTimer(timer.id) }
            timer = nil
            return
        }
        if let timer {
            if timer.deadline == deadline { return }
            stack.loop.cancelTimer(timer.id)
        }
        let id = stack.loop.schedule(at: deadline) { [weak self] in self?.timerFired() }
        timer = (id, deadline)
    }

    private func timerFired() {
        timer = nil
        perform(client.timerFired(now: stack.loop.now))
    }
}

/// The DHCP client was stopped before it got a lease.
public struct DHCPClientStopped: Error, CustomStringConvertible {
    public var description: String { "the DHCP client stopped before it had a lease" }
}
