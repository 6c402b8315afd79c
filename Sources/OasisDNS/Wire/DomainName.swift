import OasisBits

/// A domain name in uncompressed wire form: length-prefixed labels ending with the
/// empty root label, in the case it was written (RFC 1035 §3.1).
///
/// Comparison and hashing ignore ASCII case (RFC 4343 §2); ``description`` is the
/// presentation form with `\DDD`/`\X` escapes, ending with a dot.
public struct DomainName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The wire bytes: at most 255, ending with a zero byte.
    public private(set) var wire: [UInt8]

    /// The root name, `.`.
    public static let root = DomainName(validatedWire: [0])

    /// A name from wire bytes already known to be well formed.
    init(validatedWire wire: [UInt8]) { self.wire = wire }

    /// A name from uncompressed wire bytes, checked: labels of at most 63 bytes, at
    /// most 255 bytes in all, ending at the root label and nothing after it.
    public init(wire bytes: [UInt8]) throws(WireError) {
        var offset = 0
        while true {
            guard offset < bytes.count else {
                throw .truncated(.truncated(offset: offset, length: 1, available: bytes.count))
            }
            let length = Int(bytes[offset])
            if length == 0 { break }
            guard length <= 63 else { throw .labelTooLong(offset: offset, length: length) }
            offset += 1 + length
            guard offset < 255 else { throw .nameTooLong(offset: 0) }
        }
        guard offset + 1 == bytes.count else {
            throw .badRecordData(type: RecordType(rawValue: 0), offset: offset + 1)
        }
        self.wire = bytes
    }

    /// The number of labels, not counting the root.
    public var labelCount: Int {
        var count = 0
        var offset = 0
        while wire[offset] != 0 {
            count += 1
            offset += 1 + Int(wire[offset])
        }
        return count
    }

    /// The labels, leftmost first, without the root.
    public var labels: [[UInt8]] {
        var result: [[UInt8]] = []
        var offset = 0
        while wire[offset] != 0 {
            let length = Int(wire[offset])
            result.append(Array(wire[(offset + 1)..<(offset + 1 + length)]))
            offset += 1 + length
        }
        return result
    }

    /// The name with every ASCII letter in lower case: the canonical form (RFC 4034 §6.2).
    public var lowercased: DomainName {
        DomainName(validatedWire: wire.map(asciiLower))
    }

    /// Whether `self` is `other` or lies below it.
    public func isSubdomain(of other: DomainName) -> Bool {
        guard other.wire.count <= wire.count else { return false }
        var offset = 0
        let start = wire.count - other.wire.count
        while offset < start { offset += 1 + Int(wire[offset]) }
        guard offset == start else { return false }
        return equalIgnoringCase(wire[start...], other.wire[...])
    }

    /// `label` followed by this name's labels.
    public func prepending(label: [UInt8]) throws(NameSyntaxError) -> DomainName {
        guard label.count <= 63 else { throw .labelTooLong }
        guard wire.count + label.count + 1 <= 255 else { throw .nameTooLong }
        return DomainName(validatedWire: [UInt8(label.count)] + label + wire)
    }

    /// This name with `suffix`'s labels in place of its root (a relative name made
    /// absolute).
    public func appending(_ suffix: DomainName) throws(NameSyntaxError) -> DomainName {
        guard wire.count - 1 + suffix.wire.count <= 255 else { throw .nameTooLong }
        return DomainName(validatedWire: wire.dropLast() + suffix.wire)
    }

    public static func == (left: DomainName, right: DomainName) -> Bool {
        left.wire.count == right.wire.count && equalIgnoringCase(left.wire[...], right.wire[...])
    }

    public func hash(into hasher: inout Hasher) {
        for byte in wire { hasher.combine(asciiLower(byte)) }
    }

    /// Canonical DNS order (RFC 4034 §6.1): by labels from the right, case-folded.
    public static func < (left: DomainName, right: DomainName) -> Bool {
        let l = left.labels.reversed().map { $0.map(asciiLower) }
        let r = right.labels.reversed().map { $0.map(asciiLower) }
        for (a, b) in zip(l, r) where a != b { return a.lexicographicallyPrecedes(b) }
        return l.count < r.count
    }

    /// The presentation form (RFC 1035 §5.1): labels separated by dots, ending with a
    /// dot; `.`, `\`, `"`, `;`, `(`, `)`, `@`, `$` and spaces escaped as `\X`, other
    /// bytes outside printable ASCII as `\DDD`.
    public var description: String {
        if wire.count == 1 { return "." }
        var text = ""
        for label in labels {
            for byte in label { appendEscaped(byte, to: &text, inName: true) }
            text.append(".")
        }
        return text
    }
}

/// What was wrong with a name written in presentation form.
public enum NameSyntaxError: Error, Hashable, Sendable {
    /// A label longer than 63 bytes.
    case labelTooLong
    /// A name longer than 255 bytes in wire form.
    case nameTooLong
    /// An empty label (two dots in a row, or a leading dot).
    case emptyLabel
    /// A `\` escape that is not `\DDD` (0–255) or `\X`.
    case badEscape
}

extension DomainName {
    /// Parses a presentation-form name. A name that does not end with an unescaped dot
    /// is relative and gets `origin` appended; without an origin it is taken as
    /// absolute.
    public init(parsing text: some StringProtocol, origin: DomainName? = nil)
        throws(NameSyntaxError)
    {
        let bytes = Array(text.utf8)
        try self.init(presentation: bytes.span, origin: origin)
    }

    /// Parses the UTF-8 bytes of a presentation-form name, as ``init(parsing:origin:)``
    /// does its text: for readers that hold bytes (the zone-file parser).
    ///
    /// Problems are reported in the order they are met, left to right; a name that is
    /// too long only once the whole text has been read. At most 256 bytes are stored
    /// however long the text.
    init(presentation bytes: Span<UInt8>, origin: DomainName?) throws(NameSyntaxError) {
        if bytes.count == 1 && bytes[0] == UInt8(ascii: ".") {
            self = .root
            return
        }
        let stored = 256
        var wire: [UInt8] = []
        wire.reserveCapacity(min(bytes.count + 2, stored) + (origin?.wire.count ?? 0))
        // `size` is the wire length so far; `wire` holds its first `stored` bytes. A
        // label's length byte is written when the label closes.
        wire.append(0)
        var size = 1
        var lengthIndex = 0
        var labelLength = 0
        var absolute = false
        var index = 0
        while index < bytes.count {
            var byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                let (value, used) = try unescape(bytes, at: index)
                byte = value
                index += used
            } else if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { throw .emptyLabel }
                guard labelLength <= 63 else { throw .labelTooLong }
                if lengthIndex < wire.count { wire[lengthIndex] = UInt8(labelLength) }
                lengthIndex = size
                if size < stored { wire.append(0) }
                size += 1
                labelLength = 0
                if index == bytes.count - 1 { absolute = true }
                index += 1
                continue
            } else {
                index += 1
            }
            labelLength += 1
            if size < stored { wire.append(byte) }
            size += 1
        }
        if labelLength > 0 {
            guard labelLength <= 63 else { throw .labelTooLong }
            if lengthIndex < wire.count { wire[lengthIndex] = UInt8(labelLength) }
            if size < stored { wire.append(0) }
            size += 1
        }
        // `wire` ends with the root label. Past 255 bytes nothing is valid, so when no
        // error is thrown below, every byte was stored.
        if !absolute, let origin {
            guard size - 1 + origin.wire.count <= 255 else { throw .nameTooLong }
            wire.removeLast()
            wire.append(contentsOf: origin.wire)
        } else {
            guard size <= 255 else { throw .nameTooLong }
        }
        self.wire = wire
    }
}

/// `\DDD` or `\X` at `bytes[index]` (the backslash), the escape ending by the end of
/// `bytes`: the byte and how many bytes of input it took.
func unescape(_ bytes: Span<UInt8>, at index: Int) throws(NameSyntaxError) -> (UInt8, Int) {
    guard index >= 0, index + 1 < bytes.count else { throw .badEscape }
    let next = bytes[index + 1]
    if next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9") {
        guard index + 3 < bytes.count else { throw .badEscape }
        var value = 0
        for position in (index + 1)...(index + 3) {
            let digit = bytes[position]
            guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9") else {
                throw .badEscape
            }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard value <= 255 else { throw .badEscape }
        return (UInt8(value), 4)
    }
    return (next, 2)
}

func appendEscaped(_ byte: UInt8, to text: inout String, inName: Bool) {
    switch byte {
    case UInt8(ascii: "."), UInt8(ascii: "@"), UInt8(ascii: "$"), UInt8(ascii: "("),
        UInt8(ascii: ")"), UInt8(ascii: ";"), UInt8(ascii: " "):
        if inName {
            text.append("\\")
            text.append(Character(Unicode.Scalar(byte)))
        } else {
            text.append(Character(Unicode.Scalar(byte)))
        }
    case UInt8(ascii: "\\"), UInt8(ascii: "\""):
        text.append("\\")
        text.append(Character(Unicode.Scalar(byte)))
    case 0x21...0x7e:
        text.append(Character(Unicode.Scalar(byte)))
    default:
        let digits = String(byte)
        text.append("\\" + String(repeating: "0", count: 3 - digits.count) + digits)
    }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    byte &- 0x41 < 26 ? byte | 0x20 : byte
}

func equalIgnoringCase(_ left: ArraySlice<UInt8>, _ right: ArraySlice<UInt8>) -> Bool {
    guard left.count == right.count else { return false }
    for (a, b) in zip(left, right) where asciiLower(a) != asciiLower(b) { return false }
    return true
}

// MARK: - Names on the wire

extension Bits {
    /// Reads the possibly compressed name at `offset` of this message into `output`
    /// (at least 255 bytes), uncompressed. Returns the name's wire length and the
    /// offset just after the name where it started (after its first pointer, if any).
    ///
    /// Safe against hostile input (RFC 1035 §4.1.4, RFC 9267): every pointer must
    /// point strictly before itself, so a loop is impossible, and past the 12-byte
    /// header, where no name can be; labels over 63 bytes,
    /// names over 255 (so also the label types `01`/`10`) are errors.
    public func readName(at offset: Int, into output: UnsafeMutableRawBufferPointer)
        throws(WireError) -> (length: Int, end: Int)
    {
        try withUnsafeBytes { (bytes) throws(WireError) in
            try readWireName(bytes, at: offset, into: output)
        }
    }

    /// Reads the possibly compressed name at `offset` (see
    /// ``readName(at:into:)``) as a ``DomainName``, and the offset after it.
    public func readName(at offset: Int) throws(WireError) -> (DomainName, Int) {
        var storage = [UInt8](repeating: 0, count: 256)
        let result = storage.withUnsafeMutableBytes { raw in
            Result { () throws(WireError) in try readName(at: offset, into: raw) }
        }
        let (length, end) = try result.get()
        storage.removeSubrange(length...)
        return (DomainName(validatedWire: storage), end)
    }
}

/// ``Bits/readName(at:into:)`` over plain bytes (the message): the same checks and the
/// same errors, with no view made per label.
func readWireName(
    _ message: UnsafeRawBufferPointer, at offset: Int, into output: UnsafeMutableRawBufferPointer
) throws(WireError) -> (length: Int, end: Int) {
    func truncated(_ at: Int, _ length: Int) -> WireError {
        .truncated(.truncated(offset: at, length: length, available: message.count))
    }
    var position = offset
    var end = -1
    var length = 0
    // Pointers only go backwards, so they cannot loop; but a chain of them can still
    // be thousands long and cost a query milliseconds. A name has at most 127 labels
    // and needs no more pointers than that.
    var hops = 0
    while true {
        guard position >= 0, position < message.count else { throw truncated(position, 1) }
        let byte = message[position]
        switch byte & 0xc0 {
        case 0x00:
            let labelLength = Int(byte)
            guard length + 1 + labelLength <= 255 else { throw .nameTooLong(offset: offset) }
            if labelLength == 0 {
                output[length] = 0
                length += 1
                return (length, end < 0 ? position + 1 : end)
            }
            guard position + 1 <= message.count, labelLength <= message.count - position - 1
            else { throw truncated(position + 1, labelLength) }
            output[length] = byte
            UnsafeMutableRawBufferPointer(
                rebasing: output[(length + 1)..<(length + 1 + labelLength)]
            )
            .copyMemory(
                from: UnsafeRawBufferPointer(
                    rebasing: message[(position + 1)..<(position + 1 + labelLength)]))
            length += 1 + labelLength
            position += 1 + labelLength
        case 0xc0:
            guard position + 1 < message.count else { throw truncated(position + 1, 1) }
            let low = message[position + 1]
            let target = Int(byte & 0x3f) << 8 | Int(low)
            // Strictly backwards, and past the header: no name lies in a header (NSD
            // answers FORMERR to a pointer into it).
            guard target < position, target >= MessageHeader.size else {
                throw .badPointer(offset: position, target: target)
            }
            hops += 1
            guard hops <= 127 else { throw .badPointer(offset: position, target: target) }
            if end < 0 { end = position + 2 }
            position = target
        default:
            // 0b01 and 0b10 prefixes: a "label" of 64...191 bytes, or the extended
            // label types RFC 6891 §5 retired. Either way, not a name we read.
            throw .labelTooLong(offset: position, length: Int(byte))
        }
    }
}
