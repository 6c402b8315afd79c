// Fields and integers read from spans: the borrowed bytes parsers work on.
//
// `RawSpan` is a bounds-checked borrow of memory that costs no reference count, so a
// parser that takes one (or a view built on one) reads a frame where it lies without
// retaining its buffer. These are the same `Field` reads as on `Bits` and `Packet`.

extension RawSpan {
    /// Reads an integer at byte `offset`, big-endian unless told otherwise;
    /// ``BitsError/truncated(offset:length:available:)`` if it does not fit.
    @inlinable
    public func read<T: FixedWidthInteger>(
        _: T.Type = T.self, at offset: Int, byteOrder: ByteOrder = .bigEndian
    ) throws(BitsError) -> T {
        try _checkRange(offset, MemoryLayout<T>.size)
        return _withRaw { $0.load(T.self, at: offset, byteOrder: byteOrder) }
    }

    /// Reads `field`, counting from the first byte of the span;
    /// ``BitsError/truncated(offset:length:available:)`` if it lies outside.
    @inlinable
    public func read<Value>(_ field: Field<Value>) throws(BitsError) -> Value {
        try _checkRange(field.byteOffset, field.byteSpan)
        return _withRaw { $0.load(field) }
    }

    /// The value of `field`, which the caller has proven lies inside the span (a view
    /// that checked the header's length when it was made). A field outside is a
    /// programming error and traps whatever the bytes, like ``Header``'s subscript.
    @inlinable @inline(__always)
    public subscript<Value>(field: Field<Value>) -> Value {
        precondition(field.byteOffset &+ field.byteSpan <= byteCount, "Field lies outside the span")
        return _withRaw { $0.load(field) }
    }

    /// The integer at `offset`, which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        precondition(
            offset >= 0 && offset &+ MemoryLayout<T>.size <= byteCount, "read outside the span")
        return _withRaw { $0.load(T.self, at: offset, byteOrder: .bigEndian) }
    }

    /// Fails unless `length` bytes at `offset` lie inside the span.
    @inlinable @inline(__always)
    internal func _checkRange(_ offset: Int, _ length: Int) throws(BitsError) {
        guard offset >= 0, length >= 0, offset <= byteCount, length <= byteCount &- offset else {
            throw .truncated(offset: offset, length: length, available: byteCount)
        }
    }

    @inlinable @inline(__always)
    internal func _withRaw<Result>(_ body: (_RawBytes) -> Result) -> Result {
        withUnsafeBytes { bytes in
            body(
                _RawBytes(
                    start: UnsafeMutableRawPointer(
                        mutating: bytes.baseAddress ?? UnsafeRawPointer(_emptyAddress)),
                    count: bytes.count))
        }
    }
}

extension MutableRawSpan {
    /// The value of `field`, which the caller has proven lies inside the span; writing
    /// keeps only its low `field.bitWidth` bits and leaves its neighbours' bits alone.
    @inlinable @inline(__always)
    public subscript<Value>(field: Field<Value>) -> Value {
        get {
            precondition(
                field.byteOffset &+ field.byteSpan <= byteCount, "Field lies outside the span")
            return withUnsafeBytes { bytes in
                _RawBytes(
                    start: UnsafeMutableRawPointer(
                        mutating: bytes.baseAddress ?? UnsafeRawPointer(_emptyAddress)),
                    count: bytes.count
                ).load(field)
            }
        }
        set {
            precondition(
                field.byteOffset &+ field.byteSpan <= byteCount, "Field lies outside the span")
            withUnsafeMutableBytes { bytes in
                _RawBytes(start: bytes.baseAddress ?? _emptyAddress, count: bytes.count)
                    .store(newValue, to: field)
            }
        }
    }

    /// The integer at `offset` (big-endian), which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        get {
            precondition(
                offset >= 0 && offset &+ MemoryLayout<T>.size <= byteCount, "read outside the span")
            return withUnsafeBytes { bytes in
                _RawBytes(
                    start: UnsafeMutableRawPointer(
                        mutating: bytes.baseAddress ?? UnsafeRawPointer(_emptyAddress)),
                    count: bytes.count
                ).load(T.self, at: offset, byteOrder: .bigEndian)
            }
        }
        set {
            precondition(
                offset >= 0 && offset &+ MemoryLayout<T>.size <= byteCount, "write outside the span"
            )
            withUnsafeMutableBytes { bytes in
                _RawBytes(start: bytes.baseAddress ?? _emptyAddress, count: bytes.count)
                    .store(newValue, at: offset, byteOrder: .bigEndian)
            }
        }
    }
}

/// A non-null address for an empty span's (unused) start.
@usableFromInline
nonisolated(unsafe) internal let _emptyAddress = UnsafeMutableRawPointer.allocate(
    byteCount: 8, alignment: 8)

// Big-endian integers through raw pointers: what header writers use once they hold the
// bytes they checked (`Packet.withUnsafeMutableBytes`), one store per field.

extension UnsafeMutableRawPointer {
    /// Stores `value` big-endian at `offset`, unaligned.
    @inlinable @inline(__always)
    public func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawPointer {
    /// The big-endian integer at `offset`, unaligned.
    @inlinable @inline(__always)
    public func loadBigEndian<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
