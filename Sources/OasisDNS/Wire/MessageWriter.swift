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
    /// The view given, which keeps the buffer alive; the message is written through
    /// `base`, its first byte, with no view made per write.
    private let storage: Bits
    private let base: UnsafeMutableRawPointer
    /// The bytes the buffer has from `base`: the view's and its tailroom.
    private let capacity: Int
    /// Bytes written so far.
    public private(set) var count: Int
    /// The most bytes the message may take.
    public internal(set) var limit: Int
    var suffixes: InlineArray<64, UInt16>
    var suffixCount: Int

    /// A writer that appends to `bits` (usually empty) up to `limit` bytes in all,
    /// or the buffer's tailroom if that is smaller.
    public init(into bits: Bits, limit: Int) {
        storage = bits
        base = bits.buffer.baseAddress + bits.offset
        capacity = bits.count + bits.tailroom
        count = bits.count
        self.limit = min(limit, capacity)
        self.suffixes = InlineArray(repeating: 0)
        self.suffixCount = 0
    }

    /// The message so far, from its first header byte: a view of the buffer given.
    public var bits: Bits {
        var view = storage
        if count >= view.count {
            try? view.extend(by: count - view.count)
        } else {
            try? view.truncate(to: count)
        }
        return view
    }

    /// A point to roll back to: the length and the compression table's size.
    public struct Mark: Sendable {
        let count: Int
        let suffixCount: Int
    }

    /// The current position, to ``rollBack(to:)`` if what follows does not fit.
    public var mark: Mark { Mark(count: count, suffixCount: suffixCount) }

    /// Forgets everything written after `mark`.
    public mutating func rollBack(to mark: Mark) {
        count = min(count, mark.count)
        suffixCount = mark.suffixCount
    }

    @inline(__always)
    mutating func reserve(_ byteCount: Int) throws(MessageFull) -> Int {
        let at = count
        guard byteCount <= min(limit, capacity) - at else { throw MessageFull() }
        count = at + byteCount
        return at
    }

    /// Appends a big-endian integer.
    @inline(__always)
    public mutating func append<T: FixedWidthInteger>(_ value: T) throws(MessageFull) {
        let at = try reserve(MemoryLayout<T>.size)
        base.storeBytes(of: value.bigEndian, toByteOffset: at, as: T.self)
    }

    /// Appends raw bytes.
    @inline(__always)
    public mutating func append(bytes: UnsafeRawBufferPointer) throws(MessageFull) {
        let at = try reserve(bytes.count)
        if let source = bytes.baseAddress {
            (base + at).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// Overwrites the 16-bit value at `offset` (a count or an RDLENGTH written earlier).
    public mutating func patch(_ value: UInt16, at offset: Int) {
        guard offset >= 0, offset <= count - 2 else { return }
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
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
            let here = count
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
        while position < 0x4000 && suffixCount < 64 && position >= 0 && position < count {
            let length = base.load(fromByteOffset: position, as: UInt8.self)
            guard length != 0, length < 64 else { break }
            suffixes[suffixCount] = UInt16(position)
            suffixCount += 1
            position += 1 + Int(length)
        }
    }

    /// The offset of a remembered suffix equal to `name[from...]`, if any.
    func findSuffix(_ name: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let message = UnsafeRawBufferPointer(start: base, count: count)
        let length = name[start]
        // Through a span: indexing the inline array itself copied all of it per step.
        let table = suffixes.span
        for index in 0..<suffixCount {
            let candidate = Int(table[index])
            // Most candidates differ in their first label's length.
            guard message[candidate] == length else { continue }
            if nameMatches(message, at: candidate, name, from: start) { return candidate }
        }
        return nil
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
