// `oasis dns --zone-disk`: the zones put on a disk by `oasis block put-zones` are served
// exactly as the same files given with --zone (dig's answers compared).

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct ZoneDiskServerTests {
    /// Ports of this suite's own (10000–19999, apart from the DNS suites' 20000–31999).
    func port(_ offset: Int) -> UInt16 { UInt16(10000 + Int(getpid()) % 4000 * 2 + offset) }

    @Test func theZoneDiskIsServedAsTheZoneFilesAre() throws {
        let test = "zone disk"
        guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
        guard isInstalled("dig") else { try skip(test, "dig is not installed (bind9-dnsutils)") }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        // On the machine's disk (the folder may be on tmpfs): O_DIRECT as in use.
        let image = "/var/tmp/oasis-zone-disk-\(getpid()).img"
        defer { unlink(image) }
        let put = try run([
            oasisPath, "block", "put-zones", "--disk", "file:\(image)", "--create", "1M",
            "\(folder)/example.test.zone", "other.test=\(folder)/other.test.zone",
        ])
        #expect(put.status == 0, "\(put.errorOutput)")
        #expect(put.output.hasPrefix("put-zones: 2 zones, "))

        let filesPort = port(0)
        let diskPort = port(1)
        let files = try RunningDNS([
            "--zone", "\(folder)/example.test.zone", "--zone", "\(folder)/other.test.zone",
            "--listen", "127.0.0.1:\(filesPort)", "--workers", "1",
        ])
        defer { print("\(test): oasis (files) said:\n\(files.stop())") }
        let disk = try RunningDNS([
            "--zone-disk", "file:\(image)", "--listen", "127.0.0.1:\(diskPort)", "--workers", "1",
        ])
        defer { print("\(test): oasis (disk) said:\n\(disk.stop())") }
        guard waitForDNS(port: filesPort), waitForDNS(port: diskPort) else {
            Issue.record("a server never answered")
            return
        }
        let fromFiles = digAnswers(try digText("127.0.0.1", port: filesPort, dnsComparisonQueries))
        let fromDisk = digAnswers(try digText("127.0.0.1", port: diskPort, dnsComparisonQueries))
        #expect(fromFiles.count == dnsComparisonQueries.count)
        #expect(fromDisk == fromFiles)
        #expect(disk.stop().contains("the zones on file:\(image)"))
    }

    @Test func aDiskWithoutZonesIsRefusedOnOneLine() throws {
        let test = "zone disk refused"
        guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
        let image = "/var/tmp/oasis-zone-disk-empty-\(getpid()).img"
        defer { unlink(image) }
        let create = try run([
            oasisPath, "block", "info", "--disk", "file:\(image)", "--create", "64k",
        ])
        #expect(create.status == 0)
        let result = try run([
            oasisPath, "dns", "--zone-disk", "file:\(image)", "--listen", "127.0.0.1:0",
            "--seconds", "2",
        ])
        #expect(result.status == 1)
        #expect(
            result.errorOutput.contains("no zone disk header (OASISZN1)"), "\(result.errorOutput)")
        // A zone whose text was changed on the disk after put-zones.
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let put = try run([
            oasisPath, "block", "put-zones", "--disk", "file:\(image)", "\(folder)/other.test.zone",
        ])
        #expect(put.status == 0, "\(put.errorOutput)")
        let poke = try run([
            "sh", "-c", "printf X | dd of='\(image)' bs=1 seek=4100 conv=notrunc status=none",
        ])
        #expect(poke.status == 0)
        let tampered = try run([
            oasisPath, "dns", "--zone-disk", "file:\(image)", "--listen", "127.0.0.1:0",
            "--seconds", "2",
        ])
        #expect(tampered.status == 1)
        #expect(
            tampered.errorOutput.contains("zone other.test.: SHA-256 mismatch"),
            "\(tampered.errorOutput)")
    }
}
