import OasisDevices
import OasisNet
import Testing

/// What the soak found first, without any impairment: both ends half-close at once,
/// each holding back a short last segment (Nagle) with its FIN. The side whose FIN is
/// acknowledged first is in FIN-WAIT-2 when the other's last data and FIN arrive
/// together; entering TIME-WAIT used to empty the receive buffer before the
/// application was handed those bytes, so the last segment's data was lost.
@Suite struct SimultaneousHalfCloseTests {
    @Test(arguments: [4568, 100_000, 1 << 20])
    func bothHalfCloseAndEveryByteArrives(total: Int) throws {
        let stacks = try TwoStacks()
        var accepted: IPv4Stack<MemoryDevice>.Connection?
        let listener = try stacks.server.listen(port: 7) { accepted = $0 }
        defer { listener.close() }
        var connected: IPv4Stack<MemoryDevice>.Connection?
        stacks.client.connect(to: stacks.serverEndpoint).onResult { connected = try? $0.get() }
        try stacks.run()
        let ends = [try #require(accepted), try #require(connected)]
        var received = [0, 0]
        var finished = [false, false]
        var sent = [0, 0]
        let data = [UInt8](repeating: 7, count: total)
        for (index, connection) in ends.enumerated() {
            func pump() {
                while sent[index] < total {
                    let taken = data[sent[index]...].withUnsafeBytes {
                        (try? connection.write($0)) ?? 0
                    }
                    if taken == 0 { return }
                    sent[index] += taken
                }
                connection.shutdownWrite()
            }
            connection.onReceive { input in
                received[index] += input.count
                input.consume(input.count)
                if input.isFinished { finished[index] = true }
            }
            connection.onWritable { pump() }
            pump()
        }
        try stacks.run(for: .seconds(5))
        #expect(received == [total, total])
        #expect(finished == [true, true])
    }
}
