// TCP between two Oasis stacks on the memory pair, on the virtual clock:
// - a bulk transfer to a discard server: cost, heap allocations and retains per data
//   segment in steady state, beside full-sized frames moved across the pair with no
//   stack;
// - the state an established connection holds with no buffers: the control block's
//   layout, the connection object's allocation, and the heap growth per connection
//   (malloc statistics) while 10 000 connections are opened and kept;
// - memory over 1 000 000 connections opened, used (64 bytes echoed) and closed: the
//   heap and the resident set after, against before.

import CFloor
import Glibc
import MallocInterposerSwift
import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisTCP
import OasisWire

private typealias MemoryStack = IPv4Stack<MemoryDevice>

/// Two stacks on a memory pair, ARP settled by a first connection that stays open.
private struct TCPPair {
    let loop: EventLoop
    let server: MemoryStack
    let client: MemoryStack
    var serverEndpoint: StreamEndpoint { StreamEndpoint(address: server.address, port: 7) }

    init?() {
        guard let loop = try? EventLoop(clock: .virtual) else { return nil }
        self.loop = loop
        let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
        server = IPv4Stack(
            device: serverEnd,
            configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!),
            on: loop)
        client = IPv4Stack(
            device: clientEnd,
            configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!),
            on: loop)
        do {
            try server.start()
            try client.start()
        } catch {
            print("tcp benchmarks: \(error)")
            return nil
        }
    }

    /// Connects once and runs until the connection is up (or 10 virtual seconds).
    func connect(port: UInt16) -> MemoryStack.Connection? {
        var connection: MemoryStack.Connection?
        client.connect(to: StreamEndpoint(address: server.address, port: port)).onResult {
            connection = try? $0.get()
        }
        for _ in 0..<100 where connection == nil { try? loop.advance(by: .milliseconds(100)) }
        return connection
    }
}

/// Bytes of the heap in use (glibc's `mallinfo2`).
private func heapInUse() -> Int { Int(oasis_heap_in_use()) }

/// Runs `body`; the allocations it made and did not free, when malloc-interposer
/// counts them.
private func liveAllocations(during body: () -> Void) -> Int? {
    guard allocationCountingActive else {
        body()
        return nil
    }
    MallocInterposerSwift.initialize()
    MallocInterposerSwift.hook()
    body()
    MallocInterposerSwift.unhook()
    let statistics = MallocInterposerSwift.getStatistics()
    return statistics.mallocCount - statistics.freeCount
}

/// The resident set of this process, in bytes (/proc/self/statm).
private func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    guard fscanfPair(file, &size, &resident) else { return 0 }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}

private func fscanfPair(_ file: UnsafeMutablePointer<FILE>, _ a: inout Int, _ b: inout Int) -> Bool
{
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, Int32(line.count), file) != nil else { return false }
    let text = String(
        decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let fields = text.split(separator: " ").compactMap { Int($0) }
    guard fields.count >= 2 else { return false }
    a = fields[0]
    b = fields[1]
    return true
}

func runTCPBenchmarks(_ report: Report, scale: Int) {
    if wants("bulk") { runTCPBulkBenchmark(report, scale: scale) }
    if wants("state") { runTCPStateBenchmark(report, scale: scale) }
    if wants("churn") { runTCPChurnBenchmark(report, scale: scale) }
}

/// A bulk transfer from the client to the server's discard: per data segment.
func runTCPBulkBenchmark(_ report: Report, scale: Int) {
    guard let pair = TCPPair() else { return }
    let loop = pair.loop
    let operations = 200_000 / scale

    // Floor: a full-sized frame (1514 bytes) moved across the pair and back, no stack.
    let (left, right) = MemoryDevice.pair(on: loop)
    var bounces = 0
    var bounceTarget = 0
    try? right.start { (batch: inout PacketBatch) in
        for index in batch.indices {
            if let frame = batch.take(at: index) { try? right.transmit(frame) }
        }
    }
    try? left.start { (batch: inout PacketBatch) in
        for index in batch.indices {
            guard let frame = batch.take(at: index) else { continue }
            bounces += 1
            if bounces < bounceTarget { try? left.transmit(frame) } else { loop.stop() }
        }
    }
    let floor = measure(operations: operations) { n in
        bounces = 0
        bounceTarget = n
        loop.enqueue {
            try? left.transmit(Bits([UInt8](repeating: 0, count: 1514), headroom: 128))
        }
        try? loop.run()
    }

    // The server discards; it stops the loop when the run's segments have arrived.
    var segmentTarget: UInt64 = 0
    var bytesDiscarded = 0
    let server = pair.server
    guard
        let listener = try? server.listen(
            port: 9,
            { connection in
                connection.onReceive { input in
                    bytesDiscarded += input.count
                    input.consume(input.count)
                    if server.tcp.segmentsReceived >= segmentTarget { loop.stop() }
                }
            })
    else { return }
    defer { listener.close() }
    guard let client = pair.connect(port: 9) else {
        print("tcp benchmarks: the bulk connection did not open")
        return
    }
    // The client keeps its send buffer full from one block of bytes.
    let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    block.initializeMemory(as: UInt8.self, repeating: 0x5a)
    defer { block.deallocate() }
    let bytes = UnsafeRawBufferPointer(block)
    func fill() {
        while (try? client.write(bytes)) ?? 0 > 0 {}
    }
    client.onWritable(fill)
    let bulk = measure(operations: operations) { n in
        // `n` more segments into the server's stack (data and the few pure ACKs the
        // client sends; the client sends no pure ACKs in a one-way transfer).
        segmentTarget = server.tcp.segmentsReceived + UInt64(n)
        loop.enqueue(fill)
        try? loop.run()
    }
    let segmentBytes = client.maximumSegmentSize
    report.add(
        Figure(
            group: "tcp",
            name: "bulk transfer to discard between two stacks, memory pair, per data segment",
            nanosecondsPerOperation: bulk.nanoseconds, allocationsPerOperation: bulk.allocations,
            retainsPerOperation: bulk.retains,
            floorName: "a 1514-byte frame there and back, no stack",
            floorNanosecondsPerOperation: floor.nanoseconds,
            note:
                "MSS \(segmentBytes): \(format(Double(segmentBytes * 8) / bulk.nanoseconds, digits: 2)) Gbit/s"
                + " on one core for both stacks; client sent \(pair.client.tcp.segmentsSent),"
                + " server \(server.tcp.segmentsSent) segments (ACKs),"
                + " retransmissions \(client.statistics.retransmissions)"))
    client.close()
    try? loop.advance(by: .seconds(1))
}

/// State per established connection, no buffers: 10 000 connections opened and kept.
func runTCPStateBenchmark(_ report: Report, scale: Int) {
    guard let pair = TCPPair() else { return }
    let count = max(100, 10_000 / scale)
    var accepted: [MemoryStack.Connection] = []
    var clients: [MemoryStack.Connection] = []
    accepted.reserveCapacity(count + 1)
    clients.reserveCapacity(count + 1)
    guard let listener = try? pair.server.listen(port: 7, { accepted.append($0) }) else { return }
    defer { listener.close() }
    // One connection first: ARP settled, the lazily made parts of both stacks made.
    guard let first = pair.connect(port: 7) else {
        print("tcp benchmarks: no connection")
        return
    }
    clients.append(first)
    let heapBefore = heapInUse()
    let live = liveAllocations {
        // In groups of 128, a millisecond apart: the memory pair's queue holds 1024 frames,
        // and the listener's SYN backlog is 256 (beyond it, SYN cookies).
        var opened = 0
        while opened < count {
            for _ in 0..<min(128, count - opened) {
                pair.client.connect(to: pair.serverEndpoint).onResult { result in
                    if let connection = try? result.get() { clients.append(connection) }
                }
            }
            opened += 128
            try? pair.loop.advance(by: .milliseconds(1))
        }
        for _ in 0..<100 where clients.count < count + 1 || accepted.count < count + 1 {
            try? pair.loop.advance(by: .milliseconds(100))
        }
    }
    let heapAfter = heapInUse()
    guard clients.count == count + 1, accepted.count == count + 1 else {
        print("tcp benchmarks: only \(clients.count - 1) of \(count) connections opened")
        return
    }
    let perPair = Double(heapAfter - heapBefore) / Double(count)
    let object = oasis_allocation_size(Unmanaged.passUnretained(accepted[1]).toOpaque())
    let controlBlock = MemoryLayout<TCPControlBlock>.size
    // What the control block holds inline, by part (the public ones).
    let parts = [
        ("TCPConfiguration", MemoryLayout<TCPConfiguration>.size),
        ("CongestionController", MemoryLayout<CongestionController>.size),
        ("Scoreboard", MemoryLayout<Scoreboard>.size),
        ("RetransmissionTimer", MemoryLayout<RetransmissionTimer>.size),
        ("SendBuffer", MemoryLayout<SendBuffer>.size),
        ("ReceiveBuffer", MemoryLayout<ReceiveBuffer>.size),
        ("TCPStatistics", MemoryLayout<TCPStatistics>.size),
    ].map { "\($0.0) \($0.1)" }.joined(separator: ", ")
    let allocationsPerPair =
        live.map { " in \(format(Double($0) / Double(count), digits: 1)) live allocations" } ?? ""
    let cookies = pair.server.tcp.cookiesSent
    report.add(
        Figure(
            group: "tcp",
            name:
                "state per established connection, no buffers (\(count) connections between two stacks, heap growth per connection and side)",
            nanosecondsPerOperation: perPair / 2, allocationsPerOperation: nil,
            floorName: "the target: 1 KiB", floorNanosecondsPerOperation: 1024,
            note:
                "\(format(perPair, digits: 0)) B per connection for both ends\(allocationsPerPair);"
                + " TCPControlBlock \(controlBlock) B (inline in the connection object; of it \(parts)),"
                + " the connection object's allocation \(object) B (malloc_usable_size),"
                + " the rest the tables' entries (connections, the timer queue) and the application's part"
                + (cookies > 0 ? "; SYN cookies \(cookies)" : ""),
            unit: "B"))
    for client in clients { client.reset() }
    try? pair.loop.advance(by: .seconds(1))
}

/// Memory over many connections opened, used and closed: flat or not.
func runTCPChurnBenchmark(_ report: Report, scale: Int) {
    guard let pair = TCPPair() else { return }
    let loop = pair.loop
    let total = 1_000_000 / scale
    let warmUp = max(1000, 50_000 / scale)
    let concurrency = 64
    guard let listeners = try? TCPServices.start(on: pair.server, echo: 7, discard: 0, chargen: 0)
    else { return }
    defer { for listener in listeners { listener.close() } }
    _ = pair.connect(port: 7)
    let message = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
    message.initializeMemory(as: UInt8.self, repeating: 0x63)
    defer { message.deallocate() }
    var completed = 0
    var failed = 0
    var target = 0
    var started = 0
    func open() {
        guard started < target else { return }
        started += 1
        pair.client.connect(to: pair.serverEndpoint).onResult { result in
            guard let connection = try? result.get() else {
                failed += 1
                open()
                return
            }
            var echoed = 0
            connection.onReceive { input in
                echoed += input.count
                input.consume(input.count)
                guard echoed >= 64 else { return }
                connection.close()
                completed += 1
                if completed + failed >= target { loop.stop() } else { open() }
            }
            _ = try? connection.write(UnsafeRawBufferPointer(message))
        }
    }
    func churn(_ connections: Int) -> UInt64 {
        completed = 0
        failed = 0
        started = 0
        target = connections
        let start = monotonicNanoseconds()
        for _ in 0..<concurrency { open() }
        try? loop.run()
        // Let the last ones finish closing.
        try? loop.advance(by: .seconds(1))
        return monotonicNanoseconds() - start
    }
    _ = churn(warmUp)
    let heapBefore = heapInUse()
    let residentBefore = residentBytes()
    let tableBefore = pair.client.tcp.connectionCount
    let elapsed = churn(total)
    let heapAfter = heapInUse()
    let residentAfter = residentBytes()
    let tableAfter = pair.client.tcp.connectionCount
    report.add(
        Figure(
            group: "tcp",
            name:
                "\(total) connections opened, 64 B echoed, closed, \(concurrency) at once, memory pair: time per connection",
            nanosecondsPerOperation: Double(elapsed) / Double(total), allocationsPerOperation: nil,
            floorName: nil, floorNanosecondsPerOperation: nil,
            note: "heap in use \(heapBefore / 1024) KiB before, \(heapAfter / 1024) KiB after"
                + " (\(format(Double(heapAfter - heapBefore) / 1024, digits: 0)) KiB);"
                + " resident \(residentBefore / 1024) KiB before, \(residentAfter / 1024) KiB after;"
                + " client table (TIME-WAIT) \(tableBefore) then \(tableAfter) entries;"
                + " completed \(completed), failed \(failed) (after \(warmUp) to warm up)"))
}
