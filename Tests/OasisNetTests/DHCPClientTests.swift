import OasisNet
import OasisWire
import Testing

/// The DHCP client's state machine on a virtual clock: every transition of RFC 2131
/// Figure 5 it takes, with a scripted server.
@Suite struct DHCPClientTests {
    static let mac = MACAddress(2, 0, 0, 0, 0, 2)
    static let server = IPv4Address(192, 0, 2, 1)
    static let offered = IPv4Address(192, 0, 2, 50)

    /// A client with fixed randomness and no jitter, so deadlines are exact.
    static func client(_ change: (inout DHCPClient.Configuration) -> Void = { _ in })
        -> DHCPClient
    {
        var configuration = DHCPClient.Configuration()
        configuration.jitter = .zero
        change(&configuration)
        return DHCPClient(macAddress: mac, configuration: configuration, seed: 42)
    }

    /// The one message in `actions`, and where it goes.
    static func sent(_ actions: [DHCPClient.Action]) -> (DHCPMessage, DHCPClient.Destination)? {
        for case .send(let message, let destination) in actions { return (message, destination) }
        return nil
    }

    /// A server's reply of `type` to `request`, granting `lease` seconds.
    static func reply(
        _ type: DHCPMessageType, to request: DHCPMessage, lease: UInt32 = 120,
        from server: IPv4Address = server, address: IPv4Address = offered
    ) -> DHCPMessage {
        var reply = DHCPMessage(
            operation: .reply, transactionID: request.transactionID,
            clientHardwareAddress: request.clientHardwareAddress)
        reply.options.messageType = type
        reply.options.serverIdentifier = server
        if type != .nak {
            reply.yourAddress = address
            reply.options.leaseTime = lease
            reply.options.subnetMask = IPv4Address(255, 255, 255, 0)
            reply.options.routers = [server]
            reply.options.domainNameServers = [server, IPv4Address(192, 0, 2, 53)]
            reply.options.interfaceMTU = 1400
        }
        return reply
    }

    /// Drives a client to BOUND at time zero; returns it.
    static func bound(lease: UInt32 = 120) throws -> DHCPClient {
        var client = client()
        let (discover, _) = try #require(sent(client.start(now: .zero)))
        let (request, _) = try #require(
            sent(client.receive(reply(.offer, to: discover, lease: lease), now: .zero)))
        _ = client.receive(reply(.ack, to: request, lease: lease), now: .zero)
        try #require(client.state == .bound)
        return client
    }

    @Test func discoverOfferRequestAck() throws {
        var client = Self.client()
        #expect(client.state == .initial)
        let (discover, to) = try #require(Self.sent(client.start(now: .zero)))
        #expect(to == .broadcast && client.state == .selecting)
        #expect(discover.operation == .request && discover.options.messageType == .discover)
        #expect(discover.clientHardwareAddress == Self.mac)
        #expect(discover.options.clientIdentifier == [1, 2, 0, 0, 0, 0, 2])
        #expect(discover.options.parameterRequestList.contains(26))
        #expect(client.nextDeadline == .seconds(4))

        let (request, requestTo) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .seconds(1))))
        #expect(requestTo == .broadcast && client.state == .requesting)
        #expect(request.transactionID == discover.transactionID)
        #expect(request.options.messageType == .request)
        #expect(request.options.requestedAddress == Self.offered)
        #expect(request.options.serverIdentifier == Self.server)
        #expect(request.clientAddress == .any)
        #expect(request.seconds == 1)

        let actions = client.receive(Self.reply(.ack, to: request), now: .seconds(1))
        #expect(client.state == .bound)
        guard case .configure(let lease) = try #require(actions.first) else {
            Issue.record("expected a configuration, got \(actions)")
            return
        }
        #expect(lease.network == IPv4Network("192.0.2.50/24")!)
        #expect(lease.gateway == Self.server && lease.mtu == 1400)
        #expect(lease.dnsServers == [Self.server, IPv4Address(192, 0, 2, 53)])
        #expect(lease.start == .seconds(1) && lease.expiry == .seconds(121))
        // T1 and T2 default to 0.5 and 0.875 of the lease (RFC 2131 §4.4.5).
        #expect(client.nextDeadline == .seconds(61))
        #expect(lease.rebindingTime == .seconds(105))
    }

    @Test func retransmissionBacksOffExponentially() throws {
        var client = Self.client()
        _ = client.start(now: .zero)
        var deadlines: [Duration] = []
        for _ in 0..<7 {
            let due = try #require(client.nextDeadline)
            deadlines.append(due)
            let (message, _) = try #require(Self.sent(client.timerFired(now: due)))
            #expect(message.options.messageType == .discover)
        }
        // 4, 8, 16, 32, 64, 64, 64 s apart.
        #expect(deadlines == [4, 12, 28, 60, 124, 188, 252].map { Duration.seconds($0) })
    }

    @Test func jitterStaysWithinASecond() throws {
        var configuration = DHCPClient.Configuration()
        configuration.jitter = .seconds(1)
        for seed in 0..<50 as Range<UInt64> {
            var client = DHCPClient(macAddress: Self.mac, configuration: configuration, seed: seed)
            _ = client.start(now: .zero)
            let first = try #require(client.nextDeadline)
            #expect(first >= .seconds(3) && first <= .seconds(5))
        }
    }

    @Test func transactionIDsAreRandom() throws {
        var a = DHCPClient(macAddress: Self.mac)
        var b = DHCPClient(macAddress: Self.mac)
        let (first, _) = try #require(Self.sent(a.start(now: .zero)))
        let (second, _) = try #require(Self.sent(b.start(now: .zero)))
        #expect(first.transactionID != second.transactionID)
    }

    @Test func repliesNotOursAreIgnored() throws {
        var client = Self.client()
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        var stranger = Self.reply(.offer, to: discover)
        stranger.transactionID &+= 1
        #expect(client.receive(stranger, now: .zero).isEmpty)
        stranger = Self.reply(.offer, to: discover)
        stranger.clientHardwareAddress = MACAddress(2, 0, 0, 0, 0, 3)
        #expect(client.receive(stranger, now: .zero).isEmpty)
        #expect(client.receive(Self.reply(.ack, to: discover), now: .zero).isEmpty)
        var noServer = Self.reply(.offer, to: discover)
        noServer.options.serverIdentifier = nil
        #expect(client.receive(noServer, now: .zero).isEmpty)
        #expect(
            client.receive(Self.reply(.offer, to: discover, address: .broadcast), now: .zero)
                .isEmpty)
        #expect(client.state == .selecting)
        #expect(
            client.ignored.notOurs == 2 && client.ignored.unexpected == 1
                && client.ignored.invalid == 2)
    }

    @Test func ackFromAnotherServerIsIgnored() throws {
        var client = Self.client()
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        let (request, _) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .zero)))
        let other = IPv4Address(192, 0, 2, 9)
        #expect(client.receive(Self.reply(.ack, to: request, from: other), now: .zero).isEmpty)
        #expect(client.receive(Self.reply(.nak, to: request, from: other), now: .zero).isEmpty)
        #expect(client.state == .requesting)
    }

    @Test func requestingGivesUpAndDiscoversAgain() throws {
        var client = Self.client()
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        _ = client.receive(Self.reply(.offer, to: discover), now: .zero)
        for _ in 1..<4 {
            let (again, _) = try #require(Self.sent(client.timerFired(now: client.nextDeadline!)))
            #expect(again.options.messageType == .request)
        }
        let (restart, _) = try #require(Self.sent(client.timerFired(now: client.nextDeadline!)))
        #expect(restart.options.messageType == .discover && client.state == .selecting)
        #expect(restart.transactionID != discover.transactionID)
    }

    @Test func nakInRequestingStartsOver() throws {
        var client = Self.client()
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        let (request, _) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .zero)))
        var nak = Self.reply(.nak, to: request)
        nak.options.message = "wrong network"
        #expect(client.receive(nak, now: .seconds(2)).isEmpty)  // nothing was configured
        #expect(client.state == .initial && client.lastRefusal == "wrong network")
        #expect(client.nextDeadline == .seconds(3))
        let (again, _) = try #require(Self.sent(client.timerFired(now: .seconds(3))))
        #expect(again.options.messageType == .discover && client.state == .selecting)
    }

    @Test func renewAtT1() throws {
        var client = try Self.bound()
        #expect(client.nextDeadline == .seconds(60))
        let (renewal, to) = try #require(Self.sent(client.timerFired(now: .seconds(60))))
        #expect(client.state == .renewing && to == .server(Self.server))
        #expect(renewal.clientAddress == Self.offered)
        #expect(renewal.options.requestedAddress == nil && renewal.options.serverIdentifier == nil)
        // Half the time to T2 (45 s), but no less than a minute, and never past T2.
        #expect(client.nextDeadline == .seconds(105))
        let actions = client.receive(Self.reply(.ack, to: renewal), now: .seconds(61))
        // The same address, subnet, gateway and MTU: nothing to reconfigure.
        #expect(actions.isEmpty && client.state == .bound)
        #expect(client.lease?.start == .seconds(60) && client.lease?.expiry == .seconds(180))
        #expect(client.nextDeadline == .seconds(120))
        #expect(client.acknowledgements == 2)
    }

    @Test func renewalWithChangesReconfigures() throws {
        var client = try Self.bound()
        let (renewal, _) = try #require(Self.sent(client.timerFired(now: .seconds(60))))
        var ack = Self.reply(.ack, to: renewal)
        ack.options.interfaceMTU = 1280
        let actions = client.receive(ack, now: .seconds(61))
        guard case .configure(let lease) = try #require(actions.first) else {
            Issue.record("expected a configuration, got \(actions)")
            return
        }
        #expect(lease.mtu == 1280 && client.state == .bound)
    }

    @Test func renewalRetransmitsWithinLongLeases() throws {
        var client = try Self.bound(lease: 3600)
        let (_, _) = try #require(Self.sent(client.timerFired(now: .seconds(1800))))
        // T2 is at 3150 s: half the 1350 s left.
        #expect(client.nextDeadline == .seconds(2475))
        let (again, to) = try #require(Self.sent(client.timerFired(now: .seconds(2475))))
        #expect(again.options.messageType == .request && to == .server(Self.server))
        #expect(client.nextDeadline == .seconds(2812) + .milliseconds(500))
    }

    @Test func rebindAtT2ThenExpireAndStartOver() throws {
        var client = try Self.bound()
        _ = client.timerFired(now: .seconds(60))  // RENEWING; the server is gone
        let (rebind, to) = try #require(Self.sent(client.timerFired(now: .seconds(105))))
        #expect(client.state == .rebinding && to == .broadcast)
        #expect(rebind.clientAddress == Self.offered && rebind.options.serverIdentifier == nil)
        // Half of the 15 s left would be under a minute: the next deadline is the expiry.
        #expect(client.nextDeadline == .seconds(120))
        let actions = client.timerFired(now: .seconds(120))
        #expect(actions == [.unconfigure])
        #expect(client.state == .initial && client.lease == nil)
        let (discover, _) = try #require(Self.sent(client.timerFired(now: client.nextDeadline!)))
        #expect(discover.options.messageType == .discover && client.state == .selecting)
    }

    @Test func rebindingAckFromAnotherServer() throws {
        var client = try Self.bound()
        _ = client.timerFired(now: .seconds(60))
        let (rebind, _) = try #require(Self.sent(client.timerFired(now: .seconds(105))))
        let other = IPv4Address(192, 0, 2, 9)
        let actions = client.receive(Self.reply(.ack, to: rebind, from: other), now: .seconds(106))
        #expect(client.state == .bound && client.lease?.server == other)
        // The new server names itself as the router: the gateway changes.
        guard case .configure(let lease) = actions.first else {
            Issue.record("expected a configuration, got \(actions)")
            return
        }
        #expect(lease.gateway == other && lease.address == Self.offered)
    }

    @Test func nakWhileRenewingDropsTheAddress() throws {
        var client = try Self.bound()
        let (renewal, _) = try #require(Self.sent(client.timerFired(now: .seconds(60))))
        let actions = client.receive(Self.reply(.nak, to: renewal), now: .seconds(61))
        #expect(actions == [.unconfigure] && client.state == .initial)
    }

    @Test func releaseOnStop() throws {
        var client = try Self.bound()
        let actions = client.stop(now: .seconds(10))
        let (release, to) = try #require(Self.sent(actions))
        #expect(to == .server(Self.server) && release.options.messageType == .release)
        #expect(release.clientAddress == Self.offered)
        #expect(release.options.serverIdentifier == Self.server)
        #expect(actions.last == .unconfigure)
        #expect(client.state == .stopped && client.nextDeadline == nil)
        #expect(client.stop(now: .seconds(11)).isEmpty)
    }

    @Test func stopBeforeALeaseSendsNothing() {
        var client = Self.client()
        _ = client.start(now: .zero)
        #expect(client.stop(now: .seconds(1)).isEmpty && client.state == .stopped)
    }

    @Test func probeThenBind() throws {
        var client = Self.client { $0.probeTime = .seconds(2) }
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        let (request, _) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .zero)))
        let actions = client.receive(Self.reply(.ack, to: request), now: .zero)
        #expect(actions == [.probe(Self.offered)] && client.state == .checking)
        let bound = client.timerFired(now: .seconds(2))
        guard case .configure(let lease) = bound.first else {
            Issue.record("expected a configuration, got \(bound)")
            return
        }
        #expect(lease.address == Self.offered && client.state == .bound)
    }

    @Test func probeFindsTheAddressInUse() throws {
        var client = Self.client { $0.probeTime = .seconds(2) }
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        let (request, _) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .zero)))
        _ = client.receive(Self.reply(.ack, to: request), now: .zero)
        let (decline, to) = try #require(Self.sent(client.addressInUse(now: .seconds(1))))
        #expect(to == .broadcast && decline.options.messageType == .decline)
        #expect(decline.options.requestedAddress == Self.offered)
        #expect(decline.options.serverIdentifier == Self.server)
        #expect(client.state == .initial && client.nextDeadline == .seconds(11))
    }

    @Test func infiniteLeaseIsNeverRenewed() throws {
        let client = try Self.bound(lease: .max)
        #expect(client.nextDeadline == nil && client.lease?.expiry == nil)
    }

    @Test func serverTimesAreKeptInOrder() throws {
        var client = Self.client()
        let (discover, _) = try #require(Self.sent(client.start(now: .zero)))
        let (request, _) = try #require(
            Self.sent(client.receive(Self.reply(.offer, to: discover), now: .zero)))
        var ack = Self.reply(.ack, to: request, lease: 100)
        ack.options.renewalTime = 500
        ack.options.rebindingTime = 90
        _ = client.receive(ack, now: .zero)
        #expect(
            client.lease?.rebindingTime == .seconds(90) && client.lease?.renewalTime == .seconds(45)
        )
    }
}
