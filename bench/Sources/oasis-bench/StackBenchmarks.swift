// The stack on the memory backend: a UDP echo round trip through Ethernet, IPv4 and
// UDP on both ends (two Oasis stacks on an in-memory pair), beside the same frames
// bounced between the two devices with no protocol work at all.

import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisWire

func runStackBenchmarks(_ report: Report, scale: Int) {
    guard let loop = try? EventLoop(clock: .virtual) else { return }
    let operations = 200_000 / scale
    let payloadSize = 64

    // Floor: a frame of the same size bounced back and forth between the devices.
    let (left, right) = MemoryDevice.pair(on: loop)
    var bounces = 0
    var target = 0
    try? right.start { (batch: inout PacketBatch) in
        for index in batch.indices {
            if let frame = batch.take(at: index) { try? right.transmit(frame) }
        }
    }
    try? left.start { (batch: inout PacketBatch) in
        for index in batch.indices {
            guard let frame = batch.take(at: index) else { continue }
            bounces += 1
            if bounces < target { try? left.transmit(frame) } else { loop.stop() }
        }
    }
    let frameSize = 14 + 20 + 8 + payloadSize
    let floor = measure(operations: operations) { n in
        bounces = 0
        target = n
        loop.enqueue {
            try? left.transmit(Bits([UInt8](repeating: 0, count: frameSize), headroom: 128))
        }
        try? loop.run()
    }

    if wants("echo") { runStackEchoBenchmark(report, scale: scale, floor: floor) }
    if wants("dns") { runStackDNSBenchmark(report, scale: scale, floor: floor) }
}

/// The UDP echo round trip between two Oasis stacks on the memory pair.
func runStackEchoBenchmark(_ report: Report, scale: Int, floor: Measurement) {
    guard let loop = try? EventLoop(clock: .virtual) else { return }
    let operations = 200_000 / scale
    let payloadSize = 64
    var target = 0
    // Two stacks: the client sends, the server echoes, the client sends the echo again.
    let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
    let server = IPv4Stack(
        device: serverEnd,
        configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!),
        on: loop)
    let client = IPv4Stack(
        device: clientEnd,
        configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!),
        on: loop)
    let serverEndpoint = DatagramEndpoint(address: IPv4Address("192.0.2.2")!, port: 7)
    var echoes = 0
    do {
        try server.start()
        try client.start()
        try server.listen(port: 7) { datagram in
            try? server.send(datagram.payload, to: datagram.source, from: 7)
        }
        try client.listen(port: 40_000) { datagram in
            echoes += 1
            if echoes < target {
                try? client.send(datagram.payload, to: serverEndpoint, from: 40_000)
            } else {
                loop.stop()
            }
        }
    } catch {
        print("stack benchmarks: \(error)")
        return
    }
    let echo = measure(operations: operations) { n in
        echoes = 0
        target = n
        loop.enqueue {
            try? client.send(
                [UInt8](repeating: 7, count: payloadSize), to: serverEndpoint, from: 40_000)
        }
        try? loop.run()
    }
    report.add(
        Figure(
            group: "stack", name: "UDP echo round trip, memory pair, \(payloadSize) B payload",
            nanosecondsPerOperation: echo.nanoseconds, allocationsPerOperation: echo.allocations,
            retainsPerOperation: echo.retains,
            floorName: "same frames bounced, no stack",
            floorNanosecondsPerOperation: floor.nanoseconds,
            note: "\(format(echo.nanoseconds / 2, digits: 0)) ns per packet"
                + (echo.retains.map { ", \(format($0 / 2, digits: 1)) retains per packet" } ?? "")
                + (floor.retains.map { " (floor \(format($0 / 2, digits: 1)))" } ?? "")))
    if echoes != target { print("stack benchmarks: only \(echoes) of \(target) echoes came back") }
}

/// A DNS query round trip through two Oasis stacks on the memory pair: the client's
/// stack sends a query (written into the buffer its last answer arrived in), the
/// server's stack hands it to `DNSService` (the server of `oasis dns`, answer cache
/// off), which answers in the query's buffer; the client's stack receives the answer.
/// Per packet: half the round trip. Zone: bench/dns.sh's of 10 names.
func runStackDNSBenchmark(_ report: Report, scale: Int, floor: Measurement) {
    guard let loop = try? EventLoop(clock: .virtual), let engine = benchEngine(names: 10) else {
        return
    }
    let operations = 200_000 / scale
    let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
    let server = IPv4Stack(
        device: serverEnd,
        configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!),
        on: loop)
    let client = IPv4Stack(
        device: clientEnd,
        configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!),
        on: loop)
    let service = DNSService(engine: engine, answerCache: 0)
    let serverEndpoint = DatagramEndpoint(address: IPv4Address("192.0.2.2")!, port: 53)
    // dnsperf's queries: RD set, no EDNS; one in ten for a name that is not there.
    let queries: [[UInt8]] = (0..<10).map { index in
        var wire: [UInt8] = [0, UInt8(index), 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in [index == 9 ? "x9" : "h\(index)", "bench", "test"] {
            wire.append(UInt8(label.utf8.count))
            wire.append(contentsOf: label.utf8)
        }
        return wire + [0, 0, 1, 0, 1]
    }
    // The same queries as raw bytes, so that writing one retains nothing (an element of
    // `queries` is an array of its own).
    let queryBytes: [UnsafeRawBufferPointer] = queries.map { query in
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: query.count, alignment: 1)
        bytes.copyBytes(from: query)
        return UnsafeRawBufferPointer(bytes)
    }
    defer { for bytes in queryBytes { bytes.deallocate() } }
    var answers = 0
    var target = 0
    var failures = 0
    do {
        try server.start()
        try client.start()
        try service.serveUDP(on: server, port: 53)
        try client.listen(port: 40_000) { datagram in
            answers += 1
            guard answers < target else {
                loop.stop()
                return
            }
            var query = datagram.payload
            do {
                try query.truncate(to: 0)
                try query.append(contentsOf: queryBytes[answers % queryBytes.count])
                try client.send(query, to: serverEndpoint, from: 40_000)
            } catch {
                failures += 1
            }
        }
    } catch {
        print("stack benchmarks: \(error)")
        return
    }
    let roundTrip = measure(operations: operations) { n in
        answers = 0
        target = n
        loop.enqueue { try? client.send(queries[0], to: serverEndpoint, from: 40_000) }
        try? loop.run()
    }
    report.add(
        Figure(
            group: "stack",
            name: "DNS query round trip, memory pair, zone of 10 names (`DNSService`, no cache)",
            nanosecondsPerOperation: roundTrip.nanoseconds,
            allocationsPerOperation: roundTrip.allocations,
            retainsPerOperation: roundTrip.retains,
            floorName: "same frames bounced, no stack",
            floorNanosecondsPerOperation: floor.nanoseconds,
            note: "\(format(roundTrip.nanoseconds / 2, digits: 0)) ns per packet"
                + (roundTrip.retains.map { ", \(format($0 / 2, digits: 1)) retains per packet" }
                    ?? "")))
    if answers != target || failures > 0 {
        print("stack benchmarks: \(answers) of \(target) answers came back, \(failures) failed")
    }
}
