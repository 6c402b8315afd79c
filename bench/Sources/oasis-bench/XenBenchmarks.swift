// The Xen ring path, in process and without root: a frame goes out on the netif TX
// ring, a backend played by a second Swift ring end copies it into a buffer posted on
// the RX ring (as netback's rx-copy does), and the frontend collects both responses
// and reposts the buffer. Beside it, the memory pair's bounce of the same frame.

import OasisBits
import OasisDevices
import OasisLoop
import OasisXen

func runXenBenchmarks(_ report: Report, scale: Int) {
    let operations = 400_000 / scale
    let frameSize = 14 + 20 + 8 + 64

    // Floor: the memory pair, one frame bounced there and back per operation.
    guard let loop = try? EventLoop(clock: .virtual) else { return }
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
    let floor = measure(operations: operations) { n in
        bounces = 0
        target = n
        loop.enqueue {
            try? left.transmit(Bits([UInt8](repeating: 0, count: frameSize), headroom: 128))
        }
        try? loop.run()
    }

    // The rings: two ring pages and 512 buffer pages, "granted" by index.
    let rings = Buffer(pageCount: 2)
    let pageCount = 512
    let pages = Buffer(pageCount: pageCount)
    func page(_ reference: XenGrantReference) -> UnsafeMutableRawPointer? {
        let index = Int(reference.rawValue)
        return index < pageCount ? pages.baseAddress + index * Buffer.pageSize : nil
    }
    guard
        var frontTX = try? FrontRing<NetifTransmitLayout>(
            initialising: rings.baseAddress, byteCount: Buffer.pageSize),
        var frontRX = try? FrontRing<NetifReceiveLayout>(
            initialising: rings.baseAddress + Buffer.pageSize, byteCount: Buffer.pageSize),
        var backTX = try? BackRing<NetifTransmitLayout>(
            attaching: rings.baseAddress, byteCount: Buffer.pageSize),
        var backRX = try? BackRing<NetifReceiveLayout>(
            attaching: rings.baseAddress + Buffer.pageSize, byteCount: Buffer.pageSize)
    else { return }
    // Pages 0..<256 are RX buffers, posted with id = page; page 300 holds the frame.
    for id in 0..<256 {
        try? frontRX.putRequest(
            NetifReceiveRequest(id: UInt16(id), grant: XenGrantReference(UInt32(id))))
    }
    _ = frontRX.pushRequests()
    let transmitPage = XenGrantReference(300)
    var notifications = 0
    var delivered = 0
    var failures = 0
    let ringPath = measure(operations: operations) { n in
        for _ in 0..<n {
            // Front: transmit.
            try? frontTX.putRequest(
                NetifTransmitRequest(
                    grant: transmitPage, offset: 128, flags: 0, id: 0, size: UInt16(frameSize)))
            if frontTX.pushRequests() { notifications += 1 }
            // Back: take it, copy it into the next posted buffer, answer both.
            while (try? backTX.unconsumedRequests()) ?? 0 > 0 {
                let request = backTX.takeRequest()
                guard (try? backRX.unconsumedRequests()) ?? 0 > 0,
                    let source = page(request.grant)
                else {
                    failures += 1
                    continue
                }
                let buffer = backRX.takeRequest()
                guard let destination = page(buffer.grant) else { continue }
                destination.copyMemory(
                    from: source + Int(request.offset), byteCount: Int(request.size))
                try? backTX.putResponse(NetifTransmitResponse(id: request.id, status: 0))
                try? backRX.putResponse(
                    NetifReceiveResponse(
                        id: buffer.id, offset: 0, flags: 0, status: Int16(request.size)))
            }
            if backTX.pushResponses() { notifications += 1 }
            if backRX.pushResponses() { notifications += 1 }
            _ = try? backTX.finalCheckForRequests()
            // Front: collect the TX response, take the frame, repost its buffer.
            while (try? frontTX.unconsumedResponses()) ?? 0 > 0 { _ = frontTX.takeResponse() }
            _ = try? frontTX.finalCheckForResponses()
            while (try? frontRX.unconsumedResponses()) ?? 0 > 0 {
                let response = frontRX.takeResponse()
                if response.status > 0 { delivered += 1 }
                try? frontRX.putRequest(
                    NetifReceiveRequest(
                        id: response.id, grant: XenGrantReference(UInt32(response.id))))
            }
            if frontRX.pushRequests() { notifications += 1 }
            _ = try? frontRX.finalCheckForResponses()
            _ = try? backRX.finalCheckForRequests()
        }
    }
    if failures > 0 { print("xen benchmarks: \(failures) frames found no posted buffer") }
    report.add(
        Figure(
            group: "xen",
            name: "netif rings: TX, backend copy into posted RX buffer, both responses, repost",
            nanosecondsPerOperation: ringPath.nanoseconds,
            allocationsPerOperation: ringPath.allocations, retainsPerOperation: ringPath.retains,
            floorName: "memory pair bounce (there and back)",
            floorNanosecondsPerOperation: floor.nanoseconds,
            note: "\(frameSize) B frames, \(delivered) delivered, \(notifications) notifies"))
    withExtendedLifetime((rings, pages)) {}
}
