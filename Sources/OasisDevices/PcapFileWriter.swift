import CPcap

/// Writes frames to a classic pcap file (microsecond timestamps) that tcpdump,
/// tshark and Wireshark open.
///
/// Ownership: call ``close()``, which flushes; `deinit` closes a writer still open,
/// as a safety net only. Not `Sendable`.
///
/// ```swift
/// let writer = try PcapFileWriter(path: "/tmp/trace.pcap")
/// try writer.write(frame, timestamp: PcapTimestamp(seconds: 1, microseconds: 0))
/// try writer.close()
/// ```
public final class PcapFileWriter {
    /// Link-layer header types (the file's `network` field).
    public struct LinkType: Hashable, Sendable {
        public let rawValue: CInt
        public init(rawValue: CInt) { self.rawValue = rawValue }

        /// DLT_EN10MB: Ethernet frames.
        public static let ethernet = LinkType(rawValue: DLT_EN10MB)
    }

    /// The file being written.
    public let path: String
    /// Frames longer than this are truncated in the file; their original length is kept.
    public let snapshotLength: Int

    private var dead: OpaquePointer?
    private var dumper: OpaquePointer?

    /// Creates (or truncates) the file at `path` and writes the pcap file header.
    public init(path: String, snapshotLength: Int = 65535, linkType: LinkType = .ethernet)
        throws(PcapError)
    {
        self.path = path
        self.snapshotLength = snapshotLength
        guard let dead = pcap_open_dead(linkType.rawValue, CInt(clamping: snapshotLength)) else {
            throw .fileWriteFailed(path: path, message: "pcap_open_dead failed")
        }
        guard let dumper = pcap_dump_open(dead, path) else {
            let message = String(cString: pcap_geterr(dead))
            pcap_close(dead)
            throw .fileWriteFailed(path: path, message: message)
        }
        self.dead = dead
        self.dumper = dumper
    }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let dumper { pcap_dump_close(dumper) }
        if let dead { pcap_close(dead) }
    }

    /// Appends one frame. `originalLength` defaults to the frame's length; frames
    /// longer than ``snapshotLength`` are truncated, as a capture would be.
    public func write(
        _ frame: UnsafeRawBufferPointer, timestamp: PcapTimestamp, originalLength: Int? = nil
    ) throws(PcapError) {
        guard let dumper else { throw .closed(source: path) }
        let captured = min(frame.count, snapshotLength)
        let bytes = frame.baseAddress?.assumingMemoryBound(to: UInt8.self)
        oasis_pcap_dump_frame(
            dumper, timestamp.seconds, Int64(timestamp.microseconds), UInt32(captured),
            UInt32(clamping: originalLength ?? frame.count), bytes)
    }

    /// Appends one frame given as bytes.
    public func write(_ frame: [UInt8], timestamp: PcapTimestamp) throws(PcapError) {
        let result = frame.withUnsafeBytes { bytes in
            Result { () throws(PcapError) in try write(bytes, timestamp: timestamp) }
        }
        try result.get()
    }

    /// Pushes buffered frames to the file (pcap_dump_flush).
    public func flush() throws(PcapError) {
        guard let dumper else { throw .closed(source: path) }
        guard pcap_dump_flush(dumper) == 0 else {
            throw .fileWriteFailed(path: path, message: "pcap_dump_flush failed")
        }
    }

    /// Flushes and closes the file. Closing twice does nothing.
    public func close() throws(PcapError) {
        guard let dumper, let dead else { return }
        self.dumper = nil
        self.dead = nil
        let flushed = pcap_dump_flush(dumper) == 0
        pcap_dump_close(dumper)
        pcap_close(dead)
        if !flushed { throw .fileWriteFailed(path: path, message: "pcap_dump_flush failed") }
    }
}
