// The iperf3 server and client on kernel sockets (`SocketStreams` on 127.0.0.1), against
// Debian's iperf3 3.12: its client against our server, our client against its server,
// and clients written by hand that walk the control exchange, or break it.

import Foundation
import OasisLoop
import OasisNet
import OasisServices
import OasisTestSupport
import OasisWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct IPerf3SocketTests {
    @Test(arguments: [
        ["-t", "1"], ["-t", "1", "-R"], ["-t", "1", "-P", "3"], ["-t", "1", "-P", "2", "-R"],
        ["-t", "1", "-l", "1000"], ["-t", "1", "--bidir"], ["-n", "10M"], ["-k", "100", "-R"],
        ["-t", "1", "-O", "1"], ["-t", "1", "-N", "-C", "reno"],
    ])
    func iperf3ClientAgainstOurServer(_ options: [String]) throws {
        if let reason = iperf3UnavailableReason { try skip("iperf3 \(options)", reason) }
        let (loop, streams, server, port) = try ourServer()
        defer { streams.close() }
        var summaries: [IPerf3TestSummary] = []
        server.onTestEnd = { summaries.append($0) }
        let (status, output, text) = try kernelClient(loop, port: port, options)
        #expect(status == 0, "\(text)")
        let json = try #require(output, "\(text)")
        #expect(json.error == nil, "\(text)")
        #expect(json.bytes("sum_sent") > 0, "\(text)")
        #expect(json.bytes("sum_received") > 0, "\(text)")
        if options.contains("--bidir") {
            #expect(json.bytes("sum_sent_bidir_reverse") > 0, "\(text)")
            #expect(json.bytes("sum_received_bidir_reverse") > 0, "\(text)")
        }
        if let index = options.firstIndex(of: "-P") {
            #expect(json.connections == Int(options[index + 1]), "\(text)")
        }
        // The server's side: the test completed, its bytes are the client's receiver's
        // (forward) or sender's (reverse) count.
        _ = try run(loop, seconds: 5) { server.isIdle }
        #expect(server.statistics.testsCompleted == 1, "\(summaries)")
        #expect(server.statistics.testsFailed == 0, "\(summaries)")
        #expect(summaries.count == 1 && summaries.first?.error == nil, "\(summaries)")
        let summary = try #require(summaries.first)
        if options.contains("-R") {
            #expect(Double(summary.bytesSent) == json.bytes("sum_sent"), "\(text)")
        } else if !options.contains("--bidir") {
            #expect(Double(summary.bytesReceived) == json.bytes("sum_received"), "\(text)")
        }
        if options.contains("-n") { #expect(json.bytes("sum_sent") >= 10 * 1024 * 1024, "\(text)") }
        if options.contains("-k") {
            #expect(server.statistics.bytesSent <= 100 * 131072, "\(server.statistics)")
        }
    }

    @Test func udpIsRefusedWithAnErrorTheClientShows() throws {
        if let reason = iperf3UnavailableReason { try skip("udp", reason) }
        let (loop, streams, server, port) = try ourServer()
        defer { streams.close() }
        let (_, output, text) = try kernelClient(loop, port: port, ["-u", "-t", "1"])
        #expect(output?.error == "protocol does not exist", "\(text)")
        _ = try run(loop, seconds: 5) { server.isIdle }
        #expect(server.statistics.testsFailed == 1)
        // And the next client is served.
        let (status, next, nextText) = try kernelClient(loop, port: port, ["-t", "1"])
        #expect(status == 0 && next?.error == nil, "\(nextText)")
    }

    @Test func aSecondClientDuringATestIsDenied() throws {
        if let reason = iperf3UnavailableReason { try skip("busy", reason) }
        let (loop, streams, server, port) = try ourServer()
        defer { streams.close() }
        let first = try ChildProcess([
            "iperf3", "-c", "127.0.0.1", "-p", "\(port)", "-t", "3", "--json",
        ])
        // Once the first test runs (bytes are arriving), a second client is turned away.
        #expect(try run(loop, seconds: 10) { server.statistics.bytesReceived > 0 })
        let (_, second, text) = try kernelClient(loop, port: port, ["-t", "1"])
        #expect(second?.error == "the server is busy running a test. try again later", "\(text)")
        #expect(try run(loop, seconds: 30) { !first.isRunning })
        let firstOutput = IPerf3JSONOutput(first.output)
        #expect(first.status == 0 && firstOutput?.error == nil, "\(first.output)")
        #expect((firstOutput?.bytes("sum_received") ?? 0) > 0, "\(first.output)")
        #expect(try run(loop, seconds: 5) { server.isIdle })
        #expect(server.statistics.connectionsDenied == 1)
        #expect(server.statistics.testsCompleted == 1)
    }

    @Test(arguments: [(false, 1), (true, 1), (false, 3), (true, 2)])
    func ourClientAgainstIPerf3Server(_ reverse: Bool, _ parallel: Int) throws {
        if let reason = iperf3UnavailableReason { try skip("our client", reason) }
        let port = KernelTCP.closedPort()
        let kernelServer = try ChildProcess(["iperf3", "-s", "-1", "-p", "\(port)", "--json"])
        defer { kernelServer.stop() }
        try waitForListener(port: port)
        let loop = try EventLoop()
        let streams = SocketStreams(address: loopback, on: loop)
        defer { streams.close() }
        var parameters = IPerf3Parameters()
        parameters.duration = 1
        parameters.reverse = reverse
        parameters.parallel = parallel
        let report = try loop.run(
            until: IPerf3Client.run(
                on: streams, to: StreamEndpoint(address: loopback, port: port),
                parameters: parameters))
        let transfer = try #require(reverse ? report.download : report.upload)
        #expect((reverse ? report.upload : report.download) == nil)
        #expect(transfer.senderBytes > 0 && transfer.receiverBytes > 0, "\(report.lines)")
        #expect(transfer.receiverBytes <= transfer.senderBytes, "\(report.lines)")
        #expect(transfer.senderSeconds > 0.9 && transfer.senderSeconds < 1.5, "\(report.lines)")
        #expect(report.streams.map(\.id) == Array([1, 3, 4].prefix(parallel)), "\(report.lines)")
        #expect(report.streams.allSatisfy { $0.transfer.receiverBytes > 0 }, "\(report.lines)")
        // iperf3's own server saw a whole test, and counted what our report says it did.
        #expect(try run(loop, seconds: 10) { !kernelServer.isRunning })
        let output = IPerf3JSONOutput(kernelServer.output)
        #expect(kernelServer.status == 0 && output?.error == nil, "\(kernelServer.output)")
        let serverCount = output?.bytes(reverse ? "sum_sent" : "sum_received") ?? -1
        let reported = Double(reverse ? transfer.senderBytes : transfer.receiverBytes)
        #expect(serverCount == reported, "\(kernelServer.output)")
        #expect(report.lines.last?.contains("receiver \(transfer.receiverBytes) bytes") == true)
    }

    @Test func ourClientIsToldTheServerIsBusy() throws {
        if let reason = iperf3UnavailableReason { try skip("busy client", reason) }
        let (loop, streams, server, port) = try ourServer()
        defer { streams.close() }
        let first = try ChildProcess(["iperf3", "-c", "127.0.0.1", "-p", "\(port)", "-t", "2"])
        defer { first.stop() }
        #expect(try run(loop, seconds: 10) { server.statistics.bytesReceived > 0 })
        var parameters = IPerf3Parameters()
        parameters.duration = 1
        #expect(throws: IPerf3Error.accessDenied) {
            try loop.run(
                until: IPerf3Client.run(
                    on: streams, to: StreamEndpoint(address: loopback, port: port),
                    parameters: parameters))
        }
        // The first test is not disturbed.
        #expect(try run(loop, seconds: 30) { !first.isRunning })
        #expect(first.status == 0, "\(first.output)")
        #expect(try run(loop, seconds: 5) { server.isIdle })
        #expect(server.statistics.testsCompleted == 1)
    }

    /// A client written by hand walks the whole exchange, byte by byte: what the server
    /// sends is what iperf3's server sends, and a data connection with a wrong cookie
    /// is turned away without disturbing the test.
    @Test func aClientByHandWalksTheExchange() throws {
        let (loop, streams, server, port) = try ourServer()
        defer { streams.close() }
        let problems = try peer(loop) {
            let check = Problems()
            let cookie = rawCookie()
            let control = KernelTCP.connect(port: port)
            defer { close(control) }
            KernelTCP.sendAll(control, cookie)
            check.expect(KernelTCP.receive(control, count: 1) == [9], "no PARAM_EXCHANGE")
            KernelTCP.sendAll(
                control,
                framed(
                    #"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":2,"len":1000,"client_version":"3.12"}"#
                ))
            check.expect(KernelTCP.receive(control, count: 1) == [10], "no CREATE_STREAMS")
            let intruder = KernelTCP.connect(port: port)
            KernelTCP.sendAll(intruder, Array(repeating: UInt8(ascii: "x"), count: 36) + [0])
            let denied = KernelTCP.receiveAll(intruder)
            check.expect(denied.bytes == [0xff], "a wrong cookie got \(denied)")
            close(intruder)
            let data = [KernelTCP.connect(port: port), KernelTCP.connect(port: port)]
            defer { data.forEach { close($0) } }
            for fd in data { KernelTCP.sendAll(fd, cookie) }
            check.expect(
                KernelTCP.receive(control, count: 2) == [1, 2], "no TEST_START, TEST_RUNNING")
            KernelTCP.sendAll(data[0], Array(repeating: 1, count: 5000))
            KernelTCP.sendAll(data[1], Array(repeating: 2, count: 3000))
            usleep(200_000)
            KernelTCP.sendAll(control, [4])
            check.expect(KernelTCP.receive(control, count: 1) == [13], "no EXCHANGE_RESULTS")
            KernelTCP.sendAll(
                control,
                framed(
                    #"{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[{"id":1,"bytes":5000,"retransmits":0,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":0.2},{"id":3,"bytes":3000,"retransmits":0,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":0.2}]}"#
                ))
            let length = KernelTCP.receive(control, count: 4)
            guard length.count == 4 else { return check.list + ["no results"] }
            let count =
                Int(length[0]) << 24 | Int(length[1]) << 16 | Int(length[2]) << 8 | Int(length[3])
            let text = KernelTCP.receive(control, count: count)
            let results = try? IPerf3Results(json: JSONValue(parsing: text))
            check.expect(
                results?.streams.map(\.id) == [1, 3],
                "results \(String(decoding: text, as: UTF8.self))")
            check.expect(
                results?.streams.map(\.bytes) == [5000, 3000],
                "results \(String(decoding: text, as: UTF8.self))")
            check.expect(results?.senderHasRetransmits == -1, "sender_has_retransmits")
            check.expect(KernelTCP.receive(control, count: 1) == [14], "no DISPLAY_RESULTS")
            KernelTCP.sendAll(control, [16])
            let end = KernelTCP.receiveAll(control)
            check.expect(end.bytes.isEmpty && end.errno == 0, "after IPERF_DONE: \(end)")
            return check.list
        }
        #expect(problems.isEmpty, "\(problems)")
        #expect(try run(loop, seconds: 5) { server.isIdle })
        #expect(server.statistics.testsCompleted == 1)
        #expect(server.statistics.connectionsDenied == 1)
        #expect(server.statistics.bytesReceived == 8000)
    }

    /// Garbage, lies and silence on the control connection: each costs the server a
    /// failed test at most (a SERVER_ERROR where iperf3 would say one), and iperf3's
    /// client is served afterwards.
    @Test func hostileControlInputLeavesTheServerServing() throws {
        var limits = IPerf3ServerLimits()
        limits.controlTimeout = .seconds(1)
        let (loop, streams, server, port) = try ourServer(limits: limits)
        defer { streams.close() }
        let problems = try peer(loop, seconds: 60) {
            let check = Problems()
            /// A control connection that sent a good cookie and got PARAM_EXCHANGE.
            func opened() -> CInt {
                let fd = KernelTCP.connect(port: port)
                KernelTCP.sendAll(fd, rawCookie())
                check.expect(KernelTCP.receive(fd, count: 1) == [9], "no PARAM_EXCHANGE")
                return fd
            }
            /// Sends `bytes`, then reads to the end: what the server said before closing.
            func answer(_ fd: CInt, _ bytes: [UInt8]) -> [UInt8] {
                defer { close(fd) }
                KernelTCP.sendAll(fd, bytes)
                return KernelTCP.receiveAll(fd).bytes
            }
            // A cookie of garbage: closed without a word.
            let garbage = answer(KernelTCP.connect(port: port), Array(repeating: 0xff, count: 37))
            check.expect(garbage.isEmpty, "garbage cookie answered \(garbage)")
            // A JSON length of 4 GiB: refused as soon as it is read.
            let huge = answer(opened(), [0xff, 0xff, 0xff, 0xff])
            check.expect(huge == serverError(114), "0xffffffff answered \(huge)")
            // Not JSON.
            let notJSON = answer(opened(), framed("{nope"))
            check.expect(notJSON == serverError(114), "bad JSON answered \(notJSON)")
            // A thousand streams.
            let tooMany = answer(opened(), framed(#"{"tcp":true,"time":1,"parallel":1000}"#))
            check.expect(tooMany == serverError(6), "1000 streams answered \(tooMany)")
            // An unknown message where TEST_END would come.
            let stray = answer(opened(), framed(#"{"tcp":true,"time":1,"parallel":1}"#) + [0x63])
            check.expect(stray == [10] + serverError(110), "a stray message answered \(stray)")
            // Truncated JSON, then the end of the stream.
            do {
                let fd = opened()
                KernelTCP.sendAll(
                    fd, [0, 0, 0, 100] + Array(repeating: UInt8(ascii: " "), count: 50))
                KernelTCP.shutdownWrite(fd)
                let rest = KernelTCP.receiveAll(fd)
                check.expect(rest.bytes.isEmpty, "truncated JSON answered \(rest)")
                close(fd)
            }
            // Silence mid-exchange: another client meanwhile is denied; the silent one
            // is dropped after the control timeout.
            do {
                let start = ContinuousClock.now
                let fd = opened()
                KernelTCP.sendAll(fd, [0, 0, 0, 10, UInt8(ascii: "{")])
                let other = answer(KernelTCP.connect(port: port), rawCookie())
                check.expect(other == [0xff], "a client during the stall got \(other)")
                let rest = KernelTCP.receiveAll(fd)
                let waited = ContinuousClock.now - start
                check.expect(rest.bytes.isEmpty, "the stalled client got \(rest)")
                check.expect(
                    waited > .milliseconds(900) && waited < .seconds(5), "dropped after \(waited)")
                close(fd)
            }
            // Data connections that never show their cookie: the test is dropped.
            do {
                let fd = opened()
                KernelTCP.sendAll(fd, framed(#"{"tcp":true,"time":1,"parallel":2}"#))
                check.expect(KernelTCP.receive(fd, count: 1) == [10], "no CREATE_STREAMS")
                let silent = KernelTCP.connect(port: port)
                let rest = KernelTCP.receiveAll(fd)
                check.expect(rest.bytes.isEmpty, "a test without streams got \(rest)")
                let silentRest = KernelTCP.receiveAll(silent)
                check.expect(silentRest.bytes.isEmpty, "a silent data connection got \(silentRest)")
                close(silent)
                close(fd)
            }
            // A client that connects and goes at once.
            close(KernelTCP.connect(port: port))
            return check.list
        }
        #expect(problems.isEmpty, "\(problems)")
        // The last client's connection may not be accepted yet when the peer returns
        // (under load the server is idle before it has seen it): wait for its failure.
        #expect(try run(loop, seconds: 5) { server.isIdle && server.statistics.testsFailed >= 9 })
        #expect(server.statistics.testsFailed == 9, "\(server.statistics)")
        #expect(server.statistics.connectionsDenied == 1, "\(server.statistics)")
        if iperf3UnavailableReason == nil {
            let (status, output, text) = try kernelClient(loop, port: port, ["-t", "1"])
            #expect(status == 0 && output?.error == nil, "\(text)")
            #expect(server.statistics.testsCompleted == 1, "\(server.statistics)")
        }
    }
}

/// Waits until something listens on `port` of 127.0.0.1 (`ss`, which does not connect:
/// a one-off iperf3 server would take a probe for its test).
func waitForListener(port: UInt16) throws {
    let deadline = Deadline(seconds: 10)
    while !deadline.hasPassed {
        let listing = try OasisTestSupport.run(["ss", "-Hltn", "sport = :\(port)"])
        if listing.output.contains(":\(port)") { return }
        usleep(20_000)
    }
    Issue.record("nothing listens on \(port)")
}
