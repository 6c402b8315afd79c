// TCP segments (RFC 9293 §3.1) and their options: MSS (§3.7.1), window scale and
// timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).

import OasisBits

/// The fixed 20 bytes of a TCP header (RFC 9293 §3.1).
public enum TCPHeader: HeaderLayout {
    /// Source port.
    public static let sourcePort = Field<UInt16>.first()
    /// Destination port.
    public static let destinationPort = Field<UInt16>.after(sourcePort)
    /// Sequence number.
    public static let sequenceNumber = Field<UInt32>.after(destinationPort)
    /// Acknowledgment number (meaningful when ACK is set).
    public static let acknowledgmentNumber = Field<UInt32>.after(sequenceNumber)
    /// Data offset: the header length in 32-bit words, 5...15.
    public static let dataOffset = Field<UInt8>.after(acknowledgmentNumber, bits: 4)
    /// Reserved bits (must be zero on send, ignored on receipt).
    public static let reserved = Field<UInt8>.after(dataOffset, bits: 4)
    /// The eight control bits: CWR ECE URG ACK PSH RST SYN FIN.
    public static let flags = Field<UInt8>.after(reserved)
    /// Receive window (scaled by the peer's window scale once both agreed to one).
    public static let window = Field<UInt16>.after(flags)
    /// Checksum over the pseudo-header, the header and the data.
    public static let checksum = Field<UInt16>.after(window)
    /// Urgent pointer (meaningful when URG is set).
    public static let urgentPointer = Field<UInt16>.after(checksum)
    /// 20 bytes.
    @inlinable public static var size: Int { 20 }
}

/// The control bits of a TCP header (RFC 9293 §3.1; CWR and ECE from RFC 3168).
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    @inlinable @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// No more data from the sender.
    @inlinable public static var fin: TCPFlags { TCPFlags(rawValue: 0x01) }
    /// Synchronize sequence numbers.
    @inlinable public static var syn: TCPFlags { TCPFlags(rawValue: 0x02) }
    /// Reset the connection.
    @inlinable public static var rst: TCPFlags { TCPFlags(rawValue: 0x04) }
    /// Push function.
    @inlinable public static var psh: TCPFlags { TCPFlags(rawValue: 0x08) }
    /// The acknowledgment field is significant.
    @inlinable public static var ack: TCPFlags { TCPFlags(rawValue: 0x10) }
    /// The urgent pointer is significant.
    @inlinable public static var urg: TCPFlags { TCPFlags(rawValue: 0x20) }
    /// ECN-Echo (RFC 3168).
    @inlinable public static var ece: TCPFlags { TCPFlags(rawValue: 0x40) }
    /// Congestion window reduced (RFC 3168).
    @inlinable public static var cwr: TCPFlags { TCPFlags(rawValue: 0x80) }

    /// `SYN|ACK`, as tcpdump writes flags: `S.`, `F.`, `R`, `P.`.
    public var description: String {
        var text = ""
        if contains(.syn) { text += "S" }
        if contains(.fin) { text += "F" }
        if contains(.rst) { text += "R" }
        if contains(.psh) { text += "P" }
        if contains(.urg) { text += "U" }
        if contains(.ece) { text += "E" }
        if contains(.cwr) { text += "W" }
        if contains(.ack) { text += "." }
        return text.isEmpty ? "none" : text
    }
}

/// The kinds of TCP option (IANA "TCP Option Kind Numbers").
public enum TCPOptionKind {
    /// End of option list.
    public static let endOfList: UInt8 = 0
    /// No operation (padding between options).
    public static let noOperation: UInt8 = 1
    /// Maximum segment size (RFC 9293 §3.7.1), 4 bytes.
    public static let maximumSegmentSize: UInt8 = 2
    /// Window scale (RFC 7323 §2), 3 bytes.
    public static let windowScale: UInt8 = 3
    /// SACK permitted (RFC 2018 §2), 2 bytes.
    public static let sackPermitted: UInt8 = 4
    /// SACK blocks (RFC 2018 §3), 2 + 8n bytes.
    public static let sack: UInt8 = 5
    /// Timestamps (RFC 7323 §3), 10 bytes.
    public static let timestamps: UInt8 = 8
}

/// What was wrong with a TCP segment.
public enum TCPError: Error, Hashable, Sendable {
    /// Fewer than 20 bytes.
    case truncated(available: Int)
    /// A data offset below 5 words or past the end of the segment.
    case badDataOffset(headerLength: Int, available: Int)
    /// An option whose length is below 2 or runs past the header (RFC 9293 §3.1:
    /// "must be prepared to handle an illegal option length"), at byte `offset` of the
    /// header.
    case badOption(offset: Int)
    /// The checksum did not verify; `found` is the field as received.
    case badChecksum(found: UInt16)
    /// Emitting: more options than fit in 40 bytes.
    case optionsTooLong(Int)
    /// Emitting: a segment too large for an IPv4 datagram.
    case payloadTooLarge(Int)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)
}

/// One SACK block (RFC 2018 §3): the sequence numbers of the first byte received and
/// of the byte just after the last.
public struct TCPSACKBlock: Hashable, Sendable {
    public var left: UInt32
    public var right: UInt32
    @inlinable @inline(__always)
    public init(left: UInt32, right: UInt32) {
        self.left = left
        self.right = right
    }
}

/// Up to four SACK blocks, stored inline (a segment carries at most four: RFC 2018 §3,
/// three beside timestamps), so that parsing allocates nothing.
public struct TCPSACKBlocks: Hashable, Sendable, RandomAccessCollection {
    @usableFromInline internal var _blocks: (TCPSACKBlock, TCPSACKBlock, TCPSACKBlock, TCPSACKBlock)
    @usableFromInline internal var _count: Int
    /// How many blocks are held, 0...4.
    @inlinable @inline(__always) public var count: Int { _count }

    /// No blocks.
    @inlinable @inline(__always)
    public init() {
        let zero = TCPSACKBlock(left: 0, right: 0)
        _blocks = (zero, zero, zero, zero)
        _count = 0
    }

    /// The given blocks (at most four are kept).
    @inlinable @inline(__always)
    public init(_ blocks: some Sequence<TCPSACKBlock>) {
        self.init()
        for block in blocks where count < 4 { append(block) }
    }

    /// The most blocks held.
    public static let capacity = 4

    @inlinable @inline(__always) public var startIndex: Int { 0 }
    @inlinable @inline(__always) public var endIndex: Int { _count }

    @inlinable @inline(__always)
    public subscript(index: Int) -> TCPSACKBlock {
        precondition(index >= 0 && index < count, "SACK block index out of range")
        switch index {
        case 0: return _blocks.0
        case 1: return _blocks.1
        case 2: return _blocks.2
        default: return _blocks.3
        }
    }

    /// Adds a block; a fifth one is ignored (false).
    @inlinable
    @discardableResult
    public mutating func append(_ block: TCPSACKBlock) -> Bool {
        switch count {
        case 0: _blocks.0 = block
        case 1: _blocks.1 = block
        case 2: _blocks.2 = block
        case 3: _blocks.3 = block
        default: return false
        }
        _count += 1
        return true
    }

    @inlinable
    public static func == (lhs: TCPSACKBlocks, rhs: TCPSACKBlocks) -> Bool {
        lhs.elementsEqual(rhs)
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for block in self { hasher.combine(block) }
    }
}

/// One option as found in a header: its kind, where it starts in the options area and
/// its whole length (1 for NOP and end of list).
public struct TCPOption: Hashable, Sendable {
    public let kind: UInt8
    public let offset: Int
    public let length: Int
    @inlinable @inline(__always)
    public init(kind: UInt8, offset: Int, length: Int) {
        self.kind = kind
        self.offset = offset
        self.length = length
    }
}

/// The options area of a TCP header walked one option at a time; a malformed option
/// (length below 2, or past the end) ends the walk as a failure with its offset. Options
/// of unknown kinds come out like known ones: skipped safely by their length.
public struct TCPOptions: ~Escapable {
    @usableFromInline internal let _bytes: RawSpan
    @usableFromInline internal var _offset = 0

    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(_ bytes: RawSpan) { _bytes = bytes }

    /// The next option; `.failure` (the offset in the options area) for a malformed
    /// one, after which the walk ends; nil after the last or an end-of-list option.
    @inlinable
    public mutating func next() -> Result<TCPOption, TCPOptionError>? {
        guard _offset < _bytes.byteCount else { return nil }
        let start = _offset
        let kind = _bytes[UInt8.self, at: start]
        switch kind {
        case TCPOptionKind.endOfList:
            _offset = _bytes.byteCount
            return nil
        case TCPOptionKind.noOperation:
            _offset &+= 1
            return .success(TCPOption(kind: kind, offset: start, length: 1))
        default:
            guard start &+ 1 < _bytes.byteCount else {
                _offset = _bytes.byteCount
                return .failure(TCPOptionError(offset: start))
            }
            let length = Int(_bytes[UInt8.self, at: start &+ 1])
            guard length >= 2, start &+ length <= _bytes.byteCount else {
                _offset = _bytes.byteCount
                return .failure(TCPOptionError(offset: start))
            }
            _offset &+= length
            return .success(TCPOption(kind: kind, offset: start, length: length))
        }
    }
}

/// A malformed TCP option at `offset` of the options area.
public struct TCPOptionError: Error, Hashable, Sendable {
    public let offset: Int
    @inlinable @inline(__always) public init(offset: Int) { self.offset = offset }
}

/// The bytes of a TCP segment, checked to hold its whole header (smoltcp's
/// `TcpPacket`): field getters, options, payload, checksum.
///
/// ```swift
/// let tcp = try TCPSegment(checking: ip.payload)
/// tcp.flags.contains(.syn); tcp.headerLength; tcp.payload
/// ```
public struct TCPSegment: ~Escapable {
    /// The header, options and data: the whole IP payload.
    public let bytes: RawSpan

    /// Checks that `bytes` hold a 20-byte header and a data offset of at least 5 words
    /// that stays within `bytes`.
    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(checking bytes: RawSpan) throws(TCPError) {
        guard bytes.byteCount >= TCPHeader.size else {
            throw .truncated(available: bytes.byteCount)
        }
        let headerLength = Int(bytes[TCPHeader.dataOffset]) &* 4
        guard headerLength >= TCPHeader.size, headerLength <= bytes.byteCount else {
            throw .badDataOffset(headerLength: headerLength, available: bytes.byteCount)
        }
        self.bytes = bytes
    }

    @inlinable @inline(__always) public var sourcePort: UInt16 { bytes[TCPHeader.sourcePort] }
    @inlinable @inline(__always) public var destinationPort: UInt16 {
        bytes[TCPHeader.destinationPort]
    }
    @inlinable @inline(__always) public var sequenceNumber: UInt32 {
        bytes[TCPHeader.sequenceNumber]
    }
    @inlinable @inline(__always) public var acknowledgmentNumber: UInt32 {
        bytes[TCPHeader.acknowledgmentNumber]
    }
    /// The header length in bytes (data offset × 4).
    @inlinable @inline(__always) public var headerLength: Int {
        Int(bytes[TCPHeader.dataOffset]) &* 4
    }
    @inlinable @inline(__always) public var flags: TCPFlags {
        TCPFlags(rawValue: bytes[TCPHeader.flags])
    }
    @inlinable @inline(__always) public var window: UInt16 { bytes[TCPHeader.window] }
    @inlinable @inline(__always) public var checksum: UInt16 { bytes[TCPHeader.checksum] }
    @inlinable @inline(__always) public var urgentPointer: UInt16 { bytes[TCPHeader.urgentPointer] }

    /// The options area (bytes 20..<data offset × 4).
    public var optionBytes: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { bytes.extracting(TCPHeader.size..<headerLength) }
    }

    /// The options, one at a time.
    public var options: TCPOptions {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { TCPOptions(optionBytes) }
    }

    /// The data after the header.
    public var payload: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { bytes.extracting(droppingFirst: headerLength) }
    }

    /// Whether the checksum verifies over the pseudo-header for `source` →
    /// `destination`, the header and the data (RFC 9293 §3.1).
    @inlinable @inline(__always)
    public func verifyChecksum(source: IPv4Address, destination: IPv4Address) -> Bool {
        var sum = IPv4Repr.pseudoHeaderChecksum(
            source: source, destination: destination, protocol: .tcp, length: bytes.byteCount)
        bytes.withUnsafeBytes { sum.add($0) }
        return sum.checksum == 0
    }
}

/// The parsed meaning of a TCP header and its options (smoltcp's `TcpRepr`). The data
/// is the packet's bytes after ``headerLength``.
///
/// Options are read as RFC 9293 §3.7 and RFC 7323 ask: an option of a known kind with
/// the wrong length is ignored (as Linux ignores it), an unknown option is skipped by
/// its length and counted in ``unknownOptions``, and a length that is below 2 or runs
/// past the header makes the segment malformed.
public struct TCPRepr: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    /// The window field as sent (not scaled).
    public var window: UInt16
    public var urgentPointer: UInt16
    /// MSS (RFC 9293 §3.7.1): only in a SYN.
    public var maximumSegmentSize: UInt16?
    /// Window scale shift (RFC 7323 §2.2): only in a SYN. Values above 14 are kept as
    /// sent; RFC 7323 §2.3 has the receiver use 14 (the state machine clamps).
    public var windowScale: UInt8?
    /// SACK permitted (RFC 2018 §2): only in a SYN.
    public var sackPermitted: Bool
    /// SACK blocks (RFC 2018 §3).
    public var sackBlocks: TCPSACKBlocks
    /// Timestamps (RFC 7323 §3): TSval and TSecr.
    public var timestamps: TCPTimestamps?
    /// Options of kinds this parser does not know, skipped.
    public var unknownOptions: Int
    /// Where the data starts. For a parsed segment, the header length as received
    /// (data offset × 4), whatever padding or unknown options made it longer than the
    /// options it carries need; for one made with `init`, the length `emit` writes:
    /// ``optionsLength`` rounded up to words, plus 20.
    @inlinable
    public var headerLength: Int {
        _received.headerLength ?? TCPHeader.size &+ ((optionsLength &+ 3) & ~3)
    }
    /// The header length of a parsed segment, kept out of equality: two segments that
    /// say the same are equal however their options were padded.
    @usableFromInline internal var _received = _ReceivedHeaderLength()

    /// A header with no options unless given.
    @inlinable @inline(__always)
    public init(
        sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32,
        acknowledgmentNumber: UInt32 = 0, flags: TCPFlags, window: UInt16,
        urgentPointer: UInt16 = 0, maximumSegmentSize: UInt16? = nil, windowScale: UInt8? = nil,
        sackPermitted: Bool = false, sackBlocks: TCPSACKBlocks = TCPSACKBlocks(),
        timestamps: TCPTimestamps? = nil
    ) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.urgentPointer = urgentPointer
        self.maximumSegmentSize = maximumSegmentSize
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.sackBlocks = sackBlocks
        self.timestamps = timestamps
        self.unknownOptions = 0
    }

    /// The bytes the options take when emitted, before padding to a word: MSS 4,
    /// window scale 3 (+1 NOP), SACK-permitted 2 (+2 NOPs), timestamps 10 (+2 NOPs),
    /// SACK 2 + 8n (+2 NOPs), laid out as Linux lays them out.
    @inlinable @inline(__always)
    public var optionsLength: Int {
        var length = 0
        if maximumSegmentSize != nil { length &+= 4 }
        if timestamps != nil || sackPermitted {
            // SACK-permitted shares a word with the timestamps' or stands with 2 NOPs.
            length &+= timestamps != nil ? 12 : 4
        }
        if windowScale != nil { length &+= 4 }
        if !sackBlocks.isEmpty { length &+= 4 &+ 8 &* sackBlocks.count }
        return length
    }

    /// The meaning of a checked segment sent from `source` to `destination`; verifies
    /// the checksum unless told not to (a device that verified it).
    @inlinable @inline(__always)
    public static func parse(
        _ segment: borrowing TCPSegment, source: IPv4Address, destination: IPv4Address,
        verifyChecksum: Bool = true
    ) throws(TCPError) -> TCPRepr {
        if verifyChecksum && !segment.verifyChecksum(source: source, destination: destination) {
            throw .badChecksum(found: segment.checksum)
        }
        var repr = TCPRepr(
            sourcePort: segment.sourcePort, destinationPort: segment.destinationPort,
            sequenceNumber: segment.sequenceNumber,
            acknowledgmentNumber: segment.acknowledgmentNumber, flags: segment.flags,
            window: segment.window, urgentPointer: segment.urgentPointer)
        repr._received.headerLength = segment.headerLength
        let area = segment.optionBytes
        var options = segment.options
        while let next = options.next() {
            let option: TCPOption
            switch next {
            case .success(let found): option = found
            case .failure(let error): throw .badOption(offset: TCPHeader.size &+ error.offset)
            }
            let at = option.offset
            switch (option.kind, option.length) {
            case (TCPOptionKind.noOperation, _):
                break
            case (TCPOptionKind.maximumSegmentSize, 4):
                repr.maximumSegmentSize = area[UInt16.self, at: at &+ 2]
            case (TCPOptionKind.windowScale, 3):
                repr.windowScale = area[UInt8.self, at: at &+ 2]
            case (TCPOptionKind.sackPermitted, 2):
                repr.sackPermitted = true
            case (TCPOptionKind.sack, let length) where length >= 10 && (length &- 2) % 8 == 0:
                var block = at &+ 2
                while block &+ 8 <= at &+ length {
                    repr.sackBlocks.append(
                        TCPSACKBlock(
                            left: area[UInt32.self, at: block],
                            right: area[UInt32.self, at: block &+ 4]))
                    block &+= 8
                }
            case (TCPOptionKind.timestamps, 10):
                repr.timestamps = TCPTimestamps(
                    value: area[UInt32.self, at: at &+ 2],
                    echoReply: area[UInt32.self, at: at &+ 6])
            case (TCPOptionKind.maximumSegmentSize, _), (TCPOptionKind.windowScale, _),
                (TCPOptionKind.sackPermitted, _), (TCPOptionKind.sack, _),
                (TCPOptionKind.timestamps, _):
                break  // a known kind with the wrong length: ignored
            default:
                repr.unknownOptions &+= 1
            }
        }
        return repr
    }

    /// Checks and parses the segment at the start of `bytes` (the IP payload).
    @inlinable @inline(__always)
    public static func parse(
        _ bytes: RawSpan, source: IPv4Address, destination: IPv4Address,
        verifyChecksum: Bool = true
    ) throws(TCPError) -> TCPRepr {
        try parse(
            TCPSegment(checking: bytes), source: source, destination: destination,
            verifyChecksum: verifyChecksum)
    }

    /// Prepends the header and its options in front of `packet` (the data) and fills
    /// the checksum over the pseudo-header for `source` → `destination`; with
    /// `checksum: .offload` it writes only the pseudo-header sum, for a device that
    /// finishes it (virtio's `NEEDS_CSUM`). `packet` becomes the segment.
    @inlinable
    public func emit(
        prependingTo packet: inout Packet, source: IPv4Address, destination: IPv4Address,
        checksum mode: ChecksumMode = .compute
    ) throws(TCPError) {
        let options = optionsLength
        guard options <= 40 else { throw .optionsTooLong(options) }
        let header = TCPHeader.size &+ ((options &+ 3) & ~3)
        let length = packet.count &+ header
        guard length <= Int(UInt16.max) &- IPv4Header.size else {
            throw .payloadTooLarge(packet.count)
        }
        do {
            try packet.prepend(header)
        } catch {
            throw .buffer(error)
        }
        let repr = self
        packet.withUnsafeMutableBytes { bytes in
            let p = bytes.baseAddress!
            p.storeBigEndian(UInt32(repr.sourcePort) << 16 | UInt32(repr.destinationPort), at: 0)
            p.storeBigEndian(repr.sequenceNumber, at: 4)
            p.storeBigEndian(repr.acknowledgmentNumber, at: 8)
            p.storeBigEndian(UInt16(header / 4) << 12 | UInt16(repr.flags.rawValue), at: 12)
            p.storeBigEndian(UInt32(repr.window) << 16, at: 14)  // window, checksum zero
            p.storeBigEndian(repr.urgentPointer, at: 18)
            var at = TCPHeader.size
            if let maximumSegmentSize = repr.maximumSegmentSize {
                p.storeBigEndian(0x0204_0000 | UInt32(maximumSegmentSize), at: at)
                at &+= 4
            }
            if let timestamps = repr.timestamps {
                // NOP NOP TS, or SACK-permitted TS: as Linux writes them.
                p.storeBigEndian(UInt16(repr.sackPermitted ? 0x0402 : 0x0101), at: at)
                p.storeBigEndian(UInt16(0x080a), at: at &+ 2)
                p.storeBigEndian(timestamps.value, at: at &+ 4)
                p.storeBigEndian(timestamps.echoReply, at: at &+ 8)
                at &+= 12
            } else if repr.sackPermitted {
                p.storeBigEndian(UInt32(0x0101_0402), at: at)
                at &+= 4
            }
            if let windowScale = repr.windowScale {
                p.storeBigEndian(0x0103_0300 | UInt32(windowScale), at: at)
                at &+= 4
            }
            if !repr.sackBlocks.isEmpty {
                p.storeBigEndian(
                    0x0101_0000 | UInt32(TCPOptionKind.sack) << 8
                        | UInt32(2 &+ 8 &* repr.sackBlocks.count), at: at)
                at &+= 4
                for block in repr.sackBlocks {
                    p.storeBigEndian(block.left, at: at)
                    p.storeBigEndian(block.right, at: at &+ 4)
                    at &+= 8
                }
            }
            while at < header {
                p.storeBytes(of: TCPOptionKind.endOfList, toByteOffset: at, as: UInt8.self)
                at &+= 1
            }
            var sum = IPv4Repr.pseudoHeaderChecksum(
                source: source, destination: destination, protocol: .tcp, length: length)
            switch mode {
            case .compute:
                sum.add(UnsafeRawBufferPointer(bytes))
                p.storeBigEndian(sum.checksum, at: 16)
            case .offload:
                p.storeBigEndian(sum.sum, at: 16)
            }
        }
    }
}

/// A parsed segment's header length, equal to every other: it says how the segment
/// was laid out, not what it means.
@usableFromInline
internal struct _ReceivedHeaderLength: Hashable, Sendable {
    @usableFromInline var headerLength: Int?
    @inlinable init() {}
    @inlinable static func == (_: Self, _: Self) -> Bool { true }
    @inlinable func hash(into _: inout Hasher) {}
}

/// The timestamps option's two values (RFC 7323 §3.2).
public struct TCPTimestamps: Hashable, Sendable {
    /// TSval: the sender's clock.
    public var value: UInt32
    /// TSecr: the TSval most recently received, echoed (meaningful with ACK).
    public var echoReply: UInt32
    @inlinable @inline(__always)
    public init(value: UInt32, echoReply: UInt32) {
        self.value = value
        self.echoReply = echoReply
    }
}

/// How an emitter fills a transport checksum.
public enum ChecksumMode: Hashable, Sendable {
    /// Computes it over the pseudo-header and the whole segment.
    case compute
    /// Writes the pseudo-header sum only (not complemented), for a device that sums the
    /// segment itself from the checksum field on (virtio's `NEEDS_CSUM`, a NIC's
    /// offload).
    case offload
}

extension TCPSACKBlocks {
    /// Whether there are no blocks.
    @inlinable @inline(__always) public var isEmpty: Bool { count == 0 }
}
