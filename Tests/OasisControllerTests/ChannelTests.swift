// The controller's channel against switches we script with our own wire library, over
// loopback: handshake, versions, echo, xids, stats, malformed input, backpressure.

import OasisBits
import OasisController
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisWire
import Testing

/// Records every event (the callback form).
final class EventLog {
    var events: [ControllerEvent] = []
    var joins: [Datapath] {
        events.compactMap { if case .datapathJoin(let datapath) = $0 { datapath } else { nil } }
    }
    var leaves: [(Datapath, DisconnectReason)] {
        events.compactMap {
            if case .datapathLeave(let datapath, let reason) = $0 {
                (datapath, reason)
            } else {
                nil
            }
        }
    }
}

@Suite("OpenFlow controller channel, against scripted switches", .serialized)
struct ChannelTests {
    @Test func handshakeJoinsWithFeaturesAndConfig() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 0x42)
            #expect(await eventually { !peer.messages(.hello).isEmpty })
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 1 })
            let datapath = try #require(log.joins.first)
            #expect(datapath.id == 0x42)
            #expect(datapath.state == .ready)
            #expect(datapath.ports.count == 3)
            #expect(datapath.description.hasPrefix("dpid 0000000000000042"))
            #expect(await eventually { !peer.messages(.setConfig).isEmpty })
            #expect(
                peer.messages(.setConfig).first?.body
                    == .setConfig(SwitchConfig(flags: [], missSendLength: 128)))
            #expect(peer.received.first?.type == .hello)
            // Replies pair with requests by xid, in three forms.
            try await datapath.barrier()
            var called = false
            datapath.barrier { result in called = (try? result.get()) != nil }
            #expect(await eventually { called })
        }
    }

    @Test func requestTimesOutAndRepliesPairByXID() throws {
        var limits = ChannelLimits()
        limits.requestTimeout = .milliseconds(200)
        try withController(limits: limits) { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 7)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 1 })
            let datapath = try #require(log.joins.first)
            // Unanswered: fails after the request timeout.
            do {
                _ = try await datapath.request(.getConfigRequest)
                Issue.record("an unanswered request succeeded")
            } catch {
                #expect("\(error)" == "\(ControllerError.timedOut)")
            }
            // Answered out of order: each reply finds its own request.
            var first: StatsReply?
            var second: Result<StatsReply, ControllerError>?
            datapath.stats(.table) { first = try? $0.get() }
            datapath.stats(.description) { second = $0 }
            #expect(await eventually { peer.messages(.statsRequest).count == 2 })
            let requests = peer.messages(.statsRequest)
            peer.send(
                Message(
                    xid: requests[1].xid,
                    body: .error(ErrorMessage(kind: .badRequest(.badStat), data: Payload([1])))))
            peer.send(Message(xid: requests[0].xid, body: .statsReply(.table([]))))
            #expect(await eventually { first != nil && second != nil })
            #expect(first == .table([]))
            if case .failure(.switchError(let kind, _))? = second {
                #expect(kind == .badRequest(.badStat))
            } else {
                Issue.record("the error did not fail its request: \(String(describing: second))")
            }
            // The error is an event too, with its xid.
            #expect(
                log.events.contains {
                    if case .error(_, let xid, _) = $0 { return xid == requests[1].xid }
                    return false
                })
            // A reply nobody asked for is counted, not delivered.
            peer.send(Message(xid: 0xdead, body: .barrierReply))
            #expect(await eventually { datapath.counters.unsolicitedReplies >= 1 })
        }
    }

    @Test func multipartStatsAreReassembled() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 7)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 1 })
            let datapath = try #require(log.joins.first)
            let pending: Promise<StatsReply> = datapath.stats(.port(.none))
            #expect(await eventually { peer.messages(.statsRequest).count == 1 })
            let xid = peer.messages(.statsRequest)[0].xid
            peer.send(
                Message(
                    xid: xid,
                    body: .statsReply(
                        .port([
                            PortStats(portNumber: PortNumber(1)),
                            PortStats(portNumber: PortNumber(2)),
                        ]),
                        flags: .more)))
            peer.send(
                Message(xid: xid, body: .statsReply(.port([PortStats(portNumber: PortNumber(3))]))))
            #expect(await eventually { !pending.isPending })
            if case .success(.port(let ports))? = pending.result {
                #expect(ports.map(\.portNumber) == [1, 2, 3].map { PortNumber($0) })
            } else {
                Issue.record("not reassembled: \(String(describing: pending.result))")
            }
            let statsEvents = log.events.filter {
                if case .statsReply = $0 { return true }
                return false
            }
            #expect(statsEvents.count == 1)
        }
    }

    @Test func versionNegotiation() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            // Version 0: HELLO_FAILED/INCOMPATIBLE, then the channel closes.
            let old = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            old.sendRaw([0x00, 0x00, 0x00, 0x08, 0, 0, 0, 9])
            #expect(await eventually { old.closed })
            #expect(old.undecodable.isEmpty)
            #expect(old.errors.map(\.kind) == [.helloFailed(.incompatible)])
            #expect(old.errors.first?.xid == 9)
            // Version 4 whose bitmap says 1.3 only (bit 4): HELLO_FAILED.
            let modern = try await ScriptedSwitch.connect(streams, port: port, datapathID: 2)
            modern.sendRaw([0x04, 0x00, 0x00, 0x10, 0, 0, 0, 3] + [0, 1, 0, 8, 0, 0, 0, 0x10])
            #expect(await eventually { modern.closed })
            #expect(modern.errors.map(\.kind) == [.helloFailed(.incompatible)])
            // Version 4 offering 1.0 and 1.3 (bits 1 and 4), and version 4 with no
            // bitmap: both negotiate 1.0 and join.
            let both = try await ScriptedSwitch.connect(streams, port: port, datapathID: 3)
            both.sendRaw([0x04, 0x00, 0x00, 0x10, 0, 0, 0, 4] + [0, 1, 0, 8, 0, 0, 0, 0x12])
            let plain = try await ScriptedSwitch.connect(streams, port: port, datapathID: 4)
            plain.sendRaw([0x04, 0x00, 0x00, 0x08, 0, 0, 0, 5])
            #expect(await eventually { log.joins.count == 2 })
            #expect(Set(log.joins.map(\.id)) == [3, 4])
            // A message before HELLO: HELLO_FAILED and closed.
            let rude = try await ScriptedSwitch.connect(streams, port: port, datapathID: 5)
            rude.send(Message(xid: 6, body: .featuresRequest))
            #expect(await eventually { rude.closed })
            #expect(rude.errors.map(\.kind) == [.helloFailed(.incompatible)])
            #expect(await eventually { controller.statistics.failedHandshakes == 3 })
            #expect(log.leaves.isEmpty)
        }
    }

    @Test func echoBothWaysAndDeadPeer() throws {
        var limits = ChannelLimits()
        limits.echoInterval = .milliseconds(100)
        limits.deadTimeout = .milliseconds(400)
        try withController(limits: limits) { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let alive = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            let silent = try await ScriptedSwitch.connect(streams, port: port, datapathID: 2)
            silent.answersEcho = false
            alive.send(Message(xid: 1, body: .hello()))
            silent.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 2 })
            // The controller answers our echo with our data and xid.
            alive.send(Message(xid: 77, body: .echoRequest(Payload([1, 2, 3]))))
            #expect(
                await eventually {
                    alive.received.contains {
                        $0.xid == 77 && $0.body == .echoReply(Payload([1, 2, 3]))
                    }
                })
            // An idle switch is asked; one that answers stays, one that does not goes.
            #expect(await eventually(seconds: 2) { silent.closed })
            #expect(!silent.messages(.echoRequest).isEmpty)
            #expect(log.leaves.map(\.1) == [.echoTimeout])
            #expect(log.leaves.first?.0.id == 2)
            try await Time.sleep(.milliseconds(600))
            #expect(!alive.closed)
            #expect(alive.messages(.echoRequest).count >= 2)
            #expect(controller.datapaths.count == 1)
        }
    }

    @Test func handshakeTimeout() throws {
        var limits = ChannelLimits()
        limits.handshakeTimeout = .milliseconds(200)
        try withController(limits: limits) { controller, streams, port in
            let mute = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            #expect(await eventually(seconds: 2) { mute.closed })
            #expect(controller.statistics.failedHandshakes == 1)
        }
    }

    @Test func malformedMessagesAreAnsweredAndSurvived() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 1 })
            // A PACKET_IN cut before its fixed part ends: BAD_LEN.
            peer.sendRaw([0x01, 0x0a, 0x00, 0x0c, 0, 0, 0, 0x21, 0xff, 0xff, 0xff, 0xff])
            // An unknown type: BAD_TYPE.
            peer.sendRaw([0x01, 0x30, 0x00, 0x08, 0, 0, 0, 0x22])
            // Another version after the handshake: BAD_VERSION.
            peer.sendRaw([0x02, 0x02, 0x00, 0x08, 0, 0, 0, 0x23])
            // A controller-to-switch message from a switch: BAD_TYPE.
            peer.send(Message(xid: 0x24, body: .flowMod(FlowMod(match: .any, command: .add))))
            // A stats reply of an unknown type: BAD_STAT.
            peer.sendRaw([0x01, 0x11, 0x00, 0x0c, 0, 0, 0, 0x25, 0x00, 0x09, 0, 0])
            // A vendor message: BAD_VENDOR.
            peer.send(Message(xid: 0x26, body: .vendor(0x1234, body: Payload([0, 0, 0, 0]))))
            #expect(await eventually { peer.errors.count == 6 })
            let kinds = Dictionary(
                peer.errors.map { ($0.xid, $0.kind) }, uniquingKeysWith: { a, _ in a })
            #expect(kinds[0x21] == .badRequest(.badLength))
            #expect(kinds[0x22] == .badRequest(.badType))
            #expect(kinds[0x23] == .badRequest(.badVersion))
            #expect(kinds[0x24] == .badRequest(.badType))
            #expect(kinds[0x25] == .badRequest(.badStat))
            #expect(kinds[0x26] == .badRequest(.badVendor))
            // The channel is still up: a barrier goes through, a packet-in arrives.
            let datapath = try #require(log.joins.first)
            try await datapath.barrier()
            #expect(datapath.state == .ready)
            peer.send(
                Message(
                    xid: 0x27,
                    body: .packetIn(
                        PacketIn(
                            totalLength: 60, inPort: PortNumber(1), reason: .noMatch,
                            data: Payload(frame(from: MACAddress(0x0200_0000_0001), to: .broadcast))
                        ))))
            #expect(
                await eventually {
                    log.events.contains {
                        if case .packetIn = $0 { return true } else { return false }
                    }
                })
            // A header length below 8 cannot be framed past: BAD_LEN, then closed.
            peer.sendRaw([0x01, 0x02, 0x00, 0x04, 0, 0, 0, 0x28])
            #expect(await eventually { peer.closed })
            #expect(peer.errors.last?.kind == .badRequest(.badLength))
            #expect(log.leaves.count == 1)
            if case .unframeable? = log.leaves.first?.1 {
            } else {
                Issue.record("closed for \(String(describing: log.leaves.first?.1))")
            }
        }
    }

    @Test func streamEndingInsideAMessage() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 1 })
            peer.sendRaw([0x01, 0x02, 0x00, 0x10, 0, 0, 0, 2, 1, 2])  // 10 of 16 bytes
            peer.connection.shutdownWrite()
            #expect(await eventually { log.leaves.count == 1 })
            #expect(log.leaves.first?.1 == .truncatedStream(bytes: 10))
        }
    }

    @Test func aSwitchThatStopsReadingStallsNobodyElse() throws {
        var limits = ChannelLimits()
        limits.echoInterval = .milliseconds(200)
        limits.deadTimeout = .milliseconds(1500)
        limits.sendQueueLimit = 256 * 1024
        try withController(limits: limits) { controller, streams, port in
            let log = EventLog()
            controller.subscribe { log.events.append($0) }
            let stuck = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            let healthy = try await ScriptedSwitch.connect(streams, port: port, datapathID: 2)
            stuck.send(Message(xid: 1, body: .hello()))
            healthy.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 2 })
            let stuckPath = try #require(log.joins.first { $0.id == 1 })
            let healthyPath = try #require(log.joins.first { $0.id == 2 })
            stuck.reading = false
            // Fill everything between us and the stuck switch: the calls fail once
            // the bounded queue is full, they never block or grow without bound.
            let data = Payload([UInt8](repeating: 0xab, count: 60_000))
            var refused = false
            for _ in 0..<2000 {
                let sent = Result { () throws(ControllerError) in
                    try stuckPath.packetOut(
                        PacketOut(actions: [.output(port: PortNumber(1))], data: data))
                }
                if case .failure(let error) = sent {
                    if case .sendQueueFull = error {
                        refused = true
                    } else {
                        Issue.record("\(error)")
                    }
                    break
                }
                // Let the kernel move bytes now and then.
                if stuckPath.sendQueued > 0 { try await Time.sleep(.milliseconds(1)) }
            }
            #expect(refused)
            #expect(stuckPath.sendQueued <= 256 * 1024)
            // Meanwhile the other switch is served at once.
            let started = ContinuousClock.now
            try await healthyPath.barrier()
            healthy.send(Message(xid: 9, body: .echoRequest(Payload([5]))))
            #expect(await eventually { healthy.received.contains { $0.xid == 9 } })
            #expect(ContinuousClock.now - started < .milliseconds(500))
            // The stuck one is dropped after the dead-peer time, with its reason.
            #expect(await eventually(seconds: 4) { log.leaves.count == 1 })
            if case .notReading? = log.leaves.first?.1 {
            } else {
                Issue.record("closed for \(String(describing: log.leaves.first?.1))")
            }
            #expect(log.leaves.first?.0.id == 1)
            #expect(healthyPath.state == .ready)
        }
    }

    @Test func aFloodingSwitchDoesNotStarveAnother() throws {
        try withController { controller, streams, port in
            let log = EventLog()
            var packetIns: [UInt64: Int] = [:]
            controller.subscribe { event in
                log.events.append(event)
                if case .packetIn(let datapath, _) = event {
                    packetIns[datapath.id, default: 0] += 1
                }
            }
            let flood = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            let quiet = try await ScriptedSwitch.connect(streams, port: port, datapathID: 2)
            flood.send(Message(xid: 1, body: .hello()))
            quiet.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { log.joins.count == 2 })
            let packet = try Message(
                xid: 5,
                body: .packetIn(
                    PacketIn(
                        totalLength: 60, inPort: PortNumber(1), reason: .noMatch,
                        data: Payload(frame(from: MACAddress(0x0200_0000_0001), to: .broadcast))))
            ).encoded().copyBytes()
            // 1000 packet-ins in one write, then one from the quiet switch.
            flood.sendRaw(Array([[UInt8]](repeating: packet, count: 1000).joined()))
            quiet.sendRaw(packet)
            #expect(await eventually { packetIns[1] == 1000 && packetIns[2] == 1 })
            // The quiet switch's packet was not held behind all of the flood's.
            let order = log.events.compactMap { event -> UInt64? in
                if case .packetIn(let datapath, _) = event { return datapath.id }
                return nil
            }
            let quietAt = try #require(order.firstIndex(of: 2))
            #expect(quietAt < 1000, "the quiet switch's packet-in came after \(quietAt) others")
        }
    }

    @Test func asyncEventsAndApplicationsTogether() throws {
        final class Counter: OpenFlowApplication {
            var joined = 0
            var packets = 0
            func datapathJoined(_ datapath: Datapath) { joined += 1 }
            func packetIn(_ event: PacketInEvent, from datapath: Datapath) { packets += 1 }
        }
        try withController { controller, streams, port in
            let first = Counter()
            let second = Counter()
            controller.add(first)
            controller.add(second)
            let events = controller.events()
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 9)
            peer.send(Message(xid: 1, body: .hello()))
            let event = await events.next()
            guard case .datapathJoin(let datapath)? = event else {
                Issue.record("first event: \(String(describing: event))")
                return
            }
            #expect(datapath.id == 9)
            #expect(first.joined == 1 && second.joined == 1)
            peer.send(
                Message(
                    xid: 2,
                    body: .packetIn(
                        PacketIn(
                            totalLength: 60, inPort: PortNumber(2), reason: .noMatch,
                            data: Payload(frame(from: MACAddress(0x0200_0000_0001), to: .broadcast))
                        ))))
            if case .packetIn(_, let packetIn)? = await events.next() {
                #expect(packetIn.flow.dlSrc == MACAddress(0x0200_0000_0001))
                #expect(packetIn.flow.inPort == PortNumber(2))
                #expect(packetIn.flow.nwProto == 17)
            } else {
                Issue.record("no packet-in event")
            }
            #expect(first.packets == 1 && second.packets == 1)
            events.close()
        }
    }
}
