// Fuzz target: DNS messages from a stranger — the message parser, and the engine's
// batch prefetch and respond paths over UDP and TCP. Every outcome must be a value, a WireError, or an
// answer that our own parser reads back; a trap is a bug. The answer cache must give,
// asked twice (the second time with another ID), exactly the engine's answer.

import FuzzSupport
import Glibc
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
    // Saying its version and identity, so CHAOS queries reach the code that answers.
    return try! AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
        .answering(as: ServerIdentity(version: "fuzz 1", identity: "fuzz"))
}()

nonisolated(unsafe) let outputBuffer = Buffer(byteCount: 65536 + 64)
nonisolated(unsafe) let cachedBuffer = Buffer(byteCount: 65536 + 64)
// Small, so that inputs evict each other; never standing aside for long.
nonisolated(unsafe) let fuzzCache = AnswerCache(slots: 16, bypassLength: 3)

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
        // Through the cache: the engine's answer, byte for byte, whatever the ID.
        var query = [UInt8](UnsafeRawBufferPointer(start: data, count: size))
        for round in 0..<2 {
            if round == 1 && query.count >= 2 { query[0] ^= 0x5a }
            let direct = try! Bits(buffer: outputBuffer, offset: 0, count: 0)
            let expected = query.withUnsafeBytes { bytes in
                fuzzEngine.respond(
                    to: bytes, transport: transport,
                    into: UnsafeMutableRawBufferPointer(
                        start: direct.buffer.baseAddress, count: direct.tailroom))
            }
            let cached = query.withUnsafeBytes { bytes in
                fuzzCache.respond(
                    with: fuzzEngine, to: bytes, transport: transport,
                    into: UnsafeMutableRawBufferPointer(
                        start: cachedBuffer.baseAddress, count: cachedBuffer.capacity))
            }
            precondition(cached == expected)
            if let length = expected {
                precondition(
                    memcmp(outputBuffer.baseAddress, cachedBuffer.baseAddress, length) == 0)
            }
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
