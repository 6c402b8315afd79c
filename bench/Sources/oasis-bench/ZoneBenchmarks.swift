// Zone files: records per second out of the master-file parser, streaming and into an
// array, on the A-record zone bench/dns.sh serves and on one of mixed types, beside
// reading the same file and counting its lines.

import Glibc
import OasisDNS

func runZoneBenchmarks(_ report: Report, scale: Int) {
    let operations = 100_000 / scale
    guard let origin = try? DomainName(parsing: "bench.test.") else { return }
    let folder = "/tmp/oasis-bench-zone.\(getpid())"
    mkdir(folder, 0o700)
    defer {
        for size in [operations, max(1, operations / 10)] {
            for kind in ["a", "mixed"] { unlink("\(folder)/\(kind)-\(size).zone") }
        }
        rmdir(folder)
    }
    /// The zone of `kind` with `records` records after its apex, written once.
    func zone(_ kind: String, _ records: Int) -> String {
        let path = "\(folder)/\(kind)-\(records).zone"
        guard access(path, F_OK) != 0 else { return path }
        var text = "$ORIGIN bench.test.\n$TTL 3600\n"
        text += "@ SOA ns hostmaster ( 1 ; serial\n    7200 3600 1209600 300 )\n"
        text += "@ NS ns\nns A 192.0.2.53\n"
        for i in 0..<records {
            let a = "10.\(i / 65536 % 256).\(i / 256 % 256).\(i % 256)"
            guard kind == "mixed" else {
                text += "h\(i) A \(a)\n"
                continue
            }
            switch i % 8 {
            case 0: text += "h\(i) A \(a)\n"
            case 1: text += "h\(i) 300 IN AAAA 2001:db8::\(String(i, radix: 16))\n"
            case 2: text += "h\(i) MX 10 mail\(i % 100).bench.test.\n"
            case 3: text += "h\(i) TXT \"v=spf1 -all\" \"record \(i)\" ; a comment\n"
            case 4: text += "h\(i) CNAME h\(i - 4)\n"
            case 5: text += "_sip._tcp.h\(i) SRV 10 20 5060 h\(i - 5)\n"
            case 6: text += "h\(i) NS ns\(i % 4).example.net.\n"
            default: text += "    A \(a) ; blank owner\n"
            }
        }
        if let file = fopen(path, "w") {
            fputs(text, file)
            fclose(file)
        }
        return path
    }
    for kind in ["a", "mixed"] {
        // Written before anything is timed: the warm-up size and the measured one.
        _ = zone(kind, max(1, operations / 10))
        _ = zone(kind, operations)
        // The floor: the file read into memory and its lines counted.
        let floor = measure(operations: operations) { n in
            guard let file = fopen(zone(kind, n), "rb") else { return }
            defer { fclose(file) }
            var bytes = [UInt8](repeating: 0, count: 1 << 16)
            var lines = 0
            while true {
                let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
                if read == 0 { break }
                for index in 0..<read where bytes[index] == 0x0a { lines &+= 1 }
            }
            blackHole(lines)
        }
        let streaming = measure(operations: operations) { n in
            var ttls: UInt32 = 0
            _ = try? ZoneFileParser.parse(file: zone(kind, n), origin: origin) { record, _, _ in
                ttls &+= record.ttl
            }
            blackHole(ttls)
        }
        let array = measure(operations: operations) { n in
            blackHole((try? ZoneFileParser.parse(file: zone(kind, n), origin: origin))?.count ?? 0)
        }
        let what = kind == "a" ? "A records" : "mixed types (A AAAA MX TXT CNAME SRV NS)"
        for (how, figure) in [("streamed", streaming), ("into an array", array)] {
            report.add(
                Figure(
                    group: "zone", name: "zone file of \(operations) \(what), parsed \(how)",
                    nanosecondsPerOperation: figure.nanoseconds,
                    allocationsPerOperation: figure.allocations,
                    retainsPerOperation: figure.retains,
                    floorName: "the file read and its lines counted",
                    floorNanosecondsPerOperation: floor.nanoseconds,
                    note: "\(format(1e9 / figure.nanoseconds / 1e6, digits: 2)) M records/s"))
        }
    }
}
