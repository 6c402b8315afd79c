import OasisBits

/// The message being written has reached its size limit (the transport's, or the
/// buffer's tailroom). The writer rolls back to a mark and decides what to drop.
public struct MessageFull: Error, Hashable, Sendable {
    public init() {}
}

/// Writes a DNS message front to back into a ``Bits`` view, compressing names
/// (RFC 1035 §4.1.4) against the names already written.
///
/// The compression table is a fixed inline array of message offsets — no allocation
/// per message. Each entry is the start of a label that begins a name suffix already
/// in the message; a new name points at the longest suffix that matches, compared
/// ignoring case.
public struct MessageWriter {
    /// The message so far, from its first header byte.
    public private(set) var bits: Bits
    /// The most bytes the message may take.
    public internal(set) var limit: Int
    var suffixes: InlineArray<64, UInt16>
    var suffixCount: Int

    /// A writer that appends to `bits` (usually empty) up to `limit` bytes in all,
    /// or the buffer's tailroom if that is smaller.
    public init(into bits: Bits, limit: Int) {
        self.bits = bits
        self.limit = min(limit, bits.count + bits.tailroom)
        self.suffixes = InlineArray(repeating: 0)
        self.suffixCount = 0
    }

    /// Bytes written so far.
    public var count: Int { bits.count }

    /// A point to roll back to: the length and the compression table's size.
    public struct Mark: Sendable {
        let count: Int
        let suffixCount: Int
    }

    /// The current position, to ``rollBack(to:)`` if what follows does not fit.
    public var mark: Mark { Mark(count: bits.count, suffixCount: suffixCount) }

    /// Forgets everything written after `mark`.
    public mutating func rollBack(to mark: Mark) {
        try? bits.truncate(to: mark.count)
        suffixCount = mark.suffixCount
    }

    mutating func reserve(_ byteCount: Int) throws(MessageFull) -> Int {
        let at = bits.count
        guard at + byteCount <= limit else { throw MessageFull() }
        do { try bits.extend(by: byteCount) } catch { throw MessageFull() }
        return at
    }

    /// Appends a big-endian integer.

    public mutating func append<T: FixedWidthInteger>(_ value: T) throws(MessageFull) {
        let at = try reserve(MemoryLayout<T>.size)
        try? bits.write(value, at: at)
    }

    /// Appends raw bytes.
    public mutating func append(bytes: UnsafeRawBufferPointer) throws(MessageFull) {
        let at = try reserve(bytes.count)
        bits.withUnsafeMutableBytes { out in
            UnsafeMutableRawBufferPointer(rebasing: out[at...]).copyMemory(from: bytes)
        }
    }

    /// Overwrites the 16-bit value at `offset` (a count or an RDLENGTH written earlier).
    public mutating func patch(_ value: UInt16, at offset: Int) {
        try? bits.write(value, at: offset)
    }

    /// Appends a compression pointer to the name at `offset` (which must already be
    /// in the message, such as the question's name at 12).
    public mutating func appendPointer(to offset: Int) throws(MessageFull) {
        try append(UInt16(0xc000) | UInt16(offset))
    }

    /// Appends the uncompressed wire name `name`. With `compress`, its longest suffix
    /// already in the message becomes a pointer, and its new suffixes are remembered
    /// for later names; without, it is written whole and not remembered (RDATA of
    /// types after RFC 1035, RFC 3597 §4).
    public mutating func appendName(_ name: UnsafeRawBufferPointer, compress: Bool)
        throws(MessageFull)
    {
        if !compress {
            try append(bytes: name)
            return
        }
        var start = 0
        while name[start] != 0 {
            if let target = findSuffix(name, from: start) {
                let mark = self.mark
                do {
                    try appendLabels(name, upTo: start)
                    try appendPointer(to: target)
                } catch {
                    rollBack(to: mark)
                    throw error
                }
                return
            }
            start += 1 + Int(name[start])
        }
        let mark = self.mark
        do {
            try appendLabels(name, upTo: start)
            try append(UInt8(0))
        } catch {
            rollBack(to: mark)
            throw error
        }
    }

    /// Writes the labels of `name` before byte `end`, remembering each as a suffix.
    mutating func appendLabels(_ name: UnsafeRawBufferPointer, upTo end: Int) throws(MessageFull) {
        var position = 0
        while position < end {
            let here = bits.count
            if here < 0x4000 && suffixCount < 64 {
                suffixes[suffixCount] = UInt16(here)
                suffixCount += 1
            }
            let length = 1 + Int(name[position])
            try append(
                bytes: UnsafeRawBufferPointer(rebasing: name[position..<(position + length)]))
            position += length
        }
    }

    /// Remembers that a name starts at `offset` (the question's), for compression.
    public mutating func remember(nameAt offset: Int) {
        var position = offset
        while position < 0x4000 && suffixCount < 64,
            let length: UInt8 = try? bits.read(at: position), length != 0, length < 64
        {
            suffixes[suffixCount] = UInt16(position)
            suffixCount += 1
            position += 1 + Int(length)
        }
    }

    /// The offset of a remembered suffix equal to `name[from...]`, if any.
    func findSuffix(_ name: UnsafeRawBufferPointer, from start: Int) -> Int? {
        bits.withUnsafeBytes { message -> Int? in
            for index in 0..<suffixCount {
                let candidate = Int(suffixes[index])
                if nameMatches(message, at: candidate, name, from: start) { return candidate }
            }
            return nil
        }
    }
}

/// Whether the (compressed, self-written) name at `offset` of `message` equals
/// `name[start...]`, ignoring case.
@inline(__always)
func nameMatches(
    _ message: UnsafeRawBufferPointer, at offset: Int, _ name: UnsafeRawBufferPointer,
    from start: Int
) -> Bool {
    var position = offset
    var index = start
    var jumps = 0
    while true {
        guard position < message.count else { return false }
        var length = Int(message[position])
        while length & 0xc0 == 0xc0 {
            jumps += 1
            guard jumps < 64, position + 1 < message.count else { return false }
            position = (length & 0x3f) << 8 | Int(message[position + 1])
            guard position < message.count else { return false }
            length = Int(message[position])
        }
        guard length == Int(name[index]), position + length < message.count else { return false }
        if length == 0 { return true }
        for step in 1...length
        where asciiLower(message[position + step]) != asciiLower(name[index + step]) {
            return false
        }
        position += 1 + length
        index += 1 + length
    }
}
