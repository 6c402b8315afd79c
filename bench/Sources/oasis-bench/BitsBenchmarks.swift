// Bits: checksum throughput beside memcpy of the same bytes; header parse cost.

import CFloor

func runBitsBenchmarks(_ report: Report, scale: Int) {
    let size = 1500
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    defer {
        source.deallocate()
        destination.deallocate()
    }
    for i in 0..<size {
        source.storeBytes(of: UInt8(truncatingIfNeeded: i &* 7), toByteOffset: i, as: UInt8.self)
    }
    let operations = 200_000 / scale
    let floor = measure(operations: operations) { n in
        oasis_floor_memcpy(destination, source, size, n)
    }
    let reference = measure(operations: operations) { n in
        var acc: UInt16 = 0
        for _ in 0..<n { acc &+= oasis_floor_checksum16(source, size) }
        blackHole(acc)
    }
    report.add(
        Figure(
            group: "bits", name: "checksum16 in C, 1500 B (reference)",
            nanosecondsPerOperation: reference.nanoseconds,
            allocationsPerOperation: reference.allocations, floorName: "memcpy 1500 B",
            floorNanosecondsPerOperation: floor.nanoseconds))
}
