// The authoritative engine alone: nanoseconds to answer one query, with no sockets,
// on the zones and the query mix bench/dns.sh gives NSD and `oasis dns` (names spread
// over the zone, one in ten NXDOMAIN), beside the floor every responder pays: the
// query copied into the reply buffer. The query messages are those dnsperf sends (RD
// set, no EDNS).

import Glibc
import OasisBits
import OasisDNS

func runDNSBenchmarks(_ report: Report, scale: Int) {
    let operations = 1_000_000 / scale
    for names in [10, 100_000] {
        guard let engine = benchEngine(names: names) else { return }
        // The queries, each in its own buffer as a device or socket delivers it.
        let queryCount = names < 1000 ? 1000 : min(names, 100_000)
        var random = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 1...UInt64.max, using: &random)
        var queries: [Bits] = []
        for index in 0..<queryCount {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let name =
                index % 10 == 9 ? "x\(index)" : "h\(Int(seed >> 33) % names)"
            var wire: [UInt8] = [
                UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index), 0x01, 0, 0,
                1, 0, 0, 0, 0, 0, 0,
            ]
            for label in [name, "bench", "test"] {
                wire.append(UInt8(label.utf8.count))
                wire.append(contentsOf: label.utf8)
            }
            wire += [0, 0, 1, 0, 1]
            queries.append(Bits(wire, headroom: 128))
        }
        let pool = BufferPool(headroom: 128, limit: 4)
        guard var reply = try? pool.allocate() else { return }
        let floor = measure(operations: operations) { n in
            var total = 0
            for index in 0..<n {
                let query = queries[index % queryCount]
                try? reply.truncate(to: 0)
                query.withUnsafeBytes { try? reply.append(contentsOf: $0) }
                total &+= reply.count
            }
            blackHole(total)
        }
        let answer = measure(operations: operations) { n in
            var total = 0
            for index in 0..<n {
                try? reply.truncate(to: 0)
                total &+=
                    engine.respond(
                        to: queries[index % queryCount], transport: .udp(maximumPayload: 1232),
                        into: &reply) ?? 0
            }
            blackHole(total)
        }
        // Through an answer cache as `oasis dns` keeps one (it stands aside at the
        // large zone, whose queries rarely repeat).
        let cache = AnswerCache(slots: 1024)
        let cached = measure(operations: operations) { n in
            var total = 0
            for index in 0..<n {
                let query = queries[index % queryCount]
                total &+=
                    query.withUnsafeBytes { bytes in
                        cache.respond(
                            with: engine, to: bytes, transport: .udp(maximumPayload: 1232),
                            into: UnsafeMutableRawBufferPointer(
                                start: reply.buffer.baseAddress + reply.offset,
                                count: reply.tailroom))
                    } ?? 0
            }
            blackHole(total)
        }
        report.add(
            Figure(
                group: "dns",
                name: "answer cache then engine, zone of \(names) names (1 in 10 NXDOMAIN)",
                nanosecondsPerOperation: cached.nanoseconds,
                allocationsPerOperation: cached.allocations, retainsPerOperation: cached.retains,
                floorName: "the query copied into the reply",
                floorNanosecondsPerOperation: floor.nanoseconds,
                note:
                    "\(cache.hits) hits, \(cache.misses) misses, \(cache.bypassed) passed by"))
        report.add(
            Figure(
                group: "dns",
                name: "engine answers a query, zone of \(names) names (1 in 10 NXDOMAIN)",
                nanosecondsPerOperation: answer.nanoseconds,
                allocationsPerOperation: answer.allocations, retainsPerOperation: answer.retains,
                floorName: "the query copied into the reply",
                floorNanosecondsPerOperation: floor.nanoseconds,
                note: "\(format(1e9 / answer.nanoseconds / 1e6, digits: 2)) M answers/s"))
    }
}

/// The engine over bench/dns.sh's zone: bench.test. with `names` A records h0...
func benchEngine(names: Int) -> AuthoritativeEngine? {
    guard let origin = try? DomainName(parsing: "bench.test.") else { return nil }
    let path = "/tmp/oasis-bench-dns.\(getpid()).zone"
    defer { unlink(path) }
    guard let file = fopen(path, "w") else { return nil }
    fputs("$ORIGIN bench.test.\n$TTL 3600\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n", file)
    fputs("@ NS ns\nns A 192.0.2.53\n", file)
    for i in 0..<names {
        fputs("h\(i) A 10.\(i / 65536 % 256).\(i / 256 % 256).\(i % 256)\n", file)
    }
    fclose(file)
    var compiler = ZoneCompiler()
    guard (try? compiler.add(file: path, origin: origin)) != nil else { return nil }
    return compiler.finish()
}
