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
    guard let engine = try? AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
    else { return 0 }
    // Ask about the zone's first names with DO, and about names it lacks: whatever the
    // zone (a broken NSEC3 chain, NSEC3 owners that are not hashes, a DNAME loop), the
    // answer is well formed and fits.
    var names = records.prefix(4).map(\.name)
    names.append(try! DomainName(parsing: "nx.example."))
    names.append(try! DomainName(parsing: "a.b.c.example."))
    var reply = [UInt8](repeating: 0, count: 65536)
    for name in names {
        for type in [RecordType.a, .ds, .nsec3, .any] {
            var query: [UInt8] = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
            query += name.wire + [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xff), 0, 1]
            query += [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]  // OPT, DO
            for transport in [Transport.udp, .tcp] {
                let length = query.withUnsafeBytes { bytes in
                    reply.withUnsafeMutableBytes { out in
                        engine.respond(to: bytes, transport: transport, into: out)
                    }
                }
                if let length, case .udp = transport { precondition(length <= 1232) }
            }
        }
    }
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
