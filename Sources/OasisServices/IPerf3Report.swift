// What an iperf3 test measured, seen from the client: its own counts beside the
// server's, and the summary iperf3 prints at the end of a test.

import OasisNet

/// Bytes one way: what the sender sent and the receiver received, each over its own
/// time (as iperf3 reports a "sender" and a "receiver" line).
public struct IPerf3Transfer: Hashable, Sendable {
    public var senderBytes: UInt64 = 0
    public var senderSeconds = 0.0
    public var receiverBytes: UInt64 = 0
    public var receiverSeconds = 0.0

    public init(
        senderBytes: UInt64 = 0, senderSeconds: Double = 0, receiverBytes: UInt64 = 0,
        receiverSeconds: Double = 0
    ) {
        self.senderBytes = senderBytes
        self.senderSeconds = senderSeconds
        self.receiverBytes = receiverBytes
        self.receiverSeconds = receiverSeconds
    }

    /// The sender's rate, bits per second.
    public var senderBitsPerSecond: Double { IPerf3Report.rate(senderBytes, senderSeconds) }
    /// The receiver's rate, bits per second.
    public var receiverBitsPerSecond: Double {
        IPerf3Report.rate(receiverBytes, receiverSeconds)
    }

    /// Adds a stream's counts: bytes add up, the time is the longest.
    mutating func add(_ other: IPerf3Transfer) {
        senderBytes &+= other.senderBytes
        receiverBytes &+= other.receiverBytes
        senderSeconds = max(senderSeconds, other.senderSeconds)
        receiverSeconds = max(receiverSeconds, other.receiverSeconds)
    }
}

/// The outcome of an ``IPerf3Client`` test.
///
/// ```swift
/// let report = try loop.run(until: IPerf3Client.run(on: stack, to: server, parameters: p))
/// for line in report.lines { Console.log(line) }
/// let gbps = report.upload!.receiverBitsPerSecond / 1e9
/// ```
public struct IPerf3Report: Hashable, Sendable {
    /// One data connection.
    public struct Stream: Hashable, Sendable {
        /// iperf3's stream number (1, 3, 4, ...).
        public var id: Int
        /// True when the client sent on it (a normal test; half of a bidirectional one).
        public var clientSends: Bool
        public var transfer: IPerf3Transfer

        public init(id: Int, clientSends: Bool, transfer: IPerf3Transfer) {
            self.id = id
            self.clientSends = clientSends
            self.transfer = transfer
        }
    }

    /// The server tested against.
    public var server: StreamEndpoint
    public var parameters: IPerf3Parameters
    public var streams: [Stream] = []
    /// Client to server: a normal test, or one half of a bidirectional one.
    public var upload: IPerf3Transfer?
    /// Server to client: a reverse test, or one half of a bidirectional one.
    public var download: IPerf3Transfer?
    /// CPU use over the test, percent, here and at the server (total, user, system).
    public var localCPU = 0.0
    public var remoteCPU = 0.0
    /// The server's own report, when it was asked for and sent.
    public var serverOutput: String?

    /// A report of a test with `server`, with nothing counted yet.
    public init(server: StreamEndpoint, parameters: IPerf3Parameters) {
        self.server = server
        self.parameters = parameters
    }

    /// The summary iperf3 prints at the end of a test: a line per stream and
    /// direction, sums when there are several streams, then one line with the bytes,
    /// seconds and Gbit/s of each direction.
    public var lines: [String] {
        var lines = ["[ ID] Interval           Transfer     Bitrate"]
        func add(_ label: String, _ transfer: IPerf3Transfer, tag: String) {
            lines.append(
                Self.line(label, tag, transfer.senderBytes, transfer.senderSeconds) + "  sender")
            lines.append(
                Self.line(label, tag, transfer.receiverBytes, transfer.receiverSeconds)
                    + "  receiver")
        }
        let bidirectional = upload != nil && download != nil
        for stream in streams {
            let tag = bidirectional ? (stream.clientSends ? "[TX-C]" : "[RX-C]") : ""
            add(Self.padded(String(stream.id), 3), stream.transfer, tag: tag)
        }
        if streams.count > (bidirectional ? 2 : 1) {
            if let upload { add("SUM", upload, tag: bidirectional ? "[TX-C]" : "") }
            if let download { add("SUM", download, tag: bidirectional ? "[RX-C]" : "") }
        }
        lines.append(
            "CPU Utilization: local \(Self.fixed(localCPU, 1))%, remote \(Self.fixed(remoteCPU, 1))%"
        )
        var summary = "iperf3 with \(server): \(parameters.parallel) stream"
        summary += parameters.parallel == 1 ? "" : "s"
        if let upload { summary += "; client to server: " + Self.summary(upload) }
        if let download { summary += "; server to client: " + Self.summary(download) }
        lines.append(summary)
        return lines
    }

    private static func summary(_ transfer: IPerf3Transfer) -> String {
        "sender \(transfer.senderBytes) bytes in \(fixed(transfer.senderSeconds, 2)) s "
            + "(\(gigabits(transfer.senderBytes, transfer.senderSeconds)) Gbit/s), "
            + "receiver \(transfer.receiverBytes) bytes in \(fixed(transfer.receiverSeconds, 2)) s "
            + "(\(gigabits(transfer.receiverBytes, transfer.receiverSeconds)) Gbit/s)"
    }

    /// `[  5]   0.00-3.00   sec  1.10 GBytes  3.15 Gbits/sec`, as iperf3 lays it out.
    private static func line(_ label: String, _ tag: String, _ bytes: UInt64, _ seconds: Double)
        -> String
    {
        "[\(label)]\(tag)   0.00-\(padded(fixed(seconds, 2), -6)) sec  "
            + "\(padded(bytesText(bytes), 11))  \(padded(rateText(rate(bytes, seconds)), 14))"
    }

    // MARK: Numbers as iperf3 prints them

    /// Bits per second for `bytes` over `seconds` (0 for no time).
    static func rate(_ bytes: UInt64, _ seconds: Double) -> Double {
        seconds > 0 ? Double(bytes) * 8 / seconds : 0
    }

    /// Gbit/s with two decimals.
    static func gigabits(_ bytes: UInt64, _ seconds: Double) -> String {
        fixed(rate(bytes, seconds) / 1e9, 2)
    }

    /// `value` with `digits` decimals (no Foundation formatting here).
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return "\(value)" }
        let units = UInt64(scaled)
        let whole = units / UInt64(scale)
        var text = (value < 0 && units > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let fraction = String(units % UInt64(scale))
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return text
    }

    /// Bytes in binary units, three significant figures: `1.10 GBytes`, `942 MBytes`.
    static func bytesText(_ bytes: UInt64) -> String {
        scaled(Double(bytes), base: 1024, unit: "Bytes")
    }

    /// Bits per second in decimal units: `3.15 Gbits/sec`.
    static func rateText(_ bitsPerSecond: Double) -> String {
        scaled(bitsPerSecond, base: 1000, unit: "bits") + "/sec"
    }

    private static func scaled(_ value: Double, base: Double, unit: String) -> String {
        var value = value
        var prefix = ""
        for next in ["K", "M", "G", "T"] where value >= base {
            value /= base
            prefix = next
        }
        let digits = value < 9.995 ? 2 : value < 99.95 ? 1 : 0
        return "\(fixed(value, digits)) \(prefix)\(unit)"
    }

    /// Pads to `width` characters: on the left (right-aligned), or on the right for a
    /// negative width.
    static func padded(_ text: String, _ width: Int) -> String {
        let missing = abs(width) - text.count
        guard missing > 0 else { return text }
        let spaces = String(repeating: " ", count: missing)
        return width < 0 ? text + spaces : spaces + text
    }
}
