/// The owner of one packet on the data path: a window onto a ``Buffer``, like
/// ``Bits``, that cannot be copied.
///
/// A frame is owned once, by whoever holds its `Packet`; everyone else borrows it. A
/// device hands a received frame to the stack as a `Packet`; each layer reads its
/// header through ``bytes`` (a `RawSpan`: a borrow, no reference count) and moves the
/// window past it with ``shift(by:)``; the application receives the payload as the
/// same `Packet`; a reply is built by moving the window back with ``prepend(_:)`` and
/// writing headers in front; `send` consumes it and the device transmits it. The
/// buffer's reference is taken once, when the pool hands the buffer out, and dropped
/// once, when the last owner lets the packet go: between the two nothing is retained.
///
/// ```swift
/// var packet = try pool.allocatePacket()          // empty, `headroom` bytes in front
/// try packet.append(contentsOf: payload)
/// try packet.prepend(8)                           // room for a header, in place
/// try packet.write(UInt16(53), at: 0)
/// device.transmit(packet)                         // consumed: the device owns it now
/// ```
///
/// Because it cannot be copied, the compiler makes every hand-over explicit:
/// `consuming` parameters take ownership, `borrowing` ones read, `inout` ones read and
/// move the window. Where a copyable view is wanted (an API that takes ``Bits``, a
/// value kept in a collection), ``bits`` makes one (one retain) and
/// ``Bits/init(_:)-(Packet)`` turns the packet into one without a retain.
///
/// Bounds are checked against the window, as for ``Bits``: a short packet is a
/// ``BitsError``, never a trap. Packets live on their loop's thread.
@frozen
public struct Packet: ~Copyable {
    /// The buffer whose bytes the packet shows.
    public let buffer: Buffer

    @usableFromInline internal var _offset: Int
    @usableFromInline internal var _count: Int

    /// What the packet asks of its device (segmentation, a checksum to finish) or what
    /// its device says about it (coalesced, checksum vouched for): ``PacketOffload``.
    /// A new packet asks nothing; a copy keeps it; a ``Bits`` view drops it.
    public var offload: PacketOffload

    @inlinable
    internal init(unchecked buffer: Buffer, offset: Int, count: Int) {
        self.buffer = buffer
        self._offset = offset
        self._count = count
        self.offload = PacketOffload()
    }

    /// The `count` bytes of `buffer` at `offset`.
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

    /// Takes over a view's buffer and window: the view is consumed, so no reference
    /// count changes hands.
    @inlinable
    public init(_ bits: consuming Bits) {
        let offset = bits._offset
        let count = bits._count
        self.init(unchecked: bits.buffer, offset: offset, count: count)
    }

    /// Copies `bytes` into a fresh buffer, after `headroom` bytes of room for headers.
    /// This allocates a buffer: for tests and for bytes from outside the data path (on
    /// it, allocate from a ``BufferPool``).
    public init(copying bytes: some Sequence<UInt8>, headroom: Int = BufferPool.defaultHeadroom) {
        self.init(Bits(bytes, headroom: headroom))
    }

    /// The position of the first byte in the buffer.
    @inlinable public var offset: Int { _offset }

    /// The number of bytes in the window.
    @inlinable public var count: Int { _count }

    /// Whether the window is empty.
    @inlinable public var isEmpty: Bool { _count == 0 }

    /// Bytes of the buffer before the window: room to ``prepend(_:)`` headers into.
    @inlinable public var headroom: Int { _offset }

    /// Bytes of the buffer after the window: room to ``extend(by:)`` into.
    @inlinable public var tailroom: Int { buffer.capacity &- _offset &- _count }

    /// A copyable view of the same bytes (its copy of the buffer reference costs a
    /// retain): for APIs that take ``Bits``.
    @inlinable public var bits: Bits { Bits(unchecked: buffer, offset: _offset, count: _count) }

    @inlinable @inline(__always)
    internal var _start: UnsafeMutableRawPointer { buffer.baseAddress + _offset }

    @inlinable @inline(__always)
    internal var _raw: _RawBytes { _RawBytes(start: _start, count: _count) }

    @inlinable @inline(__always)
    internal func _check(_ offset: Int, _ length: Int) throws(BitsError) {
        guard offset >= 0, length >= 0, offset <= _count, length <= _count &- offset else {
            throw .truncated(offset: offset, length: length, available: _count)
        }
    }
}

// MARK: - Moving the window

extension Packet {
    /// Drops the first `byteCount` bytes: a header was read; its bytes stay in the
    /// buffer as headroom (Mirage's `Cstruct.shift`).
    @inlinable
    public mutating func shift(by byteCount: Int) throws(BitsError) {
        try _check(byteCount, 0)
        _offset &+= byteCount
        _count &-= byteCount
    }

    /// Moves the start back `byteCount` bytes into the headroom, so that a header can
    /// be written in front in place. The new bytes hold whatever the buffer held
    /// there: a header that was shifted past is still there to read.
    @inlinable
    public mutating func prepend(_ byteCount: Int) throws(BitsError) {
        guard byteCount >= 0, byteCount <= _offset else {
            throw .noHeadroom(needed: byteCount, available: _offset)
        }
        _offset &-= byteCount
        _count &+= byteCount
    }

    /// Moves the end forward `byteCount` bytes into the tailroom; write all of them.
    @inlinable
    public mutating func extend(by byteCount: Int) throws(BitsError) {
        let room = tailroom
        guard byteCount >= 0, byteCount <= room else {
            throw .noTailroom(needed: byteCount, available: room)
        }
        _count &+= byteCount
    }

    /// Keeps only the first `length` bytes (Ethernet padding after an IP packet).
    @inlinable
    public mutating func truncate(to length: Int) throws(BitsError) {
        try _check(0, length)
        _count = length
    }

    /// Moves the window to `count` bytes at `offset` of the buffer: to build a reply
    /// after a request in the request's own buffer.
    @inlinable
    public mutating func move(toOffset offset: Int, count: Int) throws(BitsError) {
        guard offset >= 0, count >= 0, offset <= buffer.capacity,
            count <= buffer.capacity &- offset
        else {
            throw .truncated(offset: offset, length: count, available: buffer.capacity)
        }
        _offset = offset
        _count = count
    }

    /// Appends a copy of `bytes` after the window, within the tailroom.
    @inlinable
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) throws(BitsError) {
        let at = _count
        try extend(by: bytes.count)
        if let from = bytes.baseAddress, bytes.count > 0 {
            (_start + at).copyMemory(from: from, byteCount: bytes.count)
        }
    }

    /// Appends a copy of `bytes` after the window, within the tailroom.
    @inlinable
    public mutating func append(contentsOf bytes: some Collection<UInt8>) throws(BitsError) {
        let at = _count
        try extend(by: bytes.count)
        let destination = _start + at
        let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
            if let from = source.baseAddress, source.count > 0 {
                destination.copyMemory(from: from, byteCount: source.count)
            }
        }
        if copied == nil {
            var index = 0
            for byte in bytes {
                destination.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
                index &+= 1
            }
        }
    }
}

// MARK: - Reading and writing

extension Packet {
    /// Reads an integer at byte `offset` of the window, big-endian unless told
    /// otherwise; ``BitsError/truncated(offset:length:available:)`` if it does not fit.
    @inlinable
    public func read<T: FixedWidthInteger>(
        _: T.Type = T.self, at offset: Int, byteOrder: ByteOrder = .bigEndian
    ) throws(BitsError) -> T {
        try _check(offset, MemoryLayout<T>.size)
        return _raw.load(T.self, at: offset, byteOrder: byteOrder)
    }

    /// Writes an integer at byte `offset` of the window; nothing is written if it does
    /// not fit.
    @inlinable
    public mutating func write<T: FixedWidthInteger>(
        _ value: T, at offset: Int, byteOrder: ByteOrder = .bigEndian
    ) throws(BitsError) {
        try _check(offset, MemoryLayout<T>.size)
        _raw.store(value, at: offset, byteOrder: byteOrder)
    }

    /// Reads `field`, counting from the start of the window.
    @inlinable
    public func read<Value>(_ field: Field<Value>) throws(BitsError) -> Value {
        try _check(field.byteOffset, field.byteSpan)
        return _raw.load(field)
    }

    /// Writes the low `field.bitWidth` bits of `value` into `field`.
    @inlinable
    public mutating func write<Value>(_ value: Value, to field: Field<Value>) throws(BitsError) {
        try _check(field.byteOffset, field.byteSpan)
        _raw.store(value, to: field)
    }

    /// The window's bytes, borrowed for as long as the packet is: what parsers read.
    public var bytes: RawSpan {
        @_lifetime(borrow self)
        @inlinable get {
            let span = RawSpan(_unsafeBytes: UnsafeRawBufferPointer(start: _start, count: _count))
            return _overrideLifetime(span, borrowing: self)
        }
    }

    /// The window's bytes, writable, for as long as the packet is borrowed mutably:
    /// what header writers write through.
    public var mutableBytes: MutableRawSpan {
        @_lifetime(&self)
        @inlinable mutating get {
            let span = MutableRawSpan(
                _unsafeBytes: UnsafeMutableRawBufferPointer(start: _start, count: _count))
            return _overrideLifetime(span, mutating: &self)
        }
    }

    /// Calls `body` with the window's bytes. The pointer must not escape `body`.
    @inlinable
    public func withUnsafeBytes<Result: ~Copyable, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeRawBufferPointer(start: _start, count: _count))
    }

    /// Calls `body` with the window's bytes, writable. The pointer must not escape.
    @inlinable
    public mutating func withUnsafeMutableBytes<Result: ~Copyable, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try body(UnsafeMutableRawBufferPointer(start: _start, count: _count))
    }

    /// Lets `body` fill the tailroom (a device's `read`) and extends the window by the
    /// number of bytes it returns; a result outside `0...tailroom` is a programming
    /// error in `body`.
    @inlinable
    public mutating func withUnsafeMutableTailroom<Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Int
    ) throws(Failure) {
        let room = tailroom
        let written = try body(UnsafeMutableRawBufferPointer(start: _start + _count, count: room))
        precondition(written >= 0 && written <= room, "wrote outside the tailroom")
        _count &+= written
    }

    /// A copy of the window's bytes in a new array (allocates).
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// A copy of the packet in a buffer of `pool`, with the pool's headroom in front:
    /// the one way to have two packets of the same bytes. The copy keeps the packet's
    /// ``offload``.
    @inlinable
    public func copy(into pool: BufferPool) throws(BitsError) -> Packet {
        var copy = try pool.allocatePacket()
        try withUnsafeBytes { (bytes) throws(BitsError) in try copy.append(contentsOf: bytes) }
        copy.offload = offload
        return copy
    }
}

extension Bits {
    /// The packet's bytes as a copyable view, taking over its buffer reference: no
    /// retain.
    @inlinable
    public init(_ packet: consuming Packet) {
        let offset = packet._offset
        let count = packet._count
        self.init(unchecked: packet.buffer, offset: offset, count: count)
    }

    /// The view's bytes, borrowed for as long as the view is.
    public var bytes: RawSpan {
        @_lifetime(borrow self)
        @inlinable get {
            let span = RawSpan(_unsafeBytes: UnsafeRawBufferPointer(start: _start, count: _count))
            return _overrideLifetime(span, borrowing: self)
        }
    }
}

extension BufferPool {
    /// An empty packet at `headroom` bytes into a free buffer, the rest of the buffer
    /// as tailroom; ``BitsError/poolExhausted(limit:)`` if every buffer is in use.
    public func allocatePacket() throws(BitsError) -> Packet {
        let buffer = try takeFreeBuffer()
        return Packet(unchecked: buffer, offset: headroom, count: 0)
    }
}

extension Packet {
    /// The window's geometry and up to its first 64 bytes in hexadecimal (a packet
    /// cannot conform to `CustomStringConvertible`, which asks for copies).
    public var description: String {
        "Packet" + bits.description.dropFirst("Bits".count)
    }
}
