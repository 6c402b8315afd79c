import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisTCP
import OasisTestSupport
import OasisWire
import Testing

/// Two Oasis stacks joined by a memory pair, on the virtual clock: TCP through the
/// Stream surface end to end.
struct TwoStacks {
    let loop: EventLoop
    let server: IPv4Stack<MemoryDevice>
    let client: IPv4Stack<MemoryDevice>

    init(
        server serverTCP: TCPLayerConfiguration = .init(),
        client clientTCP: TCPLayerConfiguration = .init()
    )
        throws
    {
        loop = try EventLoop(clock: .virtual)
        let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
        var serverConfiguration = IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!)
        serverConfiguration.tcp = serverTCP
        var clientConfiguration = IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!)
        clientConfiguration.tcp = clientTCP
        server = IPv4Stack(device: serverEnd, configuration: serverConfiguration, on: loop)
        client = IPv4Stack(device: clientEnd, configuration: clientConfiguration, on: loop)
        try server.start()
        try client.start()
    }

    var serverEndpoint: StreamEndpoint { StreamEndpoint(address: server.address, port: 7) }

    func run(for duration: Duration = .milliseconds(200)) throws {
        try loop.advance(by: duration)
    }
}

@Suite struct TCPLayerTests {
    /// Echo over the stack: connect, write, read the same bytes back, close both ways.
    @Test func echoEndToEnd() throws {
        let stacks = try TwoStacks()
        let listener = try stacks.server.listen(port: 7) { connection in
            echoForTests(connection)
        }
        defer { listener.close() }
        var connection: IPv4Stack<MemoryDevice>.Connection?
        stacks.client.connect(to: stacks.serverEndpoint).onResult { result in
            connection = try? result.get()
        }
        try stacks.run()
        let client = try #require(connection)
        #expect(client.tcpState == .established)
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var sent = 0
        var received: [UInt8] = []
        client.onReceive { input in received += input.read(input.count) }
        for _ in 0..<1000 where received.count < data.count {
            if sent < data.count {
                sent += data[sent...].withUnsafeBytes { (try? client.write($0)) ?? 0 }
            }
            try stacks.run(for: .milliseconds(10))
        }
        #expect(received == data)
        client.close()
        try stacks.run(for: .seconds(1))
        #expect(client.state == .closed(nil))
        #expect(listener.accepted == 1)
    }

    /// A port nobody listens on answers with a reset: the connect fails, refused.
    @Test func aClosedPortRefuses() throws {
        let stacks = try TwoStacks()
        var outcome: Result<IPv4Stack<MemoryDevice>.Connection, any Error>?
        stacks.client.connect(to: StreamEndpoint(address: stacks.server.address, port: 81))
            .onResult { outcome = $0 }
        try stacks.run()
        guard case .failure(let error)? = outcome else {
            Issue.record("connected to a closed port: \(String(describing: outcome))")
            return
        }
        #expect(
            error as? StreamError
                == .refused(StreamEndpoint(address: stacks.server.address, port: 81)))
        #expect(stacks.server.tcp.resetsSent == 1)
    }

    /// Past the SYN backlog the listener answers with SYN cookies and keeps no state;
    /// the cookie's ACK makes the connection, which works.
    @Test func synCookiesWhenTheBacklogIsFull() throws {
        var serverTCP = TCPLayerConfiguration()
        serverTCP.synBacklog = 0
        let stacks = try TwoStacks(server: serverTCP)
        var accepted: [IPv4Stack<MemoryDevice>.Connection] = []
        let listener = try stacks.server.listen(port: 7) { connection in
            accepted.append(connection)
            echoForTests(connection)
        }
        defer { listener.close() }
        var connection: IPv4Stack<MemoryDevice>.Connection?
        stacks.client.connect(to: stacks.serverEndpoint).onResult { connection = try? $0.get() }
        try stacks.run()
        let client = try #require(connection)
        #expect(stacks.server.tcp.cookiesSent == 1 && stacks.server.tcp.cookiesAccepted == 1)
        #expect(accepted.count == 1)
        var received: [UInt8] = []
        client.onReceive { input in received += input.read(input.count) }
        _ = try client.write([1, 2, 3, 4])
        try stacks.run()
        #expect(received == [1, 2, 3, 4])
    }

    /// The socket-like options: Nagle off, another congestion control, keepalive
    /// probes on an idle connection, answered by the peer, which keeps it open.
    @Test func optionsOnAStackConnection() throws {
        let stacks = try TwoStacks()
        let listener = try stacks.server.listen(port: 7) { echoForTests($0) }
        defer { listener.close() }
        var connection: IPv4Stack<MemoryDevice>.Connection?
        stacks.client.connect(to: stacks.serverEndpoint).onResult { connection = try? $0.get() }
        try stacks.run()
        let client = try #require(connection)
        #expect(!client.noDelay && client.congestionControl == .cubic && client.keepalive == nil)
        client.noDelay = true
        client.congestionControl = .newReno
        #expect(client.noDelay && client.congestionControl == .newReno)
        client.keepalive = StreamKeepalive(idle: .seconds(10), interval: .seconds(1), count: 3)
        let before = client.statistics.segmentsSent
        try stacks.run(for: .seconds(35))
        // Idle 10 s, then one probe (answered) per idle period: three in 35 s.
        #expect(client.statistics.segmentsSent - before == 3, "\(client.statistics)")
        #expect(client.tcpState == .established)
        client.keepalive = nil
        try stacks.run(for: .seconds(35))
        #expect(client.statistics.segmentsSent - before == 3)
    }

    /// Many connections at once, each its own bytes back.
    @Test func manyConnections() throws {
        let stacks = try TwoStacks()
        let listener = try stacks.server.listen(port: 7) { echoForTests($0) }
        defer { listener.close() }
        var clients: [IPv4Stack<MemoryDevice>.Connection] = []
        for _ in 0..<200 {
            stacks.client.connect(to: stacks.serverEndpoint).onResult { result in
                if let connection = try? result.get() { clients.append(connection) }
            }
        }
        // Only 4 SYNs wait for the first ARP answer (ArpCache.waitingPerAddress); the
        // others go again after the initial RTO.
        try stacks.run(for: .seconds(3))
        #expect(clients.count == 200)
        var answers = [[UInt8]](repeating: [], count: clients.count)
        for (index, client) in clients.enumerated() {
            client.onReceive { input in answers[index] += input.read(input.count) }
            _ = try client.write([UInt8(index & 0xff), UInt8(index >> 8)])
        }
        try stacks.run()
        for (index, answer) in answers.enumerated() {
            #expect(answer == [UInt8(index & 0xff), UInt8(index >> 8)])
        }
        for client in clients { client.close() }
        try stacks.run(for: .seconds(2))
        #expect(stacks.server.tcp.connectionCount == 0)
    }
}

/// The echo service, for tests that do not link the services target.
func echoForTests<Connection: StreamConnection>(_ connection: Connection) {
    func pump(_ input: inout StreamInput) {
        let taken = input.withUnsafeBytes { (try? connection.write($0)) ?? 0 }
        input.consume(taken)
        if input.isFinished && input.isEmpty { connection.close() }
    }
    connection.onReceive(pump)
    connection.onWritable { connection.withInput(pump) }
}
