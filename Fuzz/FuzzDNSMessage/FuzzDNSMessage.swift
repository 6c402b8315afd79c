// Fuzz target: DNS messages from a stranger — the message parser, and the engine's
// batch prefetch and respond paths over UDP and TCP. Every outcome must be a value, a WireError, or an
// answer that our own parser reads back; a trap is a bug.

import FuzzSupport
import OasisBits
import OasisDNS

let fuzzZone = """
    $TTL 300
    @ SOA ns hostmaster 1 3600 600 86400 60
    @ NS ns
    @ MX 10 mail
    ns A 192.0.2.1
    mail AAAA 2001:db8::1
    www CNAME host
    host A 192.0.2.2
    loop CNAME loop
    *.wild TXT "wild"
    a.b.ent A 192.0.2.3
    sub NS ns.sub
    ns.sub A 192.0.2.4
    _x._tcp SRV 1 2 3 host
    big TXT "\(String(repeating: "x", count: 200))" "\(String(repeating: "y", count: 200))"
    big TXT "\(String(repeating: "z", count: 200))"
    """

let fuzzEngine: AuthoritativeEngine = {
    let origin = try! DomainName(parsing: "example.")
    let records = try! ZoneFileParser.parse(text: fuzzZone, origin: origin, allowIncludes: false)
    return try! AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
}()

nonisolated(unsafe) let outputBuffer = Buffer(byteCount: 65536 + 64)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNSMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size))
    if let message = try? Message(parsing: bits) {
        // Whatever parses must encode and parse back to the same meaning.
        var out = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
        if (try? message.encode(into: &out)) != nil {
            let again = try! Message(parsing: out)
            precondition(again.questions == message.questions && again.answers == message.answers)
        }
    }
    // The batch hints read the question name of whatever arrives: harmless on anything.
    fuzzEngine.prefetchRecord(fuzzEngine.prefetchSlot(for: bits))
    for transport in [Transport.udp, .tcp, .udp(maximumPayload: 512)] {
        var out = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
        if let length = fuzzEngine.respond(to: bits, transport: transport, into: &out) {
            precondition(length == out.count && length >= 12)
            if case .udp(let maximum) = transport { precondition(length <= max(512, maximum)) }
            // Our answers must be well formed.
            _ = try! Message(parsing: out)
        }
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzDNSMessage)
            print("replayed \(count) input(s)")
        }
    }
#endif
