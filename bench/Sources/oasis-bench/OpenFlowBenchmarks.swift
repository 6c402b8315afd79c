// OpenFlow 1.0: decode and encode cost of the three messages a controller and a
// switch exchange per packet (PACKET_IN, FLOW_MOD, PACKET_OUT), beside copying the
// same bytes.

import CFloor
import OasisBits
import OasisDevices
import OasisOpenFlow

func runOpenFlowBenchmarks(_ report: Report, scale: Int) {
    // A 60-byte TCP frame, as a switch would send up in a PACKET_IN.
    var frameBytes: [UInt8] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ]
    frameBytes += [
        0x08, 0x00, 0x45, 0x00, 0x00, 0x2e, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    ]
    frameBytes += [0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02, 0x30, 0x39, 0x00, 0x50]
    frameBytes += [UInt8](repeating: 0, count: 60 - frameBytes.count)
    let frame = Bits(frameBytes)
    let match = Match(frame: frame, inPort: PortNumber(1))
    let messages: [(String, Message)] = [
        (
            "PACKET_IN (60 B frame)",
            Message(
                xid: 1,
                body: .packetIn(
                    PacketIn(
                        bufferID: 0x100, totalLength: 60, inPort: PortNumber(1), reason: .noMatch,
                        data: Payload(frame))))
        ),
        (
            "FLOW_MOD (exact match, 2 actions)",
            Message(
                xid: 2,
                body: .flowMod(
                    FlowMod(
                        match: match, cookie: 7, command: .add, idleTimeout: 10, hardTimeout: 30,
                        priority: 100, bufferID: 0x100,
                        actions: [.setVLANID(10), .output(port: PortNumber(2))])))
        ),
        (
            "PACKET_OUT (1 action, 60 B frame)",
            Message(
                xid: 3,
                body: .packetOut(
                    PacketOut(
                        inPort: PortNumber(1), actions: [.output(port: PortNumber(2))],
                        data: Payload(frame))))
        ),
    ]
    let operations = 1_000_000 / scale
    let pool = BufferPool(limit: 16)
    for (name, message) in messages {
        guard let encoded = try? message.encoded() else {
            print("openflow bench: cannot encode \(name)")
            continue
        }
        let size = encoded.count
        let copy = encoded.withUnsafeBytes { bytes in
            let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            defer { destination.deallocate() }
            return measure(operations: operations) { n in
                oasis_floor_memcpy(destination, bytes.baseAddress!, size, n)
            }
        }
        let decode = measure(operations: operations) { n in
            var accumulator: UInt32 = 0
            for _ in 0..<n {
                _ = oasis_floor_opaque(nil)
                if let decoded = try? Message.decode(encoded) { accumulator &+= decoded.xid }
            }
            blackHole(accumulator)
        }
        let encode = measure(operations: operations) { n in
            var accumulator = 0
            for _ in 0..<n {
                guard var out = try? pool.allocate() else { continue }
                try? message.encode(into: &out)
                accumulator &+= out.count
            }
            blackHole(accumulator)
        }
        report.add(
            Figure(
                group: "openflow", name: "decode \(name)",
                nanosecondsPerOperation: decode.nanoseconds,
                allocationsPerOperation: decode.allocations, retainsPerOperation: decode.retains,
                floorName: "memcpy \(size) B",
                floorNanosecondsPerOperation: copy.nanoseconds))
        report.add(
            Figure(
                group: "openflow", name: "encode \(name)",
                nanosecondsPerOperation: encode.nanoseconds,
                allocationsPerOperation: encode.allocations, retainsPerOperation: encode.retains,
                floorName: "memcpy \(size) B",
                floorNanosecondsPerOperation: copy.nanoseconds))
    }
}
