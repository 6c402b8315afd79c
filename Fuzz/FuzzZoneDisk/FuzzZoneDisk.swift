// Fuzz target: a zone disk's header from a stranger (`oasis dns --zone-disk`). Every
// outcome must be extents within the disk or a ZoneDiskError. A trap is a bug.

import FuzzSupport
import OasisDNS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZoneDisk(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The capacity comes from the input too: a disk of any size may carry any header.
    let capacity = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } ^ UInt64(size)
    let disk = Array(bytes.dropFirst(8))
    guard let extents = try? ZoneDisk.parseHeader(disk, capacity: capacity) else { return 0 }
    var total = 0
    for extent in extents {
        precondition(extent.offset >= UInt64(ZoneDisk.headerBytes))
        precondition(extent.offset + UInt64(extent.length) <= capacity)
        precondition(extent.length <= ZoneDisk.maximumZoneBytes)
        total += extent.length
        // Whatever the disk's text, a digest check ends in a value or an error.
        let start = Int(min(extent.offset, UInt64(disk.count)))
        let text = Array(disk[start..<min(disk.count, start + extent.length)])
        _ = try? ZoneDisk.verify(text, of: extent)
    }
    precondition(UInt64(total) <= ZoneDisk.maximumTotalBytes)
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzZoneDisk)
            print("replayed \(count) input(s)")
        }
    }
#endif
