// iperf3's control protocol, as the iperf3 3.x client and server speak it (learned from
// esnet/iperf's iperf_api.c, iperf_client_api.c and iperf_server_api.c), shared by
// `IPerf3Server` and `IPerf3Client`.
//
// A test in one minute. The client opens a control connection to port 5201 and sends
// a 37-byte cookie (36 characters and a NUL) naming the test. Everything after that on
// the control connection is the server's one-byte state messages and, at two points,
// a JSON document behind a 4-byte big-endian length:
//
//   client                                  server
//   cookie ──────────────────────────────►
//          ◄────────────────────────────── PARAM_EXCHANGE (9)
//   {parameters} ────────────────────────►
//          ◄────────────────────────────── CREATE_STREAMS (10)
//   N data connections, each opening with the cookie
//          ◄────────────────────────────── TEST_START (1), TEST_RUNNING (2)
//   data for `time` seconds (the server sends instead with "reverse")
//   TEST_END (4) ────────────────────────►
//          ◄────────────────────────────── EXCHANGE_RESULTS (13)
//   {client results} ────────────────────►
//          ◄────────────────────────────── {server results}, DISPLAY_RESULTS (14)
//   IPERF_DONE (16) ─────────────────────►
//
// A server running a test answers any other control connection with ACCESS_DENIED
// (-1); one that cannot run the test asked for sends SERVER_ERROR (-2) followed by two
// 4-byte big-endian numbers, iperf3's error code and an errno.

import Glibc
import OasisLoop
import OasisNet

/// iperf3's well-known constants and the framing of its control connection.
public enum IPerf3 {
    /// The port an iperf3 server listens on unless told otherwise.
    public static let defaultPort: UInt16 = 5201
    /// The cookie's size: 36 characters and a NUL (`COOKIE_SIZE`).
    public static let cookieSize = 37
    /// iperf3's default TCP block: what one write offers (`DEFAULT_TCP_BLKSIZE`).
    public static let defaultBlockLength = 128 * 1024
    /// The largest block iperf3 accepts (`MAX_BLOCKSIZE`, 1 MiB).
    public static let maximumBlockLength = 1 << 20
    /// The most parallel streams iperf3 accepts (`MAX_STREAMS`).
    public static let maximumStreams = 128
    /// The longest test iperf3 accepts, in seconds (`MAX_TIME`).
    public static let maximumDuration = 86_400
    /// The longest omitted start iperf3 accepts, in seconds (`MAX_OMIT_TIME`).
    public static let maximumOmit = 600
    /// The version our client announces: the iperf3 whose protocol it speaks.
    public static let protocolVersion = "3.12"

    /// The characters of a cookie (`make_cookie`'s alphabet).
    static let cookieAlphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    /// A fresh cookie: 36 random characters of iperf3's alphabet and a NUL.
    public static func makeCookie() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var cookie = (0..<cookieSize - 1).map { _ in
            cookieAlphabet[Int(generator.next() % UInt64(cookieAlphabet.count))]
        }
        cookie.append(0)
        return cookie
    }

    /// Whether `cookie` looks like one an iperf3 client makes: printable ASCII, then a
    /// NUL. (iperf3 compares cookies as C strings; one without its NUL is garbage.)
    static func isPlausibleCookie(_ cookie: [UInt8]) -> Bool {
        cookie.count == cookieSize && cookie.last == 0
            && cookie.dropLast().allSatisfy { (0x21...0x7e).contains($0) }
    }

    /// `json` as it goes on the control connection: its length (4 bytes, big-endian),
    /// then the text.
    static func framed(_ json: JSONValue) -> [UInt8] {
        let text = json.serialized
        let length = UInt32(text.count)
        return [
            UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff),
            UInt8(length & 0xff),
        ] + text
    }

    /// Reads one length-prefixed JSON document from the front of `input`: nil while it
    /// is not all there (nothing consumed).
    ///
    /// - Throws: ``IPerf3Error/jsonTooLong(_:)`` as soon as the length is read, for one
    ///   longer than `limit`; ``IPerf3Error/badJSON(_:)`` for text that is not JSON.
    static func readJSON(_ input: inout StreamInput, limit: Int) throws(IPerf3Error) -> JSONValue? {
        guard input.count >= 4 else { return nil }
        let length = Int(input[0]) << 24 | Int(input[1]) << 16 | Int(input[2]) << 8 | Int(input[3])
        guard length <= limit else { throw .jsonTooLong(length) }
        guard input.count >= 4 + length else { return nil }
        let parsed = input.withUnsafeBytes { bytes in
            Result { () throws(JSONError) in
                try JSONValue(parsing: UnsafeRawBufferPointer(rebasing: bytes[4..<4 + length]))
            }
        }
        input.consume(4 + length)
        switch parsed {
        case .success(let value): return value
        case .failure(let error): throw .badJSON(error)
        }
    }

    /// A 4-byte big-endian number, as SERVER_ERROR's two follow it.
    static func bigEndian(_ value: Int32) -> [UInt8] {
        let bits = UInt32(bitPattern: value)
        return [
            UInt8(bits >> 24), UInt8(bits >> 16 & 0xff), UInt8(bits >> 8 & 0xff),
            UInt8(bits & 0xff),
        ]
    }
}

/// The one-byte messages of iperf3's control connection (`iperf_api.h`).
public enum IPerf3Message: Int8, Sendable, CustomStringConvertible {
    case testStart = 1
    case testRunning = 2
    case testEnd = 4
    case parameterExchange = 9
    case createStreams = 10
    case serverTerminate = 11
    case clientTerminate = 12
    case exchangeResults = 13
    case displayResults = 14
    case iperfStart = 15
    case iperfDone = 16
    case accessDenied = -1
    case serverError = -2

    /// The byte on the wire.
    public var byte: UInt8 { UInt8(bitPattern: rawValue) }

    public var description: String {
        switch self {
        case .testStart: return "TEST_START"
        case .testRunning: return "TEST_RUNNING"
        case .testEnd: return "TEST_END"
        case .parameterExchange: return "PARAM_EXCHANGE"
        case .createStreams: return "CREATE_STREAMS"
        case .serverTerminate: return "SERVER_TERMINATE"
        case .clientTerminate: return "CLIENT_TERMINATE"
        case .exchangeResults: return "EXCHANGE_RESULTS"
        case .displayResults: return "DISPLAY_RESULTS"
        case .iperfStart: return "IPERF_START"
        case .iperfDone: return "IPERF_DONE"
        case .accessDenied: return "ACCESS_DENIED"
        case .serverError: return "SERVER_ERROR"
        }
    }
}

/// The iperf3 error codes (`i_errno`) a server sends after SERVER_ERROR: the client
/// prints its own text for each.
public enum IPerf3ErrorCode: Int32, Sendable {
    /// "test duration too long"
    case duration = 5
    /// "number of parallel streams too large"
    case numberOfStreams = 6
    /// "block size too large"
    case blockLength = 7
    /// "bogus value for --omit"
    case omit = 12
    /// "cannot be both reverse and bidirectional"
    case reverseAndBidirectional = 25
    /// "received an unknown control message"
    case message = 110
    /// "unable to receive parameters from client"
    case receiveParameters = 114
    /// "unable to receive results"
    case receiveResults = 117
    /// "protocol does not exist": what a TCP-only server says to UDP and SCTP.
    case `protocol` = 131
}

/// Why an iperf3 exchange failed.
public enum IPerf3Error: Error, Hashable, Sendable, CustomStringConvertible {
    /// A connection failed or closed under the test.
    case stream(StreamError)
    /// The control connection ended before the test did.
    case controlClosed
    /// The server is running another test (ACCESS_DENIED).
    case accessDenied
    /// The server could not run the test (SERVER_ERROR): iperf3's error code and errno.
    case serverError(code: Int32, errno: Int32)
    /// The server ended the test (SERVER_TERMINATE).
    case serverTerminated
    /// The client ended the test (CLIENT_TERMINATE).
    case clientTerminated
    /// A control message that does not belong where it came.
    case unexpectedMessage(Int8)
    /// A cookie that is not 36 printable characters and a NUL.
    case badCookie
    /// A JSON document longer than the bound.
    case jsonTooLong(Int)
    /// A JSON document that does not parse.
    case badJSON(JSONError)
    /// Parameters or results that parse but say something impossible.
    case badDocument(String)
    /// Parameters asking for what iperf3 itself refuses, with the code a server sends.
    case refused(IPerf3ErrorCode, String)
    /// The peer did not do its part of a phase in time.
    case timedOut(String)

    public var description: String {
        switch self {
        case .stream(let error): return "\(error)"
        case .controlClosed: return "the control connection closed before the test ended"
        case .accessDenied: return "the server is busy running a test (ACCESS_DENIED)"
        case .serverError(let code, let errno):
            return "the server could not run the test: iperf3 error \(code), errno \(errno)"
        case .serverTerminated: return "the server terminated the test"
        case .clientTerminated: return "the client terminated the test"
        case .unexpectedMessage(let byte):
            let name = IPerf3Message(rawValue: byte).map { "\($0)" } ?? "unknown"
            return "unexpected control message \(byte) (\(name))"
        case .badCookie: return "the cookie is not 36 printable characters and a NUL"
        case .jsonTooLong(let length): return "a JSON document of \(length) bytes is too long"
        case .badJSON(let error): return "malformed JSON: \(error)"
        case .badDocument(let why): return why
        case .refused(_, let why): return why
        case .timedOut(let phase): return "timed out \(phase)"
        }
    }
}

/// What an iperf3 client asks for: the JSON of PARAM_EXCHANGE.
///
/// ```swift
/// var parameters = IPerf3Parameters()
/// parameters.duration = 3
/// parameters.parallel = 4
/// parameters.reverse = true
/// ```
public struct IPerf3Parameters: Hashable, Sendable {
    /// The transports iperf3 tests.
    public enum Transport: String, Hashable, Sendable {
        case tcp, udp, sctp
    }

    public var transport = Transport.tcp
    /// Seconds to run ("time"); 0 when the test ends by bytes or blocks.
    public var duration = 10
    /// Bytes after which the test ends ("num"), 0 for none.
    public var bytes: UInt64 = 0
    /// Blocks after which the test ends ("blockcount"), 0 for none.
    public var blocks: UInt64 = 0
    /// Seconds at the start not counted ("omit").
    public var omit = 0
    /// Data connections ("parallel").
    public var parallel = 1
    /// The server sends, the client receives ("reverse").
    public var reverse = false
    /// Both send at once, on `parallel` connections each way ("bidirectional").
    public var bidirectional = false
    /// Bytes offered per write ("len").
    public var blockLength = IPerf3.defaultBlockLength
    /// The target rate in bits per second ("bandwidth"), 0 for unlimited.
    public var bitrate: UInt64 = 0
    /// The client wants the server's report in the results ("get_server_output").
    public var wantsServerOutput = false
    /// Data connections send short writes at once ("nodelay", `-N`).
    public var noDelay = false
    /// The congestion control the data connections should use ("congestion", `-C`),
    /// by Linux's name.
    public var congestion: String?
    /// The client's iperf3 version, when it says.
    public var clientVersion: String?

    public init() {}

    /// The parameters a client sent. Absent members keep iperf3's defaults.
    ///
    /// - Throws: ``IPerf3Error/badDocument(_:)`` for a document that is not an object.
    public init(json: JSONValue) throws(IPerf3Error) {
        guard json.members != nil else {
            throw .badDocument("the parameters are not a JSON object")
        }
        if json["udp"] != nil { transport = .udp }
        if json["sctp"] != nil { transport = .sctp }
        if json["tcp"] != nil { transport = .tcp }
        duration = json["time"]?.integer ?? duration
        bytes = UInt64(clamping: json["num"]?.integer ?? 0)
        blocks = UInt64(clamping: json["blockcount"]?.integer ?? 0)
        omit = json["omit"]?.integer ?? 0
        parallel = json["parallel"]?.integer ?? 1
        reverse = json["reverse"] != nil
        bidirectional = json["bidirectional"] != nil
        blockLength = json["len"]?.integer ?? IPerf3.defaultBlockLength
        bitrate = UInt64(clamping: json["bandwidth"]?.integer ?? 0)
        wantsServerOutput = json["get_server_output"] != nil
        noDelay = json["nodelay"] != nil
        congestion = json["congestion"]?.string
        clientVersion = json["client_version"]?.string
    }

    /// The parameters as an iperf3 client sends them.
    public var json: JSONValue {
        var members: [JSONMember] = [
            JSONMember(transport.rawValue, true),
            JSONMember("omit", .number(Double(omit))),
            JSONMember("time", .number(Double(duration))),
            JSONMember("num", .number(Double(bytes))),
            JSONMember("blockcount", .number(Double(blocks))),
            JSONMember("parallel", .number(Double(parallel))),
        ]
        if reverse { members.append(JSONMember("reverse", true)) }
        if bidirectional { members.append(JSONMember("bidirectional", true)) }
        members.append(JSONMember("len", .number(Double(blockLength))))
        if bitrate > 0 { members.append(JSONMember("bandwidth", .number(Double(bitrate)))) }
        members.append(JSONMember("pacing_timer", 1000))
        if noDelay { members.append(JSONMember("nodelay", true)) }
        if let congestion { members.append(JSONMember("congestion", .string(congestion))) }
        if wantsServerOutput { members.append(JSONMember("get_server_output", 1)) }
        members.append(
            JSONMember("client_version", .string(clientVersion ?? IPerf3.protocolVersion)))
        return .object(members)
    }

    /// Checks what iperf3's own client checks before it sends (and a server must not
    /// trust): a refusal carries the code the server sends back.
    public func validate(maximumStreams: Int = IPerf3.maximumStreams) throws(IPerf3Error) {
        guard transport == .tcp else {
            throw .refused(.protocol, "only TCP is served, not \(transport.rawValue.uppercased())")
        }
        guard (1...maximumStreams).contains(parallel) else {
            throw .refused(
                .numberOfStreams, "\(parallel) parallel streams (at most \(maximumStreams))")
        }
        guard (1...IPerf3.maximumBlockLength).contains(blockLength) else {
            throw .refused(.blockLength, "a block of \(blockLength) bytes (at most 1 MiB)")
        }
        guard (0...IPerf3.maximumDuration).contains(duration) else {
            throw .refused(.duration, "a test of \(duration) s (at most \(IPerf3.maximumDuration))")
        }
        guard (0...IPerf3.maximumOmit).contains(omit) else {
            throw .refused(.omit, "\(omit) s omitted (at most \(IPerf3.maximumOmit))")
        }
        guard !(reverse && bidirectional) else {
            throw .refused(.reverseAndBidirectional, "both reverse and bidirectional")
        }
    }
}

/// One side's results, as EXCHANGE_RESULTS carries them.
public struct IPerf3Results: Hashable, Sendable {
    /// One data connection's count.
    public struct Stream: Hashable, Sendable {
        /// iperf3's stream number: 1, then 3, 4, 5, ... (as both sides number them).
        public var id: Int
        /// Bytes this side sent (on a sending stream) or received.
        public var bytes: UInt64
        /// Retransmissions, or -1 when not known.
        public var retransmits: Int
        /// Seconds from the stream's start to its end.
        public var seconds: Double

        public init(id: Int, bytes: UInt64, retransmits: Int = -1, seconds: Double) {
            self.id = id
            self.bytes = bytes
            self.retransmits = retransmits
            self.seconds = seconds
        }
    }

    /// CPU use over the test, percent: total, user, system.
    public var cpuTotal = 0.0
    public var cpuUser = 0.0
    public var cpuSystem = 0.0
    /// 1 when the sender reports retransmissions, 0 when it cannot, -1 when this side
    /// only received.
    public var senderHasRetransmits = -1
    /// The congestion control in use, when the sender says.
    public var congestionUsed: String?
    public var streams: [Stream] = []
    /// The server's report, as text, when the client asked for it.
    public var serverOutputText: String?

    public init() {}

    /// Results as the other side sent them.
    ///
    /// - Throws: ``IPerf3Error/badDocument(_:)`` when a member iperf3 requires is missing.
    public init(json: JSONValue) throws(IPerf3Error) {
        guard let total = json["cpu_util_total"]?.number, let user = json["cpu_util_user"]?.number,
            let system = json["cpu_util_system"]?.number,
            let retransmits = Self.signed(json["sender_has_retransmits"])
        else { throw .badDocument("the results lack the CPU use or sender_has_retransmits") }
        (cpuTotal, cpuUser, cpuSystem) = (total, user, system)
        senderHasRetransmits = retransmits
        congestionUsed = json["congestion_used"]?.string
        serverOutputText = json["server_output_text"]?.string
        guard let streams = json["streams"]?.elements else {
            throw .badDocument("the results have no streams")
        }
        for stream in streams {
            guard let id = stream["id"]?.integer, let bytes = stream["bytes"]?.number,
                let retransmits = Self.signed(stream["retransmits"])
            else { throw .badDocument("a stream's results lack its id, bytes or retransmits") }
            let seconds = (stream["end_time"]?.number ?? 0) - (stream["start_time"]?.number ?? 0)
            self.streams.append(
                Stream(
                    id: id, bytes: UInt64(clamping: Int64(exactly: bytes.rounded()) ?? 0),
                    retransmits: retransmits, seconds: seconds))
        }
    }

    /// A count that may be -1: iperf3 3.12's client writes its -1 as 2^64 - 1 (an
    /// unsigned print of it), which reads back as -1 here.
    private static func signed(_ value: JSONValue?) -> Int? {
        guard let number = value?.number else { return nil }
        return number >= 9.2e18 ? -1 : value?.integer
    }

    /// The results as iperf3 sends them.
    public var json: JSONValue {
        var members: [JSONMember] = [
            JSONMember("cpu_util_total", .number(cpuTotal)),
            JSONMember("cpu_util_user", .number(cpuUser)),
            JSONMember("cpu_util_system", .number(cpuSystem)),
            JSONMember("sender_has_retransmits", .number(Double(senderHasRetransmits))),
        ]
        if let congestionUsed {
            members.append(JSONMember("congestion_used", .string(congestionUsed)))
        }
        if let serverOutputText {
            members.append(JSONMember("server_output_text", .string(serverOutputText)))
        }
        let streams: [JSONValue] = streams.map { stream in
            .object([
                JSONMember("id", .number(Double(stream.id))),
                JSONMember("bytes", .number(Double(stream.bytes))),
                JSONMember("retransmits", .number(Double(stream.retransmits))),
                JSONMember("jitter", 0),
                JSONMember("errors", 0),
                JSONMember("packets", 0),
                JSONMember("start_time", 0),
                JSONMember("end_time", .number(stream.seconds)),
            ])
        }
        members.append(JSONMember("streams", .array(streams)))
        return .object(members)
    }
}

extension IPerf3Parameters {
    /// Sets what the parameters ask of a data connection: no-delay, and the congestion
    /// control when it is one the Stream surface offers ("reno" or "newreno", "cubic";
    /// another is left at the default, as iperf3 goes on when the kernel lacks one).
    func configure(_ connection: some StreamConnection) {
        if noDelay { connection.noDelay = true }
        switch congestion {
        case "reno", "newreno": connection.congestionControl = .newReno
        case "cubic": connection.congestionControl = .cubic
        default: break
        }
    }
}

/// iperf3's stream numbers: the first stream is 1, each later one its position plus
/// one (1, 3, 4, 5, ...: `iperf_add_stream`'s quirk, which both sides share).
func iperf3StreamID(index: Int) -> Int { index == 0 ? 1 : index + 2 }

/// The CPU this process used since a starting point, as iperf3's `cpu_util` reports it.
struct CPUClock {
    let wall: Duration
    let user: Duration
    let system: Duration

    /// Now, by `loop`'s clock and the process's resource usage.
    init(loop: EventLoop) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        wall = loop.now
        user = .seconds(usage.ru_utime.tv_sec) + .microseconds(usage.ru_utime.tv_usec)
        system = .seconds(usage.ru_stime.tv_sec) + .microseconds(usage.ru_stime.tv_usec)
    }

    /// Percent of the wall time spent on the CPU since `start`: total, user, system.
    func percent(since start: CPUClock) -> (total: Double, user: Double, system: Double) {
        let wall = (self.wall - start.wall).seconds
        guard wall > 0 else { return (0, 0, 0) }
        let user = (self.user - start.user).seconds / wall * 100
        let system = (self.system - start.system).seconds / wall * 100
        return (user + system, user, system)
    }
}

extension Duration {
    /// The duration in seconds, as a double.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
