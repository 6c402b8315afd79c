// iperf3 on the Oasis stack over a TAP, against Debian's iperf3 in the namespace:
// `oasis stack --iperf3` serves the kernel's iperf3 client, and `oasis stack
// --iperf3-client 192.0.2.1` runs a test against the kernel's `iperf3 -s`.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

private func skipWithoutIPerf3(_ test: String) throws {
    if !isInstalled("iperf3") {
        try skip(test, "iperf3 is not installed (apt-get install iperf3)")
    }
}

/// The bytes and Gbit/s our client printed for one direction ("client to server" or
/// "server to client"): sender bytes, receiver bytes.
private func reported(_ output: String, _ direction: String) -> (sent: UInt64, received: UInt64)? {
    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("iperf3 with ") }),
        let range = line.range(of: direction + ": sender ")
    else { return nil }
    let words = line[range.upperBound...].split(separator: " ")
    guard let sent = UInt64(words[0]), let index = words.firstIndex(of: "receiver"),
        let received = UInt64(words[index + 1])
    else { return nil }
    return (sent, received)
}

/// iperf3's client exits once it has sent IPERF_DONE, and the stack may still be
/// taking in the data the client's sockets flushed ahead of it (a debug build is
/// slow): a moment before the stack is stopped and its log read.
private func letTheStackCatchUp() {
    usleep(1_000_000)
}

@Suite(.serialized) struct IPerf3StackTests {
    /// The kernel's iperf3 client in the namespace against `oasis stack --iperf3`, with
    /// the TAP's offloads (TSO and GRO through the virtio-net header) and without.
    @Test(arguments: [
        (["-t", "2"], [String]()), (["-t", "2", "-R"], []), (["-t", "2", "-P", "4"], []),
        (["-t", "2"], ["--offload"]), (["-t", "2", "-R", "-P", "2"], ["--offload"]),
    ])
    func iperf3ClientAgainstTheStack(_ options: [String], _ stackOptions: [String]) throws {
        try skipWithoutIPerf3("iperf3 \(options) against the stack")
        var log = ""
        try withStackOnTap(
            "iperf3 \(options) \(stackOptions)", extraArguments: ["--iperf3"] + stackOptions,
            log: &log
        ) {
            namespace in
            let result = try namespace.run(["iperf3", "-c", "192.0.2.2", "--json"] + options)
            #expect(result.status == 0, "\(result.output) \(result.errorOutput)")
            let json = try #require(IPerf3JSONOutput(result.output), "\(result.output)")
            #expect(json.error == nil, "\(result.output)")
            #expect(json.bytes("sum_sent") > 0, "\(result.output)")
            #expect(json.bytes("sum_received") > 0, "\(result.output)")
            if let index = options.firstIndex(of: "-P") {
                #expect(json.connections == Int(options[index + 1]), "\(result.output)")
            }
            let sent = json.bytes("sum_sent")
            let seconds = 2.0
            print(
                "iperf3 \(options) against the stack \(stackOptions): \(Int(sent)) bytes, "
                    + "\(sent * 8 / seconds / 1e9) Gbit/s")
            letTheStackCatchUp()
        }
        #expect(log.contains("iperf3 tests 1 started, 1 completed, 0 failed"), "\(log)")
    }

    /// `oasis stack --iperf3-client` against the kernel's `iperf3 -s -1` in the
    /// namespace: the command exits 0 with its summary, and iperf3's server counted
    /// what our report says it did.
    @Test(arguments: [
        [String](), ["--iperf3-reverse"], ["--iperf3-parallel", "3"], ["--offload"],
        ["--offload", "--iperf3-reverse"],
    ])
    func ourClientOnTheStackAgainstIPerf3Server(_ options: [String]) throws {
        try skipWithoutIPerf3("our client \(options)")
        guard access(oasisPath, X_OK) == 0 else {
            try skip("our client", "\(oasisPath) is not built")
        }
        try withTestNamespace("ourClientOnTheStack") { namespace in
            try namespace.runChecked(["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "tap0"])
            try namespace.runChecked(["ip", "link", "set", "tap0", "up"])
            let server = try ChildProcess([
                "ip", "netns", "exec", namespace.name, "iperf3", "-s", "-1", "--json",
            ])
            defer { server.stop() }
            let deadline = Deadline(seconds: 10)
            while try !namespace.run(["ss", "-Hltn", "sport = :5201"]).output.contains(":5201") {
                guard !deadline.hasPassed else {
                    Issue.record("iperf3 -s never listened")
                    return
                }
                usleep(20_000)
            }
            let result = try namespace.run(
                [
                    oasisPath, "stack", "--tap", "tap0", "--ip", "192.0.2.2/24", "--mac", stackMAC,
                    "--iperf3-client", "192.0.2.1", "--iperf3-time", "2",
                ] + options)
            print("oasis said:\n\(result.output)")
            #expect(result.status == 0, "\(result.output) \(result.errorOutput)")
            let reverse = options.contains("--iperf3-reverse")
            let counts = try #require(
                reported(result.output, reverse ? "server to client" : "client to server"),
                "\(result.output)")
            #expect(counts.sent > 0 && counts.received > 0, "\(result.output)")
            let deadlineForServer = Deadline(seconds: 10)
            while server.isRunning && !deadlineForServer.hasPassed { usleep(20_000) }
            let json = IPerf3JSONOutput(server.output)
            #expect(server.status == 0 && json?.error == nil, "\(server.output)")
            let serverCount = json?.bytes(reverse ? "sum_sent" : "sum_received") ?? -1
            #expect(
                serverCount == Double(reverse ? counts.sent : counts.received), "\(server.output)")
        }
    }

    /// Garbage and lies on the control connection over the stack's own TCP: refused,
    /// and the kernel's iperf3 client is served afterwards.
    @Test func hostileControlInputThenARealClient() throws {
        try skipWithoutIPerf3("hostile control input over the stack")
        var log = ""
        try withStackOnTap("hostileControlInput", extraArguments: ["--iperf3"], log: &log) {
            namespace in
            let script = """
                import socket
                def control():
                    s = socket.create_connection(('192.0.2.2', 5201), timeout=15)
                    return s
                def rest(s):
                    data = b''
                    while True:
                        chunk = s.recv(100)
                        if not chunk:
                            return data
                        data += chunk
                cookie = b'abcdefghijklmnopqrstuvwxyz234567abcd\\0'
                s = control(); s.sendall(b'\\xff' * 37)
                print('garbage', rest(s).hex()); s.close()
                s = control(); s.sendall(cookie); assert s.recv(1) == b'\\x09'
                s.sendall(b'\\xff\\xff\\xff\\xff')
                print('huge', rest(s).hex()); s.close()
                s = control(); s.sendall(cookie); assert s.recv(1) == b'\\x09'
                s.sendall(b'\\x00\\x00\\x00\\x64' + b' ' * 50); s.shutdown(socket.SHUT_WR)
                print('truncated', rest(s).hex()); s.close()
                """
            let hostile = try python(namespace, script)
            #expect(hostile.status == 0, "\(hostile.output) \(hostile.errorOutput)")
            #expect(hostile.output.contains("garbage \n"), "\(hostile.output)")
            #expect(hostile.output.contains("huge fe0000007200000000\n"), "\(hostile.output)")
            #expect(hostile.output.contains("truncated \n"), "\(hostile.output)")
            let result = try namespace.run(["iperf3", "-c", "192.0.2.2", "-t", "1", "--json"])
            let json = IPerf3JSONOutput(result.output)
            #expect(result.status == 0 && json?.error == nil, "\(result.output)")
            #expect((json?.bytes("sum_received") ?? 0) > 0, "\(result.output)")
            letTheStackCatchUp()
        }
        #expect(log.contains("iperf3 tests 4 started, 1 completed, 3 failed"), "\(log)")
    }
}
