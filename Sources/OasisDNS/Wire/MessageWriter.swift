import OasisBits

/// The message being written has reached its size limit (the transport's, or the
/// buffer's tailroom). The writer rolls back to a mark and decides what to drop.
public struct MessageFull: Error, Hashable, Sendable {
    public init() {}
}

/// Writes a DNS message front to back into raw memory, compressing names (RFC 1035
/// §4.1.4) against the names already written.
///
/// The writer holds no reference: whoever makes one keeps the memory alive while it
/// writes (``with(into:limit:_:)`` over a ``Bits`` view, or the engine over a reply
/// buffer). Its compression table is memory of the caller's too (on the stack): each
/// entry is the offset of a label that begins a name suffix already in the message; a
/// new name points at the longest suffix that matches, compared ignoring case.
struct MessageWriter {
    /// The message's first header byte.
    let base: UnsafeMutableRawPointer
    /// The bytes there are from `base`.
    let capacity: Int
    /// Bytes written so far.
    private(set) var count: Int
    /// The most bytes the message may take (never more than `capacity`).
    var limit: Int
    /// The compression table: `suffixCapacity` offsets, `suffixCount` used.
    let suffixes: UnsafeMutablePointer<UInt16>
    private(set) var suffixCount: Int

    /// The compression table's size: names after the 64th suffix are written whole.
    static let suffixCapacity = 64

    /// A writer over `capacity` bytes at `base` (of which `count` are written already),
    /// compressing against the table at `suffixes` (`suffixCapacity` entries).
    init(
        base: UnsafeMutableRawPointer, capacity: Int, count: Int = 0, limit: Int,
        suffixes: UnsafeMutablePointer<UInt16>
    ) {
        self.base = base
        self.capacity = capacity
        self.count = count
        self.limit = min(limit, capacity)
        self.suffixes = suffixes
        self.suffixCount = 0
    }

    /// Runs `body` with a writer that appends to `bits` (usually empty) up to `limit`
    /// bytes in all, or the buffer's tailroom if that is smaller; then `bits` covers
    /// the message written (unchanged if `body` throws).
    static func with<Failure: Error>(
        into bits: inout Bits, limit: Int, _ body: (inout MessageWriter) throws(Failure) -> Void
    ) throws(Failure) {
        let outcome = withUnsafeTemporaryAllocation(of: UInt16.self, capacity: suffixCapacity) {
            table in
            var writer = MessageWriter(
                base: bits.buffer.baseAddress + bits.offset, capacity: bits.count + bits.tailroom,
                count: bits.count, limit: limit, suffixes: table.baseAddress!)
            let result = Result { () throws(Failure) in try body(&writer) }
            if case .success = result {
                let written = writer.count
                if written >= bits.count {
                    try? bits.extend(by: written - bits.count)
                } else {
                    try? bits.truncate(to: written)
                }
            }
            return result
        }
        try outcome.get()
    }

    /// A point to roll back to: the length and the compression table's size.
    struct Mark {
        let count: Int
        let suffixCount: Int
    }

    /// The current position, to ``rollBack(to:)`` if what follows does not fit.
    var mark: Mark { Mark(count: count, suffixCount: suffixCount) }

    /// Forgets everything written after `mark`.
    mutating func rollBack(to mark: Mark) {
        count = min(count, mark.count)
        suffixCount = mark.suffixCount
    }

    @inline(__always)
    mutating func reserve(_ byteCount: Int) throws(MessageFull) -> Int {
        let at = count
        guard byteCount <= limit - at else { throw MessageFull() }
        count = at + byteCount
        return at
    }

    /// Appends a big-endian integer.
    @inline(__always)
    mutating func append<T: FixedWidthInteger>(_ value: T) throws(MessageFull) {
        let at = try reserve(MemoryLayout<T>.size)
        base.storeBytes(of: value.bigEndian, toByteOffset: at, as: T.self)
    }

    /// Appends raw bytes.
    @inline(__always)
    mutating func append(bytes: UnsafeRawBufferPointer) throws(MessageFull) {
        let at = try reserve(bytes.count)
        if let source = bytes.baseAddress {
            (base + at).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    /// Overwrites the 16-bit value at `offset` (a count or an RDLENGTH written earlier).
    mutating func patch(_ value: UInt16, at offset: Int) {
        guard offset >= 0, offset <= count - 2 else { return }
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    /// Appends a compression pointer to the name at `offset` (which must already be
    /// in the message, such as the question's name at 12).
    mutating func appendPointer(to offset: Int) throws(MessageFull) {
        try append(UInt16(0xc000) | UInt16(offset))
    }

    /// Appends the uncompressed wire name `name`. With `compress`, its longest suffix
    /// already in the message becomes a pointer, and its new suffixes are remembered
    /// for later names; without, it is written whole and not remembered (RDATA of
    /// types after RFC 1035, RFC 3597 §4).
    mutating func appendName(_ name: UnsafeRawBufferPointer, compress: Bool)
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
            if here < 0x4000 && suffixCount < MessageWriter.suffixCapacity {
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
    mutating func remember(nameAt offset: Int) {
        var position = offset
        while position < 0x4000 && suffixCount < MessageWriter.suffixCapacity && position >= 0
            && position < count
        {
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
        for index in 0..<suffixCount {
            let candidate = Int(suffixes[index])
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
    guard let bytes = message.baseAddress, let wanted = name.baseAddress else { return false }
    let end = message.count
    var position = offset
    var index = start
    var jumps = 0
    while true {
        guard position < end else { return false }
        var length = Int(bytes.load(fromByteOffset: position, as: UInt8.self))
        while length & 0xc0 == 0xc0 {
            jumps &+= 1
            guard jumps < 64, position &+ 1 < end else { return false }
            position =
                (length & 0x3f) << 8
                | Int(bytes.load(fromByteOffset: position &+ 1, as: UInt8.self))
            guard position < end else { return false }
            length = Int(bytes.load(fromByteOffset: position, as: UInt8.self))
        }
        guard length == Int(wanted.load(fromByteOffset: index, as: UInt8.self)),
            position &+ length < end
        else { return false }
        if length == 0 { return true }
        // Bytes that differ may still be one letter in two cases (they differ in
        // 0x20 only, and that bit set makes a lowercase letter).
        var step = 1
        while step <= length {
            let left = bytes.load(fromByteOffset: position &+ step, as: UInt8.self)
            let right = wanted.load(fromByteOffset: index &+ step, as: UInt8.self)
            if left != right && (left ^ right != 0x20 || (left | 0x20) &- 0x61 >= 26) {
                return false
            }
            step &+= 1
        }
        position &+= 1 &+ length
        index &+= 1 &+ length
    }
}
