import CPcap
import SystemPackage

/// libpcap itself.
public enum Pcap {
    /// `pcap_lib_version()`, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    public static var libraryVersion: String { String(cString: pcap_lib_version()) }
}

/// What went wrong with a pcap handle or file, with libpcap's own error text.
public enum PcapError: Error, Equatable, CustomStringConvertible {
    /// pcap_create or pcap_open_offline refused; `message` is libpcap's errbuf.
    case openFailed(source: String, message: String)
    /// pcap_activate failed: `status` is pcap_statustostr of its code (permission
    /// denied, no such device, ...), `message` the handle's error text.
    case activateFailed(interface: String, status: String, message: String)
    /// A setting was refused (snaplen, promiscuous, immediate mode, direction,
    /// nonblocking, filter installation); `operation` names the libpcap call.
    case operationFailed(operation: String, source: String, message: String)
    /// pcap_compile could not compile the BPF expression.
    case invalidFilter(expression: String, message: String)
    /// pcap_next_ex failed.
    case readFailed(source: String, message: String)
    /// pcap_inject failed or sent fewer bytes than the frame holds.
    case injectFailed(source: String, message: String)
    /// A pcap file could not be created or written.
    case fileWriteFailed(path: String, message: String)
    /// The handle or writer was used after `close()`.
    case closed(source: String)

    public var description: String {
        switch self {
        case .openFailed(let source, let message):
            return "cannot open pcap source '\(source)': \(message)"
        case .activateFailed(let interface, let status, let message):
            return "cannot activate capture on '\(interface)': \(status)"
                + (message.isEmpty ? "" : " (\(message))")
        case .operationFailed(let operation, let source, let message):
            return "\(operation) on '\(source)' failed: \(message)"
        case .invalidFilter(let expression, let message):
            return "invalid BPF filter '\(expression)': \(message)"
        case .readFailed(let source, let message):
            return "reading from '\(source)' failed: \(message)"
        case .injectFailed(let source, let message):
            return "injecting on '\(source)' failed: \(message)"
        case .fileWriteFailed(let path, let message):
            return "writing pcap file '\(path)' failed: \(message)"
        case .closed(let source):
            return "pcap handle '\(source)' is closed"
        }
    }
}

/// A capture timestamp with microsecond resolution, as classic pcap files store it.
public struct PcapTimestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Seconds since the Unix epoch.
    public var seconds: Int64
    /// Microseconds within the second, 0..<1_000_000.
    public var microseconds: Int32

    public init(seconds: Int64, microseconds: Int32) {
        self.seconds = seconds
        self.microseconds = microseconds
    }

    public static func < (lhs: PcapTimestamp, rhs: PcapTimestamp) -> Bool {
        (lhs.seconds, lhs.microseconds) < (rhs.seconds, rhs.microseconds)
    }

    public var description: String {
        let fraction = String(microseconds)
        return "\(seconds)." + String(repeating: "0", count: max(0, 6 - fraction.count)) + fraction
    }
}

/// One captured frame, borrowed from libpcap.
///
/// `bytes` points into libpcap's own buffer: it is valid only until the next call to
/// ``PcapHandle/next()`` or ``PcapHandle/close()`` on the handle that produced it.
/// Copy what must outlive that (`Array(packet.bytes)`).
public struct PcapPacket {
    /// When the frame was captured.
    public let timestamp: PcapTimestamp
    /// The captured bytes (at most the snapshot length).
    public let bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire, which may exceed `bytes.count`.
    public let originalLength: Int
}

/// Counters from pcap_stats for a live capture.
public struct PcapStatistics: Hashable, Sendable {
    /// Frames the capture received (before the filter, on Linux).
    public var received: UInt32
    /// Frames dropped because the capture buffer was full.
    public var droppedByBuffer: UInt32
    /// Frames the interface or its driver dropped, where known.
    public var droppedByInterface: UInt32
}

/// A libpcap handle: a live capture on an interface, or a pcap file being read.
///
/// A live handle is set up the way the device layer needs it: immediate mode (no
/// batching delay), incoming frames only (the frames this handle injects are not
/// captured back), nonblocking, with a selectable descriptor for the scheduler.
///
/// Ownership: call ``close()``; `deinit` closes a handle still open, as a safety net
/// only. Not `Sendable`: a `pcap_t` belongs to one thread.
///
/// ```swift
/// let capture = try PcapHandle.live(interface: "veth0")
/// try capture.setFilter("arp")
/// while case .packet(let packet) = try capture.next() { print(packet.originalLength) }
/// ```
public final class PcapHandle {
    /// Which frames a live handle sees (pcap_setdirection).
    public enum Direction: Sendable {
        /// Frames received by the interface only: not those sent on it, ours included.
        case incoming
        /// Frames sent on the interface only.
        case outgoing
        /// Both.
        case both

        var pcapValue: pcap_direction_t {
            switch self {
            case .incoming: PCAP_D_IN
            case .outgoing: PCAP_D_OUT
            case .both: PCAP_D_INOUT
            }
        }
    }

    /// What ``next()`` found.
    public enum Next {
        /// A frame, borrowed until the next call (see ``PcapPacket``).
        case packet(PcapPacket)
        /// Nothing available now: a nonblocking live handle with nothing queued, or
        /// the read timeout expired. Wait on ``selectableFileDescriptor``.
        case noPacket
        /// An offline handle has read its whole file.
        case endOfFile
    }

    /// The interface name or file path this handle reads.
    public let source: String
    private var handle: OpaquePointer?

    private init(source: String, handle: OpaquePointer) {
        self.source = source
        self.handle = handle
    }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { pcap_close(handle) }
    }

    /// Opens a live capture on `interface` (needs CAP_NET_RAW).
    ///
    /// - Parameters:
    ///   - snapshotLength: bytes kept of each frame.
    ///   - promiscuous: also capture frames not addressed to the interface.
    ///   - immediate: deliver each frame as it arrives rather than in batches.
    ///   - direction: which frames to see; `.incoming` hides what this handle sends.
    ///   - nonBlocking: ``next()`` returns `.noPacket` instead of waiting.
    ///   - bufferSize: the kernel ring's size in bytes (libpcap's default, 2 MiB, when
    ///     nil). The ring is cut in slots of the snapshot length (rounded up), so a long
    ///     snapshot on an interface with offloads leaves room for few frames.
    public static func live(
        interface: String, snapshotLength: Int = 65535, promiscuous: Bool = true,
        immediate: Bool = true, direction: Direction = .incoming, nonBlocking: Bool = true,
        bufferSize: Int? = nil
    ) throws(PcapError) -> PcapHandle {
        var errorText = ErrorBuffer()
        guard let pcap = errorText.withPointer({ pcap_create(interface, $0) }) else {
            throw .openFailed(source: interface, message: errorText.string)
        }
        // From here the handle owns pcap: its deinit closes it if setup throws.
        let capture = PcapHandle(source: interface, handle: pcap)
        try capture.check(
            pcap_set_snaplen(pcap, CInt(clamping: snapshotLength)), "pcap_set_snaplen")
        try capture.check(pcap_set_promisc(pcap, promiscuous ? 1 : 0), "pcap_set_promisc")
        try capture.check(
            pcap_set_immediate_mode(pcap, immediate ? 1 : 0), "pcap_set_immediate_mode")
        if let bufferSize {
            try capture.check(
                pcap_set_buffer_size(pcap, CInt(clamping: bufferSize)), "pcap_set_buffer_size")
        }

        let status = pcap_activate(pcap)
        // Positive values are warnings (e.g. promiscuous mode not supported): the
        // handle works, so they are not errors.
        if status < 0 {
            throw .activateFailed(
                interface: interface, status: String(cString: pcap_statustostr(status)),
                message: capture.lastError)
        }
        try capture.check(pcap_setdirection(pcap, direction.pcapValue), "pcap_setdirection")
        if nonBlocking {
            let result = errorText.withPointer { pcap_setnonblock(pcap, 1, $0) }
            guard result == 0 else {
                throw .operationFailed(
                    operation: "pcap_setnonblock", source: interface, message: errorText.string)
            }
        }
        return capture
    }

    /// Opens a pcap (or pcapng) file for reading.
    public static func offline(path: String) throws(PcapError) -> PcapHandle {
        var errorText = ErrorBuffer()
        guard let pcap = errorText.withPointer({ pcap_open_offline(path, $0) }) else {
            throw .openFailed(source: path, message: errorText.string)
        }
        return PcapHandle(source: path, handle: pcap)
    }

    /// A descriptor that becomes readable when ``next()`` may have a frame, or nil if
    /// libpcap has none for this handle. Owned by the handle: do not close it.
    public var selectableFileDescriptor: FileDescriptor? {
        get throws(PcapError) {
            let descriptor = pcap_get_selectable_fd(try openHandle())
            return descriptor >= 0 ? FileDescriptor(rawValue: descriptor) : nil
        }
    }

    /// The link-layer header type (DLT_EN10MB is 1).
    public var linkType: Int {
        get throws(PcapError) { Int(pcap_datalink(try openHandle())) }
    }

    /// The snapshot length in effect.
    public var snapshotLength: Int {
        get throws(PcapError) { Int(pcap_snapshot(try openHandle())) }
    }

    /// Compiles `expression` (tcpdump's filter language) and installs it, so ``next()``
    /// returns only matching frames.
    public func setFilter(_ expression: String, optimize: Bool = true) throws(PcapError) {
        let pcap = try openHandle()
        var program = bpf_program()
        guard
            pcap_compile(pcap, &program, expression, optimize ? 1 : 0, PCAP_NETMASK_UNKNOWN)
                == 0
        else {
            throw .invalidFilter(expression: expression, message: lastError)
        }
        defer { pcap_freecode(&program) }
        try check(pcap_setfilter(pcap, &program), "pcap_setfilter")
    }

    /// The next frame, without copying it (pcap_next_ex).
    public func next() throws(PcapError) -> Next {
        let pcap = try openHandle()
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(pcap, &header, &data) {
        case 1:
            guard let header, let data else { return .noPacket }
            let info = header.pointee
            return .packet(
                PcapPacket(
                    timestamp: PcapTimestamp(
                        seconds: Int64(info.ts.tv_sec), microseconds: Int32(info.ts.tv_usec)),
                    bytes: UnsafeRawBufferPointer(start: data, count: Int(info.caplen)),
                    originalLength: Int(info.len)))
        case 0:
            return .noPacket
        case PCAP_ERROR_BREAK:
            return .endOfFile
        default:
            throw .readFailed(source: source, message: lastError)
        }
    }

    /// Sends one whole frame on the interface (pcap_inject).
    public func inject(_ frame: UnsafeRawBufferPointer) throws(PcapError) {
        let pcap = try openHandle()
        let sent = pcap_inject(pcap, frame.baseAddress, frame.count)
        guard sent == frame.count else {
            throw .injectFailed(
                source: source,
                message: sent < 0 ? lastError : "sent \(sent) of \(frame.count) bytes")
        }
    }

    /// Sends one whole frame given as bytes.
    public func inject(_ frame: [UInt8]) throws(PcapError) {
        let pcap = try openHandle()
        let sent = frame.withUnsafeBytes { pcap_inject(pcap, $0.baseAddress, $0.count) }
        guard sent == frame.count else {
            throw .injectFailed(
                source: source,
                message: sent < 0 ? lastError : "sent \(sent) of \(frame.count) bytes")
        }
    }

    /// Capture counters (live handles only).
    public func statistics() throws(PcapError) -> PcapStatistics {
        var stats = pcap_stat()
        try check(pcap_stats(try openHandle(), &stats), "pcap_stats")
        return PcapStatistics(
            received: stats.ps_recv, droppedByBuffer: stats.ps_drop,
            droppedByInterface: stats.ps_ifdrop)
    }

    /// Closes the handle; packets borrowed from it become invalid. Closing twice does
    /// nothing.
    public func close() {
        if let handle { pcap_close(handle) }
        handle = nil
    }

    private func openHandle() throws(PcapError) -> OpaquePointer {
        guard let handle else { throw .closed(source: source) }
        return handle
    }

    private var lastError: String {
        guard let handle else { return "" }
        return String(cString: pcap_geterr(handle))
    }

    private func check(_ status: CInt, _ operation: String) throws(PcapError) {
        guard status == 0 else {
            // PCAP_ERROR leaves its reason in the handle's error text; the other codes
            // (PCAP_ERROR_ACTIVATED, ...) are explained by pcap_statustostr.
            let message =
                status == PCAP_ERROR ? lastError : String(cString: pcap_statustostr(status))
            throw .operationFailed(operation: operation, source: source, message: message)
        }
    }
}

/// libpcap's PCAP_ERRBUF_SIZE error buffer.
struct ErrorBuffer {
    private var storage = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))

    mutating func withPointer<Result>(_ body: (UnsafeMutablePointer<CChar>) -> Result) -> Result {
        storage.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    var string: String {
        String(decoding: storage.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
