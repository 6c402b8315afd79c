// The switch's channel against a controller we script with our own wire library, over
// loopback: what it refuses and how (OpenFlow 1.0's errors, as Open vSwitch answers).

import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisSwitch
import OasisWire
import Testing

@testable import OasisOpenFlow

/// One scripted controller session to the switch's passive listener.
private final class ScriptedPeer {
    let connection: SocketStreams.Connection
    var framer = MessageFramer()
    var received: [Message] = []
    var closed = false

    init(connection: SocketStreams.Connection) {
        self.connection = connection
        connection.onReceive { [weak self] input in
            guard let self else { return }
            let taken = input.withUnsafeBytes { self.framer.append($0) }
            input.consume(taken)
            while let bits = try? self.framer.next() {
                if let message = try? Message.decode(bits) { self.received.append(message) }
            }
            if input.isFinished { self.closed = true }
        }
        connection.onClose { [weak self] _ in self?.closed = true }
    }

    func send(_ bytes: [UInt8]) {
        #expect((try? connection.write(bytes)) == bytes.count)
    }

    func send(_ message: Message) throws { send(try message.encoded().copyBytes()) }

    var errors: [(xid: UInt32, kind: ErrorKind)] {
        received.compactMap { message in
            if case .error(let error) = message.body { return (message.xid, error.kind) }
            return nil
        }
    }
}

/// Waits on the loop until `condition` holds or 5 s pass.
private func eventually(_ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(5)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Time.sleep(.milliseconds(5))
    }
    return condition()
}

/// A switch with two memory ports listening on 127.0.0.1 (a port the kernel picks),
/// and a scripted session to it.
private func withSwitch(
    _ body: sending @escaping (SwitchChannel<SocketStreams>, ScriptedPeer) async throws -> Void
) throws {
    let loop = try EventLoop()
    try loop.run {
        let streams = SocketStreams(address: IPv4Address(127, 0, 0, 1), on: loop)
        let datapath = Datapath(on: loop)
        for index in 0..<2 {
            let (switchEnd, _) = MemoryDevice.pair(
                on: loop,
                addresses: (
                    MACAddress(0x0200_0000_0100 + UInt64(index)),
                    MACAddress(0x0200_0000_0001 + UInt64(index))
                ))
            try datapath.addPort(switchEnd)
        }
        let channel = SwitchChannel(datapath: datapath, streams: streams, datapathID: 9)
        let local = try channel.listen(port: 0)
        let connection = try await streams.connect(
            to: StreamEndpoint(address: IPv4Address(127, 0, 0, 1), port: local.port))
        let peer = ScriptedPeer(connection: connection)
        do {
            try await body(channel, peer)
        } catch {
            channel.stop()
            streams.close()
            throw error
        }
        connection.close()
        channel.stop()
        streams.close()
    }
}

@Suite("OpenFlow switch channel, against a scripted controller", .serialized)
struct SwitchChannelTests {
    /// Anything before HELLO fails the handshake: HELLO_FAILED, then the session closes
    /// (Open vSwitch: "received message while expecting hello").
    @Test func aMessageBeforeHelloFailsTheHandshake() throws {
        try withSwitch { channel, peer in
            #expect(await eventually { peer.received.first?.type == .hello })
            try peer.send(Message(xid: 7, body: .featuresRequest))
            #expect(await eventually { peer.closed })
            #expect(peer.errors.map(\.kind) == [.helloFailed(.incompatible)])
            #expect(peer.errors.first?.xid == 7)
            #expect(peer.received.allSatisfy { $0.type != .featuresReply })
            #expect(channel.counters.sessionsClosed == 1)
        }
    }

    /// What only a switch sends is refused by its type, whatever its body (a
    /// STATS_REPLY too short for its stats header was answered BAD_LEN), and the
    /// session carries on.
    @Test func switchToControllerMessagesAreBadType() throws {
        try withSwitch { channel, peer in
            try peer.send(Message(xid: 1, body: .hello()))
            let types: [MessageType] = [
                .featuresReply, .getConfigReply, .packetIn, .flowRemoved, .portStatus,
                .statsReply, .barrierReply, .queueGetConfigReply,
            ]
            for (index, type) in types.enumerated() {
                // A bare header: no body at all.
                let xid = UInt32(100 + index)
                peer.send([
                    1, type.rawValue, 0, 8, UInt8(xid >> 24), UInt8(xid >> 16 & 0xff),
                    UInt8(xid >> 8 & 0xff), UInt8(xid & 0xff),
                ])
            }
            // A STATS_REPLY (flow) with a truncated body.
            peer.send([1, MessageType.statsReply.rawValue, 0, 14, 0, 0, 0, 200, 0, 1, 0, 0, 0, 0])
            try peer.send(Message(xid: 300, body: .featuresRequest))
            #expect(
                await eventually { !peer.received.filter { $0.type == .featuresReply }.isEmpty })
            let errors = peer.errors
            #expect(errors.count == types.count + 1)
            #expect(errors.allSatisfy { $0.kind == .badRequest(.badType) })
            let expected: [UInt32] = types.indices.map { UInt32(100 + $0) } + [200]
            #expect(errors.map(\.xid) == expected)
            #expect(!peer.closed)
            #expect(channel.counters.errorsSent == UInt64(types.count + 1))
        }
    }
}
