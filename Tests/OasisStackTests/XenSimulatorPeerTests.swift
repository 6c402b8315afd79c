// The Oasis stack on a Xen netfront, against the Linux kernel: xen/netback-sim bridges
// the netfront's rings (Xen's own ring macros on the backend side) to a TAP device in a
// namespace, and the kernel's ping and UDP sockets talk through it to `oasis stack
// --backend xen --xen-sim SOCKET`.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Creates a namespace with the simulator's TAP `vif1.0` at 192.0.2.1/24 on the
/// kernel's side, runs `oasis stack --backend xen` on the simulated hypervisor at
/// 192.0.2.2/24, waits until it answers ping, runs `body`, and stops everything.
func withStackOnSimulatedXen(
    _ test: String, extraArguments: [String] = [], log: UnsafeMutablePointer<String>? = nil,
    _ body: (TestNamespace) throws -> Void
) throws {
    guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
    try withTestNamespace(test) { namespace in
        let simulator = try RunningNetbackSimulator(["--tap", "vif1.0"], namespace: namespace.name)
        defer {
            let said = simulator.stop()
            print("\(test): netback-sim said:\n\(said)")
            log?.pointee += said
        }
        try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "vif1.0"])
        let stack = try RunningStack(
            namespace: namespace,
            arguments: [
                "--backend", "xen", "--xen-sim", simulator.socketPath, "--ip", "192.0.2.2/24",
            ] + extraArguments)
        defer {
            let said = stack.stop()
            print("\(test): oasis said:\n\(said)")
            log?.pointee += said
        }
        try waitForPing(namespace, "192.0.2.2")
        try body(namespace)
    }
}

@Suite(.serialized) struct XenSimulatorPeerTests {
    @Test func twentyFastPingsThroughTheRings() throws {
        try withStackOnSimulatedXen("twentyFastPingsThroughTheRings") { namespace in
            let result = try namespace.runChecked([
                "ping", "-c", "20", "-i", "0.01", "-W", "2", "192.0.2.2",
            ])
            #expect(result.output.contains(" 0% packet loss"), "\(result.output)")
            // The stack's MAC is the one the toolstack wrote in device/vif/0/mac.
            let neighbour = try namespace.runChecked(["ip", "neigh", "show", "192.0.2.2"])
            #expect(neighbour.output.contains("00:16:3e:00:00:01"), "\(neighbour.output)")
        }
    }

    @Test func fragmentedPingThroughTheRings() throws {
        try withStackOnSimulatedXen("fragmentedPingThroughTheRings") { namespace in
            let result = try namespace.runChecked([
                "ping", "-c", "5", "-i", "0.05", "-s", "3000", "-W", "2", "192.0.2.2",
            ])
            #expect(result.output.contains("5 received"), "\(result.output)")
            #expect(result.output.contains("3008 bytes from 192.0.2.2"), "\(result.output)")
        }
    }

    @Test func udpEchoThroughTheRings() throws {
        try withStackOnSimulatedXen("udpEchoThroughTheRings") { namespace in
            try expectKernelUDPEcho(
                namespace, sizes: Array(1..<20) + [100, 1000, 1472, 1473, 3000, 8000])
        }
    }

    /// TCP with --offload over the netfront: scatter-gather, partial checksums and GSO
    /// both ways through netback-sim, which hands the kernel 64 KiB segments behind a
    /// virtio-net header and takes its large ones the same way. 16 MiB echoed, both
    /// ways at once, compared by SHA-256; the stack sent segments for netback to cut
    /// and took coalesced ones.
    @Test func tcpEchoWithOffloadsThroughTheRings() throws {
        var log = ""
        try withStackOnSimulatedXen(
            "tcpEchoWithOffloadsThroughTheRings", extraArguments: ["--offload"], log: &log
        ) { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket, os, hashlib, threading
                block = os.urandom(4 << 20)
                sent = hashlib.sha256()
                s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                def send():
                    for i in range(4):
                        chunk = block[i * 4099:] + block[:i * 4099]
                        sent.update(chunk)
                        s.sendall(chunk)
                    s.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                h = hashlib.sha256()
                got = 0
                while True:
                    data = s.recv(1 << 20)
                    if not data:
                        break
                    h.update(data)
                    got += len(data)
                sender.join()
                print('echoed', got, h.hexdigest() == sent.hexdigest())
                """, printing: "echoed 16777216 True")
        }
        #expect(log.contains("features sg,csum,gso-tcpv4"), "\(log)")
        let counts = offloadCounts(log)
        #expect(counts.segmented > 0, "\(log)")
        #expect(counts.coalesced > 0, "\(log)")
        #expect(log.contains("gso dropped 0"), "\(log)")
    }

    /// Without Xen and without --xen-sim, the command fails with the typed error from
    /// opening /dev/xen/evtchn.
    @Test func realXenBackendSaysNotRunningUnderXen() throws {
        guard access(oasisPath, X_OK) == 0 else { try skip("xen", "\(oasisPath) is not built") }
        guard access("/dev/xen", F_OK) != 0 else {
            try skip("realXenBackendSaysNotRunningUnderXen", "this machine is a Xen domain")
        }
        let result = try run([oasisPath, "stack", "--backend", "xen", "--seconds", "1"])
        #expect(result.status != 0)
        #expect(
            result.errorOutput.contains("/dev/xen/evtchn not present: not running under Xen"),
            "\(result.errorOutput)")
    }
}
