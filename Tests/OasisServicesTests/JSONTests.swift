// The JSON reader and writer, and iperf3's documents read and written with them: the
// documents are the ones iperf3 3.12 sent (printed by `iperf3 --debug`).

import OasisServices
import Testing

/// What iperf3 3.12's client sent for `iperf3 -c HOST -t 1 -P 2 -R`.
let iperf3Parameters = #"""
    {"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":2,"reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"}
    """#

/// What that client sent as its results (it received; it writes -1 as 2^64 - 1).
let iperf3ClientResults = #"""
    {"cpu_util_total":55.17193013171677,"cpu_util_user":1.8877646944133026,"cpu_util_system":53.28416543730348,"sender_has_retransmits":1.8446744073709552e+19,"congestion_used":"bbr","streams":[{"id":1,"bytes":552206336,"retransmits":1.8446744073709552e+19,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1.00247},{"id":3,"bytes":535953408,"retransmits":1.8446744073709552e+19,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1.002474}]}
    """#

private func parse(_ text: String) throws(JSONError) -> JSONValue {
    try JSONValue(parsing: Array(text.utf8))
}

private func parseError(_ text: String) -> JSONError? {
    do {
        _ = try parse(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct JSONTests {
    @Test func readsEveryKindOfValue() throws {
        let value = try parse(
            #" { "a" : [1, -2.5, 3e2, 0, -0.125E-1, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {} , "c":[]} "#
        )
        #expect(
            value
                == .object([
                    JSONMember(
                        "a",
                        .array([
                            1, -2.5, 300, 0, -0.0125, true, false, .null,
                            .string("x\"\\/\u{8}\u{c}\n\r\té😀"),
                        ])),
                    JSONMember("b", .object([])),
                    JSONMember("c", .array([])),
                ]))
        #expect(value["b"] == .object([]))
        #expect(value["missing"] == nil)
    }

    @Test func writesCompactTextThatReadsBack() throws {
        let value: JSONValue = .object([
            JSONMember("n", 3), JSONMember("f", 1.5), JSONMember("big", 1e300),
            JSONMember("s", .string("quote\" back\\ nl\n ctl\u{1} é")),
            JSONMember("a", .array([true, .null, -7])),
        ])
        #expect(
            value.text
                == #"{"n":3,"f":1.5,"big":1e+300,"s":"quote\" back\\ nl\n ctl\u0001 é","a":[true,null,-7]}"#
        )
        #expect(try JSONValue(parsing: value.serialized) == value)
        #expect(JSONValue.number(.nan).text == "null")
    }

    @Test func refusesWhatTheGrammarDoesNot() {
        #expect(parseError("") == .truncated)
        #expect(parseError("{\"a\":") == .truncated)
        #expect(parseError("[1,2") == .truncated)
        #expect(parseError("\"open") == .truncated)
        #expect(parseError("{a:1}") == .unexpected(byte: UInt8(ascii: "a"), at: 1))
        #expect(parseError("[1,]") == .unexpected(byte: UInt8(ascii: "]"), at: 3))
        #expect(parseError("01") == .trailingBytes(at: 1))
        #expect(parseError("1 2") == .trailingBytes(at: 2))
        #expect(parseError("-") == .truncated)
        #expect(parseError("1.") == .badNumber(at: 0))
        #expect(parseError("1e") == .badNumber(at: 0))
        #expect(parseError("1e999") == .badNumber(at: 0))
        #expect(parseError("tru") == .truncated)
        #expect(parseError("nul!") == .unexpected(byte: UInt8(ascii: "!"), at: 3))
        #expect(parseError("\"\\x\"") == .badEscape(at: 1))
        #expect(parseError("\"\\ud800\"") == .badEscape(at: 1))
        #expect(parseError("\"\\udc00\"") == .badEscape(at: 1))
        #expect(parseError("\"\\u12g4\"") == .badEscape(at: 1))
        #expect(parseError("\"tab\there\"") == .unexpected(byte: 9, at: 4))
    }

    @Test func boundsItsDepth() throws {
        let deepest = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(parseError(deepest) == nil)
        let deeper = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(parseError(deeper) == .tooDeep(at: 32))
        // A hundred thousand brackets: refused at the bound, not a deep recursion.
        #expect(parseError(String(repeating: "[", count: 100_000)) == .tooDeep(at: 32))
    }

    @Test func integersAsCJSONReadsThem() throws {
        #expect(try parse("3.9").integer == 3)
        #expect(try parse("-3.9").integer == -3)
        #expect(try parse("1e30").integer == Int.max)
        #expect(try parse("-1e30").integer == Int.min)
        #expect(try parse("\"3\"").integer == nil)
    }

    /// Every byte string of up to three bytes from a small alphabet: read or refused,
    /// never a trap.
    @Test func shortGarbageIsReadOrRefused() {
        let alphabet = Array("{}[]\":,.-+eE0123\\u tfn".utf8)
        var count = 0
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    _ = try? JSONValue(parsing: [a, b, c])
                    count += 1
                }
            }
        }
        #expect(count == alphabet.count * alphabet.count * alphabet.count)
    }
}

@Suite struct IPerf3DocumentTests {
    @Test func readsTheParametersIPerf3Sends() throws {
        let parameters = try IPerf3Parameters(json: parse(iperf3Parameters))
        #expect(parameters.transport == .tcp)
        #expect(parameters.duration == 1)
        #expect(parameters.parallel == 2)
        #expect(parameters.reverse)
        #expect(!parameters.bidirectional)
        #expect(parameters.blockLength == 131072)
        #expect(parameters.clientVersion == "3.12")
        try parameters.validate()
        // And writes them as iperf3 does.
        #expect(parameters.json.text == iperf3Parameters)
    }

    @Test func refusesWhatIPerf3Refuses() throws {
        func refusal(_ text: String) throws -> IPerf3ErrorCode? {
            do {
                try IPerf3Parameters(json: parse(text)).validate()
                return nil
            } catch {
                guard case .refused(let code, _)? = error as? IPerf3Error else { return nil }
                return code
            }
        }
        #expect(try refusal(#"{"udp":true,"time":1}"#) == .protocol)
        #expect(try refusal(#"{"sctp":true}"#) == .protocol)
        #expect(try refusal(#"{"tcp":true,"parallel":129}"#) == .numberOfStreams)
        #expect(try refusal(#"{"tcp":true,"parallel":0}"#) == .numberOfStreams)
        #expect(try refusal(#"{"tcp":true,"len":1048577}"#) == .blockLength)
        #expect(try refusal(#"{"tcp":true,"len":0}"#) == .blockLength)
        #expect(try refusal(#"{"tcp":true,"time":86401}"#) == .duration)
        #expect(try refusal(#"{"tcp":true,"time":-1}"#) == .duration)
        #expect(try refusal(#"{"tcp":true,"omit":601}"#) == .omit)
        #expect(
            try refusal(#"{"tcp":true,"reverse":true,"bidirectional":true}"#)
                == .reverseAndBidirectional)
        #expect(try refusal(#"{"tcp":true,"parallel":128,"len":1048576,"time":86400}"#) == nil)
        #expect(throws: IPerf3Error.self) { try IPerf3Parameters(json: parse("[1]")) }
    }

    @Test func readsTheResultsIPerf3Sends() throws {
        let results = try IPerf3Results(json: parse(iperf3ClientResults))
        #expect(results.senderHasRetransmits == -1)
        #expect(results.congestionUsed == "bbr")
        #expect(results.streams.map(\.id) == [1, 3])
        #expect(results.streams.map(\.bytes) == [552_206_336, 535_953_408])
        #expect(results.streams.map(\.retransmits) == [-1, -1])
        #expect(abs(results.streams[0].seconds - 1.00247) < 1e-9)
        #expect(abs(results.cpuTotal - 55.17193013171677) < 1e-12)
        // What iperf3's get_results requires.
        #expect(throws: IPerf3Error.self) {
            try IPerf3Results(json: parse(#"{"cpu_util_total":1,"streams":[]}"#))
        }
        #expect(throws: IPerf3Error.self) {
            try IPerf3Results(
                json: parse(
                    #"{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[{"id":1}]}"#
                ))
        }
    }

    @Test func writesResultsThatReadBack() throws {
        var results = IPerf3Results()
        results.cpuTotal = 12.5
        results.senderHasRetransmits = 0
        results.streams = [
            IPerf3Results.Stream(id: 1, bytes: 1 << 40, seconds: 3.001),
            IPerf3Results.Stream(id: 3, bytes: 7, seconds: 2.5),
        ]
        let text = results.json.text
        #expect(text.contains(#"{"id":1,"bytes":1099511627776,"retransmits":-1,"jitter":0,"#))
        #expect(try IPerf3Results(json: parse(text)) == results)
    }

    @Test func cookiesAreIPerf3s() {
        let cookie = IPerf3.makeCookie()
        #expect(cookie.count == 37)
        #expect(cookie.last == 0)
        #expect(
            cookie.dropLast().allSatisfy {
                Array("abcdefghijklmnopqrstuvwxyz234567".utf8).contains($0)
            })
        #expect(IPerf3.makeCookie() != cookie)
    }

    @Test func reportNumbersAsIPerf3PrintsThem() {
        var report = IPerf3Report(
            server: .init(address: .init(192, 0, 2, 1), port: 5201), parameters: IPerf3Parameters())
        report.upload = IPerf3Transfer(
            senderBytes: 1_181_116_006, senderSeconds: 3, receiverBytes: 1_180_000_000,
            receiverSeconds: 3.04)
        report.streams = [IPerf3Report.Stream(id: 1, clientSends: true, transfer: report.upload!)]
        let lines = report.lines
        #expect(
            lines.contains {
                $0.hasPrefix("[  1]   0.00-3.00   sec") && $0.contains("1.10 GBytes")
                    && $0.contains("3.15 Gbits/sec") && $0.hasSuffix("sender")
            }, "\(lines)")
        #expect(lines.contains { $0.contains("0.00-3.04") && $0.hasSuffix("receiver") }, "\(lines)")
        #expect(
            lines.last?.contains("sender 1181116006 bytes in 3.00 s (3.15 Gbit/s)") == true,
            "\(lines)")
    }
}
