// `oasis dns check-zone` against `nsd-checkzone` on the same files: the same verdict,
// and our error at a file:line.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CheckZoneTests {
    static let head = """
        $ORIGIN example.test.
        $TTL 300
        @ IN SOA ns1 host 1 3600 900 604800 300
        @ IN NS ns1
        ns1 IN A 192.0.2.53

        """

    /// Zone bodies after `head`, each checked by both.
    static let bodies: [String] = [
        "www IN A 192.0.2.80",
        "www IN A 192.0.2.800",
        "www IN BOGUS 1",
        "foo IN CNAME bar\nfoo IN A 192.0.2.4",
        "@ IN SOA ns1 host 2 3600 900 604800 300",
        "$INCLUDE /nonexistent-oasis-include",
        String(repeating: "a", count: 70) + " IN A 192.0.2.4",
        "www IN MX 10",
        "www IN AAAA 2001:db8::zz",
        "www.other.test. IN A 192.0.2.4",
        "www IN TXT \"unterminated",
        "www IN A 01.2.3.4",
        "$TTL abc",
        "www IN CNAME a\nwww IN CNAME b",
        "sub IN NS ns.sub\nsub IN A 192.0.2.4",
        "www IN SRV 1 2 3 target",
        "www IN SRV 1 2 target",
        "www IN CAA 0 issue \"ca.example\"",
        "www 3600 IN MX 10 mail\nmail IN AAAA 2001:db8::1",
        "$ORIGIN sub.example.test.\nx IN A 192.0.2.9",
        "www IN A",
        "*.wild IN A 192.0.2.7",
        "www IN TXT \"a\" \"b\" (\n \"c\" )",
    ]

    /// Where NSD 4.6 and we differ on purpose (README, "differences from NSD"): NSD
    /// accepts these, we refuse them.
    static let weRefuse: [String] = [
        // A TTL beyond 32 bits: NSD wraps it; we say it is bad.
        "www 99999999999 IN A 192.0.2.4",
        // A parenthesis left open at the end of the file.
        "www IN A 192.0.2.4 (",
    ]

    @Test func sameVerdictsAsNSDCheckzone() throws {
        guard isInstalled("nsd-checkzone") else {
            try skip(#function, "nsd-checkzone is not installed (package nsd)")
        }
        guard access(oasisPath, X_OK) == 0 else { try skip(#function, "\(oasisPath) is not built") }
        var template = Array("/tmp/oasis-check-zone.XXXXXX".utf8CString)
        let folder = template.withUnsafeMutableBufferPointer {
            String(cString: mkdtemp($0.baseAddress!)!)
        }
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        for (index, body) in (Self.bodies + Self.weRefuse).enumerated() {
            let path = "\(folder)/z\(index).zone"
            try (Self.head + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let nsd = try run(["nsd-checkzone", "example.test", path])
            let ours = try run([oasisPath, "dns", "check-zone", "example.test", path])
            if Self.weRefuse.contains(body) {
                #expect(nsd.status == 0 && ours.status == 1, "\(body): \(nsd) / \(ours)")
                continue
            }
            #expect(nsd.status == ours.status, "\(body): nsd \(nsd) / ours \(ours)")
            if ours.status == 0 {
                #expect(ours.output == "zone example.test is ok\n", "\(ours.output)")
            } else {
                // The error names the file and a line of it (not just the file).
                #expect(ours.errorOutput.contains("\(path):"), "\(body): \(ours.errorOutput)")
                #expect(
                    ours.errorOutput.contains("zone example.test. file \(path) has 1 errors"),
                    "\(ours.errorOutput)")
            }
        }
    }
}
