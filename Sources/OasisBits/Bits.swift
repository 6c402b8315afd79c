/// The bitstring: a view of bytes inside a ``Buffer``.
///
/// A `Bits` is a buffer reference, a byte offset into it and a byte count — three
/// words, copied for free. Parsers take one, read fields from it and hand a narrower
/// one (the payload) to the next layer; writers move its start back into the buffer's
/// headroom to put a header in front. None of that copies a byte or allocates.
///
/// ```swift
/// var frame = try pool.allocate()            // empty view, 128 bytes of headroom
/// try frame.extend(by: 4)
/// try frame.write(UInt32(0xc0a8_0001), at: 0)   // big-endian by default
/// try frame.prepend(2)                       // move the start back into headroom
/// try frame.write(UInt16(0x0800), at: 0)
/// let (head, rest) = try frame.split(at: 2)
/// ```
///
/// Copies of a view share bytes, like `UnsafeMutableRawBufferPointer`: a write through
/// one is seen through every view of the same buffer. Writing methods are `mutating`
/// only to say that they change the packet. Every access is bounds-checked against the
/// view (not just the buffer) and fails with a ``BitsError``, never a trap.
///
/// Views are used on the thread that owns the buffer; they are not `Sendable`.
public struct Bits {
    /// The buffer whose bytes this view shows.
    public let buffer: Buffer

    @usableFromInline internal var _offset: Int
    @usableFromInline internal var _count: Int

    @inlinable
    internal init(unchecked buffer: Buffer, offset: Int, count: Int) {
        self.buffer = buffer
        self._offset = offset
        self._count = count
    }

    /// A view of `count` bytes of `buffer` starting at byte `offset`.
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` (against the
    /// buffer's capacity) if the range does not fit.
    @inlinable
    public init(buffer: Buffer, offset: Int = 0, count: Int) throws(BitsError) {
        guard offset >= 0, count >= 0, offset <= buffer.capacity,
            count <= buffer.capacity - offset
        else {
            throw .truncated(offset: offset, length: count, available: buffer.capacity)
        }
        self.init(unchecked: buffer, offset: offset, count: count)
    }

    /// Copies `bytes` into a fresh buffer, after `headroom` bytes of room for headers.
    ///
    /// This allocates; it is for tests and for applications handing their own bytes to
    /// the stack, not for the per-packet path (use a ``BufferPool`` there).
    public init(_ bytes: some Sequence<UInt8>, headroom: Int = 0) {
        let headroom = max(0, headroom)
        if let view = bytes.withContiguousStorageIfAvailable({ source in
            Bits.copyIntoFreshBuffer(UnsafeRawBufferPointer(source), headroom: headroom)
        }) {
            self = view
        } else {
            self = Array(bytes).withUnsafeBytes {
                Bits.copyIntoFreshBuffer($0, headroom: headroom)
            }
        }
    }

    private static func copyIntoFreshBuffer(
        _ source: UnsafeRawBufferPointer, headroom: Int
    ) -> Bits {
        let buffer = Buffer(byteCount: headroom + source.count)
        if let from = source.baseAddress, source.count > 0 {
            (buffer.baseAddress + headroom).copyMemory(from: from, byteCount: source.count)
        }
        return Bits(unchecked: buffer, offset: headroom, count: source.count)
    }

    /// The position of the first byte of the view in its buffer.
    @inlinable public var offset: Int { _offset }

    /// The number of bytes in the view.
    @inlinable public var count: Int { _count }

    /// Whether the view has no bytes.
    @inlinable public var isEmpty: Bool { _count == 0 }

    /// Bytes of the buffer before the view: room to ``prepend(_:)`` headers into.
    @inlinable public var headroom: Int { _offset }

    /// Bytes of the buffer after the view: room to ``extend(by:)`` into.
    @inlinable public var tailroom: Int { buffer.capacity - _offset - _count }

    /// The address of the view's first byte. Internal: escapes only inside closures.
    @inlinable internal var _start: UnsafeMutableRawPointer { buffer.baseAddress + _offset }

    /// Checks that `length` bytes at `offset` lie inside the view, without overflow.
    @inlinable @inline(__always)
    internal func _check(_ offset: Int, _ length: Int) throws(BitsError) {
        guard offset >= 0, length >= 0, offset <= _count, length <= _count - offset else {
            throw .truncated(offset: offset, length: length, available: _count)
        }
    }
}

// MARK: - Zero-copy slicing

extension Bits {
    /// The `length` bytes at `offset` of this view, as a view of the same buffer.
    @inlinable
    public func slice(from offset: Int, length: Int) throws(BitsError) -> Bits {
        try _check(offset, length)
        return Bits(unchecked: buffer, offset: _offset + offset, count: length)
    }

    /// The first `length` bytes of this view (for example an IPv4 packet without the
    /// Ethernet padding after its total length).
    @inlinable
    public func prefix(_ length: Int) throws(BitsError) -> Bits {
        try slice(from: 0, length: length)
    }

    /// This view without its first `byteCount` bytes (Mirage's `Cstruct.shift`).
    @inlinable
    public func shifted(by byteCount: Int) throws(BitsError) -> Bits {
        try _check(byteCount, 0)
        return Bits(unchecked: buffer, offset: _offset + byteCount, count: _count - byteCount)
    }

    /// Drops the first `byteCount` bytes: the view now starts after them (a header was
    /// consumed). The bytes stay in the buffer as headroom.
    @inlinable
    public mutating func shift(by byteCount: Int) throws(BitsError) {
        try _check(byteCount, 0)
        _offset += byteCount
        _count -= byteCount
    }

    /// The first `byteCount` bytes and the rest, as two views of the same buffer.
    @inlinable
    public func split(at byteCount: Int) throws(BitsError) -> (Bits, Bits) {
        try _check(byteCount, 0)
        return (
            Bits(unchecked: buffer, offset: _offset, count: byteCount),
            Bits(unchecked: buffer, offset: _offset + byteCount, count: _count - byteCount)
        )
    }

    /// Moves the start of the view `byteCount` bytes back into the buffer's headroom,
    /// so that a header can be written in front of the payload in place. The new bytes
    /// hold whatever the buffer held there; write all of them.
    @inlinable
    public mutating func prepend(_ byteCount: Int) throws(BitsError) {
        guard byteCount >= 0, byteCount <= _offset else {
            throw .noHeadroom(needed: byteCount, available: _offset)
        }
        _offset -= byteCount
        _count += byteCount
    }

    /// Moves the end of the view `byteCount` bytes forward into the buffer's tailroom.
    /// The new bytes hold whatever the buffer held there; write all of them.
    @inlinable
    public mutating func extend(by byteCount: Int) throws(BitsError) {
        let room = tailroom
        guard byteCount >= 0, byteCount <= room else {
            throw .noTailroom(needed: byteCount, available: room)
        }
        _count += byteCount
    }

    /// Shortens the view to its first `length` bytes.
    @inlinable
    public mutating func truncate(to length: Int) throws(BitsError) {
        try _check(0, length)
        _count = length
    }

    /// Appends a copy of `bytes` after the view, within the buffer's tailroom.
    @inlinable
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) throws(BitsError) {
        let at = _count
        try extend(by: bytes.count)
        if let from = bytes.baseAddress, bytes.count > 0 {
            (_start + at).copyMemory(from: from, byteCount: bytes.count)
        }
    }

    /// Appends a copy of the bytes of `other` after the view, within the tailroom.
    @inlinable
    public mutating func append(contentsOf other: Bits) throws(BitsError) {
        try other.withUnsafeBytes { (bytes) throws(BitsError) in
            try append(contentsOf: bytes)
        }
    }

    /// Appends a copy of `bytes` after the view, within the buffer's tailroom.
    public mutating func append(contentsOf bytes: [UInt8]) throws(BitsError) {
        let at = _count
        try extend(by: bytes.count)
        let destination = _start + at
        bytes.withUnsafeBytes { raw in
            if let from = raw.baseAddress, raw.count > 0 {
                destination.copyMemory(from: from, byteCount: raw.count)
            }
        }
    }
}

// MARK: - Raw access

extension Bits {
    /// Calls `body` with the view's bytes. The pointer must not escape `body`.
    @inlinable
    public func withUnsafeBytes<Result: ~Copyable, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: _start, count: _count))
    }

    /// Calls `body` with the view's bytes, writable. The pointer must not escape `body`.
    @inlinable
    public mutating func withUnsafeMutableBytes<Result: ~Copyable, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeMutableRawBufferPointer(start: _start, count: _count))
    }

    /// Lets `body` fill the tailroom (a device's `read`) and extends the view by the
    /// number of bytes `body` returns. A return value outside `0...tailroom` is a
    /// programming error in `body`.
    @inlinable
    public mutating func withUnsafeMutableTailroom<Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Int
    ) throws(Failure) {
        let room = tailroom
        let written = try body(UnsafeMutableRawBufferPointer(start: _start + _count, count: room))
        precondition(written >= 0 && written <= room, "wrote outside the tailroom")
        _count += written
    }

    /// A copy of the view's bytes in a new array (allocates).
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }
}

extension Bits: CustomStringConvertible {
    /// The view's geometry and up to its first 64 bytes in hexadecimal.
    public var description: String {
        let shown = withUnsafeBytes { bytes in
            bytes.prefix(64).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined(separator: " ")
        }
        let more = count > 64 ? " …" : ""
        return "Bits(offset: \(offset), count: \(count), bytes: [\(shown)\(more)])"
    }
}
