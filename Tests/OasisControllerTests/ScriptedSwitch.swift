// A switch we script, on the other end of a loopback connection: our own wire library
// speaking to the controller, one message at a time, as a test needs it.

import OasisBits
import OasisController
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisWire
import Testing

/// One scripted switch on a kernel TCP connection to the controller.
final class ScriptedSwitch {
    let connection: SocketStreams.Connection
    var framer = MessageFramer()
    var received: [Message] = []
    var undecodable: [[UInt8]] = []
    var closed = false
    /// Answer the controller's ECHO_REQUESTs.
    var answersEcho = true
    /// Stop consuming what arrives (a switch that does not read).
    var reading = true
    /// Answer FEATURES_REQUEST with these features.
    var features: SwitchFeatures

    init(connection: SocketStreams.Connection, datapathID: UInt64, ports: [UInt16] = [1, 2, 3]) {
        self.connection = connection
        features = SwitchFeatures(
            datapathID: datapathID, bufferCount: 256, tableCount: 1,
            capabilities: [.flowStats, .tableStats, .portStats], actions: .all,
            ports: ports.map { number in
                PhysicalPort(
                    portNumber: PortNumber(number),
                    hardwareAddress: MACAddress(0x0200_0000_0000 | UInt64(number)),
                    name: OpenFlowText("p\(number)"))
            })
        connection.sendCapacity = 1 << 20
        connection.onReceive { [weak self] input in self?.receive(&input) }
        connection.onClose { [weak self] _ in self?.closed = true }
    }

    /// Connects a switch to `port` on 127.0.0.1.
    static func connect(_ streams: SocketStreams, port: UInt16, datapathID: UInt64) async throws
        -> ScriptedSwitch
    {
        let connection = try await streams.connect(
            to: StreamEndpoint(address: IPv4Address(127, 0, 0, 1), port: port))
        return ScriptedSwitch(connection: connection, datapathID: datapathID)
    }

    private func receive(_ input: inout StreamInput) {
        guard reading else { return }
        let taken = input.withUnsafeBytes { framer.append($0) }
        input.consume(taken)
        while let bits = try? framer.next() {
            guard let message = try? Message.decode(bits) else {
                undecodable.append(bits.copyBytes())
                continue
            }
            received.append(message)
            switch message.body {
            case .echoRequest(let data) where answersEcho:
                send(Message(xid: message.xid, body: .echoReply(data)))
            case .featuresRequest:
                send(Message(xid: message.xid, body: .featuresReply(features)))
            case .barrierRequest:
                send(Message(xid: message.xid, body: .barrierReply))
            default: break
            }
        }
        if input.isFinished {
            closed = true
            connection.close()
        }
    }

    func send(_ message: Message) {
        guard let bits = try? message.encoded() else { return }
        sendRaw(bits.copyBytes())
    }

    func sendRaw(_ bytes: [UInt8]) {
        let taken = (try? connection.write(bytes)) ?? 0
        #expect(taken == bytes.count, "the scripted switch's send buffer is full")
    }

    /// Messages of one type received so far.
    func messages(_ type: MessageType) -> [Message] { received.filter { $0.type == type } }

    /// The OFPT_ERRORs received: their xid and kind.
    var errors: [(xid: UInt32, kind: ErrorKind)] {
        received.compactMap { message in
            if case .error(let error) = message.body { return (message.xid, error.kind) }
            return nil
        }
    }
}

/// Waits (on the loop) until `condition` holds or `seconds` pass; returns whether it held.
@discardableResult
func eventually(seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Time.sleep(.milliseconds(5))
    }
    return condition()
}

/// Runs `body` on a fresh loop with a controller on 127.0.0.1 (a port the kernel
/// picks) and kernel sockets for the scripted switches.
func withController(
    limits: ChannelLimits = ChannelLimits(),
    _ body:
        sending @escaping (OpenFlowController<SocketStreams>, SocketStreams, UInt16) async throws
        -> Void
) throws {
    let loop = try EventLoop()
    try loop.run {
        let streams = SocketStreams(address: IPv4Address(127, 0, 0, 1), on: loop)
        let controller = try OpenFlowController(service: streams, ports: [0], limits: limits)
        let port = controller.endpoints[0].port
        do {
            try await body(controller, streams, port)
        } catch {
            controller.close()
            streams.close()
            throw error
        }
        controller.close()
        streams.close()
    }
}

/// A 60-byte Ethernet frame from `source` to `destination` (an IPv4/UDP packet).
func frame(from source: MACAddress, to destination: MACAddress, udpPort: UInt16 = 9) -> [UInt8] {
    var bytes = destination.bytes + source.bytes + [0x08, 0x00]
    bytes += [0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
    bytes += [0x30, 0x39, UInt8(udpPort >> 8), UInt8(udpPort & 0xff), 0, 26, 0, 0]
    bytes += [UInt8](repeating: 0, count: 60 - bytes.count)
    return bytes
}
