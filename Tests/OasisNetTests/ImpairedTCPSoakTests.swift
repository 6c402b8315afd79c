import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisTCP
import OasisTestSupport
import OasisWire
import Testing

/// Two stacks on a memory pair whose ends are both impaired, both ways, on the virtual
/// clock: each frame crosses the sender's outbound impairment and the receiver's
/// inbound one.
final class ImpairedStacks {
    typealias Device = ImpairedDevice<TracingDevice<MemoryDevice>>
    typealias Stack = IPv4Stack<Device>
    let loop: EventLoop
    let serverDevice: Device
    let clientDevice: Device
    /// Every TCP segment on the wire, as the server's end sent and received it.
    let wire: SegmentTrace
    let server: Stack
    let client: Stack

    init(specification: String, seed: UInt64, receiveMemoryBudget: Int = 64 << 20) throws {
        loop = try EventLoop(clock: .virtual)
        let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
        var configuration = try ImpairmentConfiguration(parsing: specification)
        configuration.seed = seed
        wire = SegmentTrace(loop: loop)
        serverDevice = ImpairedDevice(
            TracingDevice(serverEnd, trace: wire), configuration: configuration, on: loop)
        configuration.seed = seed &+ 0x5eed
        clientDevice = ImpairedDevice(
            TracingDevice(clientEnd, trace: nil), configuration: configuration, on: loop)
        var tcp = TCPLayerConfiguration()
        tcp.secret = SipHashKey(seed, ~seed)  // ISNs and ports from the seed too
        tcp.receiveMemoryBudget = receiveMemoryBudget
        var serverConfiguration = IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!)
        serverConfiguration.tcp = tcp
        var clientConfiguration = IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!)
        tcp.secret = SipHashKey(~seed, seed)
        clientConfiguration.tcp = tcp
        server = IPv4Stack(device: serverDevice, configuration: serverConfiguration, on: loop)
        client = IPv4Stack(device: clientDevice, configuration: clientConfiguration, on: loop)
        try server.start()
        try client.start()
    }

    /// Buffers of every pool in use now: the memory ends' and the impairments'.
    var buffersInUse: [Int] {
        [
            serverDevice.base.base.pool, clientDevice.base.base.pool, serverDevice.impairmentPool,
            clientDevice.impairmentPool,
        ].map { $0.buffersCreated - $0.freeCount }
    }
}

/// The TCP segments one end of the wire sent and received, for the report of a
/// failure: `time  >|<  ports  flags  seq  ack  length`.
final class SegmentTrace {
    struct Entry {
        var time: Duration
        var sent: Bool
        var sourcePort, destinationPort: UInt16
        var flags: UInt8
        var sequence, acknowledgment: UInt32
        var length: Int
        /// The first fragment of a segment IPv4 had to cut.
        var fragmented: Bool
    }

    /// Fragments after the first, which carry no TCP header.
    private(set) var fragments = 0

    let loop: EventLoop
    private(set) var entries: [Entry] = []

    init(loop: EventLoop) { self.loop = loop }

    func record(_ frame: borrowing Packet, sent: Bool) {
        let bytes = frame.copyBytes()
        // Ethernet, IPv4 without assumptions about options, TCP.
        guard bytes.count >= 34, bytes[12] == 0x08, bytes[13] == 0x00, bytes[23] == 6 else {
            return
        }
        let ipHeader = Int(bytes[14] & 0x0f) * 4
        let total = Int(bytes[16]) << 8 | Int(bytes[17])
        let tcp = 14 + ipHeader
        // A fragment after the first carries no TCP header.
        guard bytes.count >= tcp + 20, bytes[20] & 0x1f == 0, bytes[21] == 0 else {
            fragments += 1
            return
        }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }
        let tcpHeader = Int(bytes[tcp + 12] >> 4) * 4
        entries.append(
            Entry(
                time: loop.now, sent: sent, sourcePort: u16(tcp), destinationPort: u16(tcp + 2),
                flags: bytes[tcp + 13], sequence: u32(tcp + 4), acknowledgment: u32(tcp + 8),
                length: total - ipHeader - tcpHeader, fragmented: bytes[20] & 0x20 != 0))
    }

    /// The last `count` segments of the connection with the client's `port`.
    func last(_ count: Int, port: UInt16) -> [String] {
        entries.filter { $0.sourcePort == port || $0.destinationPort == port }.suffix(count).map {
            entry in
            let names: [(UInt8, String)] = [
                (0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."),
            ]
            let flags = names.filter { entry.flags & $0.0 != 0 }.map(\.1).joined()
            return
                "\(entry.time) \(entry.sent ? "server >" : "server <") \(entry.sourcePort)→\(entry.destinationPort) "
                + "[\(flags)] seq \(entry.sequence) ack \(entry.acknowledgment) len \(entry.length)"
                + (entry.fragmented ? " (first fragment)" : "")
        }
    }

    /// Client ports of connections that saw a reset.
    var resetPorts: [UInt16] {
        Array(
            Set(
                entries.filter { $0.flags & 0x04 != 0 }.map {
                    $0.sourcePort == 7 ? $0.destinationPort : $0.sourcePort
                })
        )
        .sorted()
    }
}

/// A device that records the TCP segments it carries (test only).
final class TracingDevice<Base: NetworkDevice>: NetworkDevice {
    let base: Base
    let trace: SegmentTrace?
    init(_ base: Base, trace: SegmentTrace?) {
        self.base = base
        self.trace = trace
    }
    var name: String { base.name }
    var macAddress: MACAddress { base.macAddress }
    var capabilities: DeviceCapabilities { base.capabilities }
    var isLinkUp: Bool { base.isLinkUp }
    var counters: DeviceCounters { base.counters }
    var pool: BufferPool { base.pool }
    func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError) {
        try base.start { [trace] (batch: inout PacketBatch) in
            if let trace {
                for index in batch.indices {
                    batch.withElement(at: index) { trace.record($0, sent: false) }
                }
            }
            handler(&batch)
        }
    }
    func transmit(_ frame: consuming Packet) throws(DeviceError) {
        trace?.record(frame, sent: true)
        try base.transmit(frame)
    }
    func close() { base.close() }
}

/// The bytes one side of a connection sends (a seeded stream), and a check of what it
/// receives against the stream the other side sends: every byte once, in order.
final class SoakEndpoint {
    let connection: ImpairedStacks.Stack.Connection
    let name: String
    private var outgoing: SeededBytes
    private var expected: SeededBytes
    let total: Int
    private(set) var sent = 0
    private var unsent: [UInt8] = []
    private(set) var sentHash = FNV1a()
    private(set) var received = 0
    private(set) var receivedHash = FNV1a()
    private(set) var expectedHash = FNV1a()
    private(set) var firstMismatch: Int?
    private(set) var inputFinished = false
    private(set) var closedWith: StreamError?? = nil

    init(
        _ connection: ImpairedStacks.Stack.Connection, name: String, sendSeed: UInt64,
        receiveSeed: UInt64, total: Int
    ) {
        self.connection = connection
        self.name = name
        outgoing = SeededBytes(seed: sendSeed)
        expected = SeededBytes(seed: receiveSeed)
        self.total = total
        connection.onReceive { [unowned self] input in take(&input) }
        connection.onWritable { [unowned self] in pump() }
        connection.onClose { [unowned self] error in closedWith = .some(error) }
        pump()
    }

    private func pump() {
        while true {
            if unsent.isEmpty {
                let count = min(32 * 1024, total - sent)
                guard count > 0 else { break }
                unsent = outgoing.next(count)
                sentHash.add(unsent)
            }
            guard let taken = try? unsent.withUnsafeBytes({ try connection.write($0) }), taken > 0
            else { return }
            unsent.removeFirst(taken)
            sent += taken
            if !unsent.isEmpty { return }
            if sent == total { break }
        }
        if sent == total && unsent.isEmpty {
            connection.shutdownWrite()
            finishIfDone()
        }
    }

    private func take(_ input: inout StreamInput) {
        let count = input.count
        input.withUnsafeBytes { bytes in
            let want = expected.next(bytes.count)
            expectedHash.add(want)
            receivedHash.add(bytes)
            if firstMismatch == nil,
                let offset = bytes.indices.first(where: { bytes[$0] != want[$0] })
            {
                firstMismatch = received + offset
            }
        }
        received += count
        input.consume(count)
        if input.isFinished && !inputFinished {
            inputFinished = true
            finishIfDone()
        }
    }

    private func finishIfDone() {
        if inputFinished && sent == total && unsent.isEmpty { connection.close() }
    }

    var isDone: Bool { closedWith != nil }

    var trace: String {
        "\(name): sent \(sent)/\(total), received \(received)/\(total), "
            + "input finished \(inputFinished), state \(connection.state), tcp \(connection.tcpState), "
            + "first mismatch \(firstMismatch.map(String.init) ?? "none"), closed \(String(describing: closedWith))"
    }
}

/// A deterministic stream of bytes: the same bytes however it is cut into reads.
struct SeededBytes {
    private var random: SplitMix64
    private var word: UInt64 = 0
    private var left = 0
    init(seed: UInt64) { random = SplitMix64(seed: seed) }
    mutating func next(_ count: Int) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(count)
        for _ in 0..<count {
            if left == 0 {
                word = random.next()
                left = 8
            }
            bytes.append(UInt8(truncatingIfNeeded: word))
            word >>= 8
            left -= 1
        }
        return bytes
    }
}

/// FNV-1a, 64 bits: a hash of every byte in order.
struct FNV1a: Equatable {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value = (value ^ UInt64(byte)) &* 0x100_0000_01b3
        }
    }
}

@Suite(.serialized) struct ImpairedTCPSoakTests {
    static let specification = "loss=5%,dup=1%,reorder=1%,delay=2ms,jitter=1ms"

    /// Several TCP connections, a few MiB each way each, across 5% loss, 1% duplication,
    /// 1% reordering and 2±1 ms of delay on both ends both ways: every byte arrives once
    /// and in order, the connections close normally, TIME-WAIT empties the tables, and
    /// every buffer goes back to its pool.
    @Test(arguments: [UInt64(1), 2, 3])
    func transfersSurviveTheImpairment(seed: UInt64) throws {
        try soak(specification: Self.specification, seed: seed, connections: 3, bytes: 1 << 20)
    }

    /// The same with no receive memory to spare for bytes ahead of a gap: every
    /// out-of-order segment that would grow a buffer is dropped, and the transfers
    /// still complete, from retransmissions, every byte once and in order.
    @Test func transfersCompleteWhenTheReceiveBudgetIsSpent() throws {
        try soak(
            specification: "loss=5%,reorder=2%", seed: 4, connections: 3, bytes: 1 << 20,
            receiveMemoryBudget: 0, expectRefusals: true)
    }

    func soak(
        specification: String, seed: UInt64, connections: Int, bytes: Int,
        receiveMemoryBudget: Int = 64 << 20, expectRefusals: Bool = false
    ) throws {
        let stacks = try ImpairedStacks(
            specification: specification, seed: seed, receiveMemoryBudget: receiveMemoryBudget)
        // Gratuitous ARP may still be on its way: what the pools hold once it has landed.
        try stacks.loop.advance(by: .seconds(1))
        #expect(stacks.serverDevice.heldFrames == 0 && stacks.clientDevice.heldFrames == 0)
        let baseline = stacks.buffersInUse
        var serverSide: [SoakEndpoint] = []
        var clientSide: [SoakEndpoint] = []
        // Each side's stream is named by the client's port.
        func seeds(_ port: UInt16) -> (up: UInt64, down: UInt64) {
            (seed << 32 | UInt64(port) << 1, seed << 32 | UInt64(port) << 1 | 1)
        }
        let listener = try stacks.server.listen(port: 7) { connection in
            let (up, down) = seeds(connection.remote.port)
            serverSide.append(
                SoakEndpoint(
                    connection, name: "server \(connection.remote.port)", sendSeed: down,
                    receiveSeed: up, total: bytes))
        }
        var failures: [String] = []
        for _ in 0..<connections {
            stacks.client.connect(to: StreamEndpoint(address: stacks.server.address, port: 7))
                .onResult { result in
                    switch result {
                    case .success(let connection):
                        let (up, down) = seeds(connection.local.port)
                        clientSide.append(
                            SoakEndpoint(
                                connection, name: "client \(connection.local.port)",
                                sendSeed: up, receiveSeed: down, total: bytes))
                    case .failure(let error):
                        failures.append("connect failed: \(error)")
                    }
                }
        }
        // Run until every endpoint has closed (or ten virtual minutes pass).
        var elapsed = Duration.zero
        while elapsed < .seconds(600) {
            try stacks.loop.advance(by: .milliseconds(100))
            elapsed += .milliseconds(100)
            let all = serverSide + clientSide
            if all.count == 2 * connections && all.allSatisfy(\.isDone) { break }
            if failures.count + clientSide.count == connections && !failures.isEmpty { break }
        }
        listener.close()
        let finishedAt = elapsed
        // TIME-WAIT (60 s) and anything else still timing out.
        try stacks.loop.advance(by: .seconds(125))
        let endpoints = clientSide + serverSide
        func report() -> String {
            (["seed \(seed), \(specification), done after \(finishedAt) virtual"] + failures
                + endpoints.map(\.trace) + [
                    "server tcp: \(stacks.server.tcp.summary)",
                    "client tcp: \(stacks.client.tcp.summary)",
                    "server impairment: \(stacks.serverDevice.impairmentSummary)",
                    "client impairment: \(stacks.clientDevice.impairmentSummary)",
                    "buffers in use \(stacks.buffersInUse), at the start \(baseline)",
                    "IPv4 fragments (after the first) at the server's end: \(stacks.wire.fragments)",
                ]
                + stacks.wire.resetPorts.flatMap { port in
                    ["the last segments of \(port), which saw a reset:"]
                        + stacks.wire.last(12, port: port)
                }
                + clientSide.filter { !$0.isDone }.flatMap { endpoint in
                    let port = endpoint.connection.local.port
                    return ["the last segments of \(port), which did not finish:"]
                        + stacks.wire.last(16, port: port)
                }).joined(separator: "\n  ")
        }
        #expect(failures.isEmpty, "\(report())")
        #expect(clientSide.count == connections && serverSide.count == connections, "\(report())")
        for endpoint in endpoints {
            #expect(endpoint.sent == bytes && endpoint.received == bytes, "\(endpoint.trace)")
            #expect(endpoint.firstMismatch == nil, "\(endpoint.trace)")
            #expect(endpoint.receivedHash == endpoint.expectedHash, "\(endpoint.trace)")
            #expect(endpoint.closedWith == .some(nil), "\(endpoint.trace)")
        }
        // Each side's hash of what it sent is the other side's of what it received.
        for client in clientSide {
            guard
                let server = serverSide.first(where: {
                    $0.connection.remote.port == client.connection.local.port
                })
            else { continue }
            #expect(
                client.sentHash == server.receivedHash && server.sentHash == client.receivedHash)
        }
        #expect(stacks.server.tcp.connectionCount == 0, "\(report())")
        #expect(stacks.client.tcp.connectionCount == 0, "\(report())")
        // Every receive buffer gave its memory back to the shared account.
        #expect(stacks.server.tcp.receiveMemory.allocated == 0, "\(report())")
        #expect(stacks.client.tcp.receiveMemory.allocated == 0, "\(report())")
        if expectRefusals {
            #expect(
                stacks.server.tcp.receiveMemory.refusals > 0
                    && stacks.client.tcp.receiveMemory.refusals > 0, "\(report())")
        }
        // A reset ends a connection only in TIME-WAIT, after both applications saw a
        // normal close: a duplicated last ACK reaches a side that has closed (LAST-ACK
        // done), which answers it with a reset, as for any closed port, and the other
        // side's TIME-WAIT takes the reset (RFC 9293 §3.10.7.4; RFC 1337 would ignore
        // it). So: no more such closes than resets the other side sent.
        #expect(
            stacks.server.tcp.closedByReset <= stacks.client.tcp.resetsSent
                && stacks.client.tcp.closedByReset <= stacks.server.tcp.resetsSent,
            "\(report())")
        #expect(
            stacks.server.tcp.closedByTimeout == 0 && stacks.client.tcp.closedByTimeout == 0,
            "\(report())")
        // A segment with SACK blocks carries less data, so that it still fits: no
        // segment is ever fragmented.
        #expect(stacks.wire.fragments == 0, "\(stacks.wire.fragments) fragments")
        // The impairment did its work.
        let impairment = stacks.serverDevice.configuration.inbound
        let counters = stacks.serverDevice.inboundCounters
        #expect(impairment.loss.isZero || counters.lost > 0)
        #expect(impairment.duplicate.isZero || counters.duplicated > 0)
        #expect(impairment.reorder.isZero || counters.reordered > 0)
        serverSide.removeAll()
        clientSide.removeAll()
        #expect(stacks.buffersInUse == baseline, "\(report())")
        print(
            "soak seed \(seed): \(connections) connections, \(bytes) bytes each way each, done after "
                + "\(finishedAt) virtual; retransmissions \(stacks.server.tcp.retransmissions) + "
                + "\(stacks.client.tcp.retransmissions), TIME-WAIT ended by a reset "
                + "\(stacks.server.tcp.closedByReset + stacks.client.tcp.closedByReset), "
                + "IPv4 fragments \(stacks.wire.fragments)")
    }
}
