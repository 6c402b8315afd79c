// Bits: checksum throughput beside memcpy of the same bytes (the memory-bandwidth
// floor); header parse cost beside raw unchecked loads of the same fields.

import CFloor
import OasisBits
import OasisNet
import OasisWire

func runBitsBenchmarks(_ report: Report, scale: Int) {
    for size in [64, 1500] {
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        for i in 0..<size {
            source.storeBytes(
                of: UInt8(truncatingIfNeeded: i &* 7), toByteOffset: i, as: UInt8.self)
        }
        let operations = (size == 64 ? 5_000_000 : 1_000_000) / scale
        let floor = measure(operations: operations) { n in
            oasis_floor_memcpy(destination, source, size, n)
        }
        let ours = measure(operations: operations) { n in
            var accumulator: UInt16 = 0
            for _ in 0..<n {
                accumulator &+= InternetChecksum.checksum(
                    of: UnsafeRawBufferPointer(start: oasis_floor_opaque(source), count: size))
            }
            blackHole(accumulator)
        }
        let reference = measure(operations: operations) { n in
            var accumulator: UInt16 = 0
            for _ in 0..<n {
                accumulator &+= oasis_floor_checksum16(oasis_floor_opaque(source), size)
            }
            blackHole(accumulator)
        }
        let gigabytes = Double(size) / ours.nanoseconds
        report.add(
            Figure(
                group: "bits", name: "Internet checksum, \(size) B",
                nanosecondsPerOperation: ours.nanoseconds,
                allocationsPerOperation: ours.allocations, retainsPerOperation: ours.retains,
                floorName: "memcpy \(size) B", floorNanosecondsPerOperation: floor.nanoseconds,
                note: "\(format(gigabytes, digits: 2)) GB/s"))
        report.add(
            Figure(
                group: "bits", name: "C checksum, 16 bits a step, \(size) B (reference)",
                nanosecondsPerOperation: reference.nanoseconds,
                allocationsPerOperation: reference.allocations,
                retainsPerOperation: reference.retains,
                floorName: "memcpy \(size) B", floorNanosecondsPerOperation: floor.nanoseconds))
    }

    // One IPv4 header parsed through a declared layout (length and version checked,
    // six fields read, sub-byte ones included), beside the same six fields read with
    // raw unchecked loads and shifts.
    let header: [UInt8] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
        0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ]
    let packet = Bits(header + [UInt8](repeating: 0, count: 80))
    let operations = 10_000_000 / scale
    let parsed = measure(operations: operations) { n in
        var accumulator: UInt64 = 0
        for _ in 0..<n {
            _ = oasis_floor_opaque(nil)  // memory may have changed: read the header again
            guard let h = try? packet.header(IPv4Header.self) else { continue }
            accumulator &+= UInt64(h[IPv4Header.ihl]) &+ UInt64(h[IPv4Header.totalLength])
            accumulator &+= UInt64(h[IPv4Header.fragmentOffset]) &+ UInt64(h[IPv4Header.protocol])
            accumulator &+= UInt64(h[IPv4Header.source]) &+ UInt64(h[IPv4Header.destination])
        }
        blackHole(accumulator)
    }
    let raw = header.withUnsafeBytes { pointer in
        measure(operations: operations) { n in
            var accumulator: UInt64 = 0
            for _ in 0..<n {
                let base = oasis_floor_opaque(pointer.baseAddress!)!
                let first = base.load(fromByteOffset: 0, as: UInt8.self)
                guard first >> 4 == 4 else { continue }
                accumulator &+= UInt64(first & 0x0f)
                accumulator &+= UInt64(
                    UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                accumulator &+= UInt64(
                    UInt16(bigEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
                        & 0x1fff)
                accumulator &+= UInt64(base.load(fromByteOffset: 9, as: UInt8.self))
                accumulator &+= UInt64(
                    UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
                accumulator &+= UInt64(
                    UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
            }
            blackHole(accumulator)
        }
    }
    report.add(
        Figure(
            group: "bits", name: "IPv4 header through a declared layout (6 fields)",
            nanosecondsPerOperation: parsed.nanoseconds,
            allocationsPerOperation: parsed.allocations, retainsPerOperation: parsed.retains,
            floorName: "raw unchecked loads", floorNanosecondsPerOperation: raw.nanoseconds))

    // Pool: a buffer taken and dropped (recycled) per operation, beside malloc/free of
    // a page.
    let pool = BufferPool(limit: 64)
    let pooled = measure(operations: operations / 4) { n in
        for _ in 0..<n { blackHole(try? pool.allocate()) }
    }
    let mallocFloor = measure(operations: operations / 4) { n in
        for _ in 0..<n { oasis_floor_malloc_page() }
    }
    report.add(
        Figure(
            group: "bits", name: "pool buffer taken and recycled",
            nanosecondsPerOperation: pooled.nanoseconds,
            allocationsPerOperation: pooled.allocations, retainsPerOperation: pooled.retains,
            floorName: "malloc+free of 4 KiB (C)",
            floorNanosecondsPerOperation: mallocFloor.nanoseconds
        ))
}
