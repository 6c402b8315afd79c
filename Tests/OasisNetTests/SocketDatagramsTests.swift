// SocketDatagrams against the kernel's own UDP sockets on loopback: datagrams that
// wait together arrive as one batch, and the replies sent during a batch all leave.

import Glibc
import OasisBits
import OasisLoop
import OasisWire
import Testing

@testable import OasisNet

/// A kernel UDP socket bound to 127.0.0.1 on an ephemeral port, and that port.
private func kernelSocket() throws -> (CInt, UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    try #require(fd >= 0)
    var address = SocketDatagrams.socketAddress(IPv4Address(127, 0, 0, 1), 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    try #require(bound)
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A `SocketDatagrams` on a loop, a kernel socket to talk to it from, and a free port
/// for the service (bound, learnt and released).
private struct Pair {
    let loop: EventLoop
    let sockets: SocketDatagrams
    let client: CInt
    let clientPort: UInt16
    let port: UInt16

    init() throws {
        loop = try EventLoop()
        sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        (client, clientPort) = try kernelSocket()
        let (probe, port) = try kernelSocket()
        Glibc.close(probe)
        self.port = port
    }

    func close() {
        sockets.close()
        Glibc.close(client)
    }
}

@Suite struct SocketDatagramsTests {

    func send(_ fd: CInt, _ bytes: [UInt8], to port: UInt16) {
        var target = SocketDatagrams.socketAddress(IPv4Address(127, 0, 0, 1), port)
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    @Test func waitingDatagramsArriveAsOneBatchAndEveryReplyLeaves() throws {
        let pair = try Pair()
        defer { pair.close() }
        let (loop, sockets, client, clientPort, port) =
            (pair.loop, pair.sockets, pair.client, pair.clientPort, pair.port)

        var batches: [Int] = []
        var payloads: [[UInt8]] = []
        try sockets.listen(port: port) { (batch: inout DatagramBatch) in
            batches.append(batch.count)
            for index in batch.indices {
                guard let datagram = batch.take(at: index) else { continue }
                let source = datagram.source
                #expect(
                    source == DatagramEndpoint(address: IPv4Address(127, 0, 0, 1), port: clientPort)
                )
                let bytes = datagram.payload.copyBytes()
                payloads.append(bytes)
                try? sockets.send(bytes.reversed(), to: source, from: port)
            }
        }
        // Twenty datagrams wait in the socket before the loop first looks.
        let sent = (0..<20).map { index in [UInt8(index), 1, 2, UInt8(index)] }
        for bytes in sent { send(client, bytes, to: port) }
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))

        #expect(payloads == sent)
        #expect(batches == [20])
        // Every reply came back to the kernel socket, in order.
        var replies: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = recv(client, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count < 0 { break }
            replies.append(Array(buffer[0..<count]))
        }
        #expect(replies == sent.map { Array($0.reversed()) })
        #expect(sockets.sendFailures == 0)
    }

    /// The kernel hands over only what fits of a datagram longer than a buffer's
    /// tailroom: such a datagram is dropped and counted, never passed on cut, and the
    /// datagrams around it arrive whole. The largest that fits arrives whole too.
    @Test func datagramsLongerThanABufferAreDroppedAndCounted() throws {
        let pair = try Pair()
        defer { pair.close() }
        let (loop, sockets, client, port) = (pair.loop, pair.sockets, pair.client, pair.port)
        var seen: [[UInt8]] = []
        try sockets.listen(port: port) { (datagram: consuming Datagram) in
            seen.append(datagram.payload.copyBytes())
        }
        let room = Buffer.pageSize - BufferPool.defaultHeadroom
        let fits = (0..<room).map { UInt8(truncatingIfNeeded: $0) }
        let tooLong = [UInt8](repeating: 0xab, count: room + 1)
        let sent: [[UInt8]] = [[1], tooLong, fits, [UInt8](repeating: 0xcd, count: 5000), [2]]
        for bytes in sent { send(client, bytes, to: port) }
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))
        // Lengths first: a failure then names the cut datagram without printing it.
        #expect(seen.map(\.count) == [1, room, 1])
        #expect(seen.first == [1] && seen.last == [2] && seen.dropFirst().first == fits)
        #expect(sockets.oversizeDrops == 2)
    }

    /// With every buffer held by the application, datagrams are still taken off the
    /// socket (dropped and counted), so the level-triggered socket does not wake the
    /// loop each turn; once buffers come back, datagrams are delivered again.
    @Test func withNoBufferFreeDatagramsAreReadAndDropped() throws {
        let pair = try Pair()
        defer { pair.close() }
        let (loop, sockets, client, port) = (pair.loop, pair.sockets, pair.client, pair.port)
        var seen: [[UInt8]] = []
        try sockets.listen(port: port) { (datagram: consuming Datagram) in
            seen.append(datagram.payload.copyBytes())
        }
        var held = Batch<Packet>(capacity: 256)
        while let packet = try? sockets.allocatePayload() { held.append(packet) }
        #expect(held.count == 256)
        for index in 0..<10 { send(client, [UInt8(index)], to: port) }
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))
        #expect(seen.isEmpty)
        #expect(sockets.noBufferDrops == 10)
        held.removeAll()
        send(client, [42], to: port)
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))
        #expect(seen == [[42]])
    }

    @Test func perDatagramListenersSeeEveryDatagramOfABatch() throws {
        let pair = try Pair()
        defer { pair.close() }
        let (loop, sockets, client, port) = (pair.loop, pair.sockets, pair.client, pair.port)
        var seen: [UInt8] = []
        try sockets.listen(port: port) { (datagram: consuming Datagram) in
            seen.append(datagram.payload.copyBytes().first ?? 0)
        }
        for index in 0..<40 { send(client, [UInt8(index)], to: port) }
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))
        #expect(seen == (0..<40).map { UInt8($0) })
    }
}
