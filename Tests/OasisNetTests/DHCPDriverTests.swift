// The DHCP client driving a stack over the memory pair, on the virtual clock: a
// scripted server on another Oasis stack grants, renews and then stops answering.

import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisWire
import Testing

/// A DHCP server of a few lines on the raw end of a memory pair, at 192.0.2.1: offers
/// 192.0.2.50 for `lease` seconds and acknowledges every request for it, unicast to
/// the offered address at the client's hardware address (as dnsmasq does, without ARP);
/// answers ARP for its own address, and for the offered one while `claims` it.
final class ScriptedDHCPServer {
    let device: MemoryDevice
    let mac: MACAddress
    let address = IPv4Address(192, 0, 2, 1)
    let offered = IPv4Address(192, 0, 2, 50)
    var lease: UInt32 = 120
    var answering = true
    var claims = false
    var received: [DHCPMessage] = []
    /// The destination address of each IPv4 datagram with a DHCP message from the client.
    var destinations: [IPv4Address] = []
    var sources: [IPv4Address] = []

    init(device: MemoryDevice) throws {
        self.device = device
        mac = device.macAddress
        try device.startEach { [weak self] frame in self?.receive(Bits(frame)) }
    }

    func receive(_ frame: Bits) {
        guard let ethernet = try? EthernetRepr.parse(frame.bytes),
            let payload = try? frame.slice(
                from: ethernet.headerLength, length: frame.count - ethernet.headerLength)
        else { return }
        if ethernet.etherType == .arp {
            guard let arp = try? ArpRepr.parse(payload.bytes), arp.operation == .request,
                arp.targetProtocolAddress == address
                    || (claims && arp.targetProtocolAddress == offered)
            else { return }
            let reply = ArpRepr(
                operation: .reply, senderHardwareAddress: mac,
                senderProtocolAddress: arp.targetProtocolAddress,
                targetHardwareAddress: arp.senderHardwareAddress,
                targetProtocolAddress: arp.senderProtocolAddress)
            var out = Bits([UInt8](), headroom: 64)
            try? reply.emit(prependingTo: &out)
            try? reply.ethernetHeader.emit(prependingTo: &out)
            try? device.transmit(out)
            return
        }
        guard ethernet.etherType == .ipv4, let (ip, udp) = try? parseIPv4(payload),
            ip.protocol == .udp, udp.count >= 8,
            let message = try? DHCPMessage.parse(Array(udp.copyBytes()[8...]))
        else { return }
        received.append(message)
        destinations.append(ip.destination)
        sources.append(ip.source)
        answer(message)
    }

    func answer(_ message: DHCPMessage) {
        guard answering, let type = message.options.messageType else { return }
        var reply = DHCPMessage(
            operation: .reply, transactionID: message.transactionID,
            clientHardwareAddress: message.clientHardwareAddress)
        switch type {
        case .discover: reply.options.messageType = .offer
        case .request: reply.options.messageType = .ack
        default: return
        }
        reply.yourAddress = offered
        reply.options.serverIdentifier = address
        reply.options.leaseTime = lease
        reply.options.subnetMask = IPv4Address(255, 255, 255, 0)
        reply.options.routers = [address]
        reply.options.domainNameServers = [address]
        reply.options.interfaceMTU = 1400
        var out = Bits(reply.encoded(), headroom: 128)
        try? UDPRepr(sourcePort: 67, destinationPort: 68).emit(
            prependingTo: &out, source: address, destination: offered)
        try? IPv4Repr(
            source: address, destination: offered, protocol: .udp, payloadLength: out.count,
            identification: 1
        ).emit(prependingTo: &out)
        try? EthernetRepr(
            destination: message.clientHardwareAddress, source: mac, etherType: .ipv4
        ).emit(prependingTo: &out)
        try? device.transmit(out)
    }

    func count(_ type: DHCPMessageType) -> Int {
        received.filter { $0.options.messageType == type }.count
    }
}

@Suite struct DHCPDriverTests {
    func makePair(_ loop: EventLoop) throws -> (IPv4Stack<MemoryDevice>, ScriptedDHCPServer) {
        let (clientEnd, serverEnd) = MemoryDevice.pair(on: loop)
        let client = IPv4Stack(device: clientEnd, configuration: .unconfigured, on: loop)
        try client.start()
        return (client, try ScriptedDHCPServer(device: serverEnd))
    }

    @Test func leaseRenewalRebindingAndExpiry() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, server) = try makePair(loop)
        #expect(!stack.isConfigured)
        var configuration = DHCPClient.Configuration()
        configuration.jitter = .zero
        let dhcp = DHCPClientDriver(stack: stack, configuration: configuration, seed: 1)
        var changes: [DHCPLease?] = []
        dhcp.onChange = { changes.append($0) }
        try dhcp.start()
        try loop.advance(by: .milliseconds(10))
        #expect(dhcp.state == .bound)
        #expect(stack.address == server.offered && stack.configuration.network.prefixLength == 24)
        #expect(stack.configuration.gateway == server.address)
        #expect(stack.configuration.dnsServers == [server.address])
        #expect(stack.ip.mtu == 1400)
        #expect(changes.count == 1)
        // The discover and the request went from 0.0.0.0 to the broadcast address.
        #expect(server.count(.discover) == 1 && server.count(.request) == 1)
        #expect(server.sources == [.any, .any] && server.destinations == [.broadcast, .broadcast])

        // T1 at 60 s: renewed with the server, unicast; nothing changes.
        try loop.advance(by: .seconds(60))
        #expect(server.count(.request) == 2)
        #expect(server.received.last?.clientAddress == server.offered)
        #expect(server.sources.last == server.offered && server.destinations.last == server.address)
        #expect(dhcp.state == .bound && dhcp.acknowledgements == 2 && changes.count == 1)

        // The server goes away: RENEWING at T1 (120 s), REBINDING at T2 (165 s), the
        // lease gone at 180 s.
        server.answering = false
        try loop.advance(by: .seconds(61))
        #expect(dhcp.state == .renewing && stack.isConfigured)
        try loop.advance(by: .seconds(45))
        #expect(dhcp.state == .rebinding && stack.isConfigured)
        try loop.advance(by: .seconds(15))
        #expect(dhcp.state == .initial || dhcp.state == .selecting)
        #expect(!stack.isConfigured && stack.address == .any)
        #expect(changes.count == 2 && changes.last! == nil)

        // It comes back: a new lease.
        server.answering = true
        try loop.advance(by: .seconds(10))
        #expect(dhcp.state == .bound && stack.address == server.offered)
        dhcp.stop()
    }

    @Test func releaseOnStop() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, server) = try makePair(loop)
        let dhcp = DHCPClientDriver(stack: stack, seed: 2)
        var leased: DHCPLease?
        dhcp.leased().onSuccess { leased = $0 }
        try dhcp.start()
        try loop.advance(by: .milliseconds(10))
        #expect(leased?.address == server.offered)
        dhcp.stop()
        try loop.advance(by: .milliseconds(10))
        #expect(server.count(.release) == 1)
        #expect(server.received.last?.clientAddress == server.offered)
        #expect(!stack.isConfigured && dhcp.state == .stopped)
    }

    @Test func probeFindsTheAddressTakenAndDeclines() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, server) = try makePair(loop)
        // Another station has the address the server offers: it answers the probe.
        server.claims = true
        var configuration = DHCPClient.Configuration()
        configuration.probeTime = .seconds(2)
        let dhcp = DHCPClientDriver(stack: stack, configuration: configuration, seed: 3)
        var declined: [IPv4Address] = []
        dhcp.onDecline = { declined.append($0) }
        try dhcp.start()
        try loop.advance(by: .seconds(1))
        #expect(declined == [server.offered])
        #expect(server.count(.decline) == 1 && !stack.isConfigured)
        #expect(dhcp.state == .initial)
        dhcp.stop()
    }

    @Test func beforeAnAddressOnlyUnicastToPort68IsTaken() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, server) = try makePair(loop)
        var delivered: [UInt16] = []
        for port: UInt16 in [7, 68] {
            try stack.listen(port: port) { batch in
                for index in batch.indices {
                    if let datagram = batch.take(at: index) {
                        delivered.append(datagram.destination.port)
                    }
                }
            }
        }
        for port: UInt16 in [7, 68] {
            var out = Bits([1, 2, 3, 4], headroom: 128)
            try UDPRepr(sourcePort: 67, destinationPort: port).emit(
                prependingTo: &out, source: server.address, destination: server.offered)
            try IPv4Repr(
                source: server.address, destination: server.offered, protocol: .udp,
                payloadLength: out.count, identification: 9
            ).emit(prependingTo: &out)
            try EthernetRepr(
                destination: stack.device.macAddress, source: server.mac, etherType: .ipv4
            ).emit(prependingTo: &out)
            try server.device.transmit(out)
        }
        try loop.advance(by: .milliseconds(1))
        #expect(delivered == [68])
        #expect(stack.drops.ipv4[.notForUs] == 1)
    }
}
