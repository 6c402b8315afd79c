// Whole integers at byte offsets. Sub-byte fields go through `Field` (Field.swift).

extension Bits {
    /// Reads an integer of type `T` at byte `offset` of the view, big-endian unless
    /// `byteOrder` says otherwise.
    ///
    /// ```swift
    /// let etherType = try frame.read(UInt16.self, at: 12)
    /// let id: UInt32 = try ring.read(at: 8, byteOrder: .littleEndian)
    /// ```
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` if the integer does
    /// not fit inside the view.
    @inlinable
    public func read<T: FixedWidthInteger>(
        _: T.Type = T.self, at offset: Int, byteOrder: ByteOrder = .bigEndian
    ) throws(BitsError) -> T {
        try _check(offset, MemoryLayout<T>.size)
        return _load(T.self, at: offset, byteOrder: byteOrder)
    }

    /// Writes `value` at byte `offset` of the view, big-endian unless `byteOrder` says
    /// otherwise.
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` if the integer does
    /// not fit inside the view; nothing is written then.
    @inlinable
    public mutating func write<T: FixedWidthInteger>(
        _ value: T, at offset: Int, byteOrder: ByteOrder = .bigEndian
    ) throws(BitsError) {
        try _check(offset, MemoryLayout<T>.size)
        _store(value, at: offset, byteOrder: byteOrder)
    }

    /// Loads without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func _load<T: FixedWidthInteger>(
        _: T.Type, at offset: Int, byteOrder: ByteOrder
    ) -> T {
        _raw.load(T.self, at: offset, byteOrder: byteOrder)
    }

    /// Stores without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func _store<T: FixedWidthInteger>(_ value: T, at offset: Int, byteOrder: ByteOrder) {
        _raw.store(value, at: offset, byteOrder: byteOrder)
    }
}
