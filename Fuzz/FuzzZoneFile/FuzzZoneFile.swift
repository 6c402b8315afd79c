// Fuzz target: zone files from a stranger. Every outcome must be records or a
// ZoneFileError; whatever parses must also load into the engine or fail with a
// ZoneFileError. A trap is a bug.

import FuzzSupport
import OasisDNS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZoneFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let origin = try! DomainName(parsing: "example.")
    guard let records = try? ZoneFileParser.parse(text: text, origin: origin, allowIncludes: false)
    else { return 0 }
    for record in records { _ = record.description }
    _ = try? AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzZoneFile)
            print("replayed \(count) input(s)")
        }
    }
#endif
