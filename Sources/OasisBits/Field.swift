/// Where an integer sits in a header: a bit offset, a bit width and a byte order.
///
/// `Field` is the one mechanism for every field of every header, whole bytes or not:
/// IPv4's 4-bit version and IHL, its 3-bit flags and 13-bit fragment offset, TCP's
/// flag bits, DNS's opcode and rcode, OpenFlow's 32-bit `xid`. Declare a field once,
/// as a `static let`, relative to the start of its header:
///
/// ```swift
/// enum IPv4Header: HeaderLayout {
///     static let version        = Field<UInt8>.first(bits: 4)
///     static let ihl            = Field<UInt8>.after(version, bits: 4)
///     static let dscpECN        = Field<UInt8>.after(ihl)
///     static let totalLength    = Field<UInt16>.after(dscpECN)
///     static let identification = Field<UInt16>.after(totalLength)
///     static let flags          = Field<UInt8>.after(identification, bits: 3)
///     static let fragmentOffset = Field<UInt16>.after(flags, bits: 13)
///     // …
/// }
/// let ihl = try packet.read(IPv4Header.ihl)
/// ```
///
/// Bits are numbered from the most significant bit of the first byte, as RFC diagrams
/// draw them, and a big-endian field may start and end anywhere. A little-endian field
/// must be whole bytes at a byte boundary, because "little-endian bit 3" means
/// different things to different compilers. Reading a field narrower than `Value`
/// gives its bits in the low end of `Value` (sign-extended when `Value` is signed);
/// writing keeps only the low `bitWidth` bits of the value, as a C bit field does.
///
/// A field's geometry is fixed when it is declared; an impossible declaration (a width
/// of zero or wider than `Value` or 64 bits, a negative offset, an unaligned
/// little-endian field) is a programming error and traps at the declaration, never
/// on a packet.
public struct Field<Value: FixedWidthInteger>: Hashable, Sendable {
    /// The offset of the field's first (most significant) bit from the start of the
    /// header, in bits.
    public let bitOffset: Int

    /// The number of bits in the field, `1...min(Value.bitWidth, 64)`.
    public let bitWidth: Int

    /// The order of the field's bytes; `.littleEndian` only for whole, aligned bytes.
    public let byteOrder: ByteOrder

    /// A field of `bitWidth` bits (all of `Value` by default) at `bitOffset`.
    @inlinable
    public init(bitOffset: Int, bitWidth: Int = Value.bitWidth, byteOrder: ByteOrder = .bigEndian) {
        precondition(bitOffset >= 0, "a Field starts at a non-negative bit offset")
        precondition(
            bitWidth >= 1 && bitWidth <= Value.bitWidth && bitWidth <= 64,
            "a Field is 1...min(Value.bitWidth, 64) bits wide")
        precondition(
            byteOrder == .bigEndian || (bitOffset % 8 == 0 && bitWidth % 8 == 0),
            "a little-endian Field must be whole bytes at a byte boundary")
        self.bitOffset = bitOffset
        self.bitWidth = bitWidth
        self.byteOrder = byteOrder
    }

    /// The field at the very start of a header: `bits` bits (all of `Value` by default)
    /// at bit 0.
    @inlinable
    public static func first(bits: Int = Value.bitWidth, byteOrder: ByteOrder = .bigEndian)
        -> Field
    {
        Field(bitOffset: 0, bitWidth: bits, byteOrder: byteOrder)
    }

    /// The field that starts right after `previous` (after `skippingBytes` bytes of
    /// padding, if any): `bits` bits, all of `Value` by default.
    @inlinable
    public static func after<Previous>(
        _ previous: Field<Previous>, skippingBytes: Int = 0, bits: Int = Value.bitWidth,
        byteOrder: ByteOrder = .bigEndian
    ) -> Field {
        Field(bitOffset: previous.endBit + 8 * skippingBytes, bitWidth: bits, byteOrder: byteOrder)
    }

    /// The field that starts at byte `byte` of the header (`bit` bits further in, if
    /// given): `bits` bits, all of `Value` by default.
    @inlinable
    public static func at(
        byte: Int, bit: Int = 0, bits: Int = Value.bitWidth, byteOrder: ByteOrder = .bigEndian
    ) -> Field {
        Field(bitOffset: 8 * byte + bit, bitWidth: bits, byteOrder: byteOrder)
    }

    /// The offset of the byte that holds the field's first bit.
    @inlinable public var byteOffset: Int { bitOffset >> 3 }

    /// The offset of the bit just after the field.
    @inlinable public var endBit: Int { bitOffset + bitWidth }

    /// The offset of the byte just after the field, rounded up: a header that ends
    /// with this field is `end` bytes long.
    @inlinable public var end: Int { (endBit + 7) >> 3 }

    /// The number of bytes the field touches, from ``byteOffset`` to ``end``.
    @inlinable public var byteSpan: Int { end - byteOffset }

    /// Whether the field is exactly a whole `Value` at a byte boundary: the fast path.
    @inlinable
    internal var _isWholeAlignedValue: Bool {
        bitOffset & 7 == 0 && bitWidth == Value.bitWidth
    }

    /// `raw` (the field's bits, in the low end) as a `Value`, sign-extended if signed.
    @inlinable @inline(__always)
    internal func _value(fromRaw raw: UInt64) -> Value {
        if Value.isSigned && bitWidth < 64 {
            let shift = UInt64(64 - bitWidth)
            return Value(truncatingIfNeeded: Int64(bitPattern: raw &<< shift) &>> shift)
        }
        return Value(truncatingIfNeeded: raw)
    }

    /// The low `bitWidth` bits of `value`.
    @inlinable @inline(__always)
    internal func _raw(fromValue value: Value) -> UInt64 {
        UInt64(truncatingIfNeeded: value) & _mask(bitWidth)
    }
}

/// The low `width` bits set, for `width` in `1...64`.
@inlinable @inline(__always)
internal func _mask(_ width: Int) -> UInt64 {
    UInt64.max &>> UInt64(64 - width)
}

// MARK: - Reading and writing fields

extension Bits {
    /// Reads `field`, counting its offset from the start of this view.
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` (in bytes: the bytes
    /// the field touches) if the field does not lie inside the view.
    @inlinable
    public func read<Value>(_ field: Field<Value>) throws(BitsError) -> Value {
        try _check(field.byteOffset, field.byteSpan)
        return _load(field)
    }

    /// Writes the low `field.bitWidth` bits of `value` into `field`, leaving the other
    /// bits of the bytes it shares with its neighbours as they were.
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` if the field does
    /// not lie inside the view; nothing is written then.
    @inlinable
    public mutating func write<Value>(_ value: Value, to field: Field<Value>) throws(BitsError) {
        try _check(field.byteOffset, field.byteSpan)
        _store(value, to: field)
    }

    /// The view's bytes for the unchecked loads and stores below.
    @inlinable @inline(__always)
    internal var _raw: _RawBytes { _RawBytes(start: _start, count: _count) }

    /// Reads a field without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func _load<Value>(_ field: Field<Value>) -> Value { _raw.load(field) }

    /// Writes a field without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func _store<Value>(_ value: Value, to field: Field<Value>) {
        _raw.store(value, to: field)
    }

    /// The `width` bits at `bitOffset`, in the low end; the caller has checked.
    @inlinable @inline(__always)
    internal func _loadRaw(_ bitOffset: Int, _ width: Int, _ order: ByteOrder) -> UInt64 {
        _raw.loadRaw(bitOffset, width, order)
    }

    /// Stores the low `width` bits of `raw` at `bitOffset`; the caller has checked.
    @inlinable @inline(__always)
    internal func _storeRaw(_ raw: UInt64, _ bitOffset: Int, _ width: Int, _ order: ByteOrder) {
        _raw.storeRaw(raw, bitOffset, width, order)
    }
}

/// A start address and a byte count that the caller has already checked: the
/// unchecked loads and stores every view type (``Bits``, ``Packet``, `RawSpan`)
/// shares, so that the field logic exists once.
@usableFromInline
internal struct _RawBytes {
    @usableFromInline let start: UnsafeMutableRawPointer
    @usableFromInline let count: Int

    @inlinable @inline(__always)
    init(start: UnsafeMutableRawPointer, count: Int) {
        self.start = start
        self.count = count
    }

    /// Reads a field without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func load<Value>(_ field: Field<Value>) -> Value {
        if field._isWholeAlignedValue {
            return load(Value.self, at: field.byteOffset, byteOrder: field.byteOrder)
        }
        return field._value(fromRaw: loadRaw(field.bitOffset, field.bitWidth, field.byteOrder))
    }

    /// Writes a field without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func store<Value>(_ value: Value, to field: Field<Value>) {
        if field._isWholeAlignedValue {
            store(value, at: field.byteOffset, byteOrder: field.byteOrder)
            return
        }
        storeRaw(field._raw(fromValue: value), field.bitOffset, field.bitWidth, field.byteOrder)
    }

    /// The `width` bits at `bitOffset` (in `1...64`, inside the view), in the low end.
    ///
    /// The common case — big-endian, covered by one 64-bit load inside the view — is
    /// inlined, so that with a field's constants it folds to a load and two shifts;
    /// the rest is out of line.
    @inlinable @inline(__always)
    internal func loadRaw(_ bitOffset: Int, _ width: Int, _ order: ByteOrder) -> UInt64 {
        let first = bitOffset &>> 3
        let lead = bitOffset & 7
        if order == .bigEndian && lead &+ width <= 64 && first &+ 8 <= count {
            let word = UInt64(
                bigEndian: UnsafeRawPointer(start).loadUnaligned(
                    fromByteOffset: first, as: UInt64.self))
            return (word &<< UInt64(lead)) &>> UInt64(64 &- width)
        }
        return loadRawSlow(bitOffset, width, order)
    }

    /// ``loadRaw(_:_:_:)`` for the other cases: little-endian, near the end of the
    /// view, or wider than one load.
    @inlinable
    internal func loadRawSlow(_ bitOffset: Int, _ width: Int, _ order: ByteOrder) -> UInt64 {
        if order == .littleEndian {
            // Whole aligned bytes (Field's precondition), least significant first.
            var value: UInt64 = 0
            let first = bitOffset >> 3
            var index = (width >> 3) - 1
            while index >= 0 {
                value = value &<< 8 | UInt64(byte(first + index))
                index -= 1
            }
            return value
        }
        let first = bitOffset >> 3
        let lead = bitOffset & 7
        if lead + width <= 64 && first + 8 <= count {
            // One unaligned 64-bit load covers the field: move it to the top, then down.
            let word = UInt64(
                bigEndian: UnsafeRawPointer(start).loadUnaligned(
                    fromByteOffset: first, as: UInt64.self))
            return (word &<< UInt64(lead)) &>> UInt64(64 - width)
        }
        if width <= 56 {
            return loadRawBytewise(bitOffset, width)
        }
        // Wide field near the end of the view or straddling nine bytes: two halves.
        let high = loadRawBytewise(bitOffset, width - 32)
        let low = loadRawBytewise(bitOffset + width - 32, 32)
        return high &<< 32 | low
    }

    /// Big-endian bits, one byte at a time; `width <= 56` so they fit with their lead.
    @inlinable
    internal func loadRawBytewise(_ bitOffset: Int, _ width: Int) -> UInt64 {
        let first = bitOffset >> 3
        let lead = bitOffset & 7
        let byteCount = (lead + width + 7) >> 3
        var accumulator: UInt64 = 0
        for index in 0..<byteCount {
            accumulator = accumulator &<< 8 | UInt64(byte(first + index))
        }
        let trailing = byteCount * 8 - lead - width
        return (accumulator &>> UInt64(trailing)) & _mask(width)
    }

    /// Stores the low `width` bits of `raw` at `bitOffset` (inside the view).
    @inlinable
    internal func storeRaw(_ raw: UInt64, _ bitOffset: Int, _ width: Int, _ order: ByteOrder) {
        if order == .littleEndian {
            let first = bitOffset >> 3
            var value = raw
            for index in 0..<(width >> 3) {
                setByte(first + index, UInt8(truncatingIfNeeded: value))
                value = value &>> 8
            }
            return
        }
        let first = bitOffset >> 3
        let lead = bitOffset & 7
        if lead + width <= 64 && first + 8 <= count {
            // Read-modify-write one unaligned 64-bit word; neighbours keep their bits.
            let shift = UInt64(64 - lead - width)
            let mask = _mask(width) &<< shift
            let pointer = start + first
            let word = UInt64(bigEndian: UnsafeRawPointer(pointer).loadUnaligned(as: UInt64.self))
            let updated = (word & ~mask) | ((raw &<< shift) & mask)
            pointer.storeBytes(of: updated.bigEndian, as: UInt64.self)
            return
        }
        if width <= 56 {
            storeRawBytewise(raw, bitOffset, width)
            return
        }
        storeRawBytewise(raw &>> 32, bitOffset, width - 32)
        storeRawBytewise(raw & 0xffff_ffff, bitOffset + width - 32, 32)
    }

    /// Big-endian bits, one byte at a time; `width <= 56`.
    @inlinable
    internal func storeRawBytewise(_ raw: UInt64, _ bitOffset: Int, _ width: Int) {
        let first = bitOffset >> 3
        let lead = bitOffset & 7
        let byteCount = (lead + width + 7) >> 3
        let trailing = UInt64(byteCount * 8 - lead - width)
        var accumulator: UInt64 = 0
        for index in 0..<byteCount {
            accumulator = accumulator &<< 8 | UInt64(byte(first + index))
        }
        let mask = _mask(width) &<< trailing
        accumulator = (accumulator & ~mask) | ((raw &<< trailing) & mask)
        var index = byteCount - 1
        while index >= 0 {
            setByte(first + index, UInt8(truncatingIfNeeded: accumulator))
            accumulator = accumulator &>> 8
            index -= 1
        }
    }

    @inlinable @inline(__always)
    internal func byte(_ offset: Int) -> UInt8 {
        UnsafeRawPointer(start).load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    internal func setByte(_ offset: Int, _ value: UInt8) {
        start.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    /// Loads an integer without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func load<T: FixedWidthInteger>(_: T.Type, at offset: Int, byteOrder: ByteOrder) -> T {
        let raw = UnsafeRawPointer(start).loadUnaligned(fromByteOffset: offset, as: T.self)
        switch byteOrder {
        case .bigEndian: return T(bigEndian: raw)
        case .littleEndian: return T(littleEndian: raw)
        }
    }

    /// Stores an integer without a bounds check; the caller has checked.
    @inlinable @inline(__always)
    internal func store<T: FixedWidthInteger>(_ value: T, at offset: Int, byteOrder: ByteOrder) {
        let raw: T
        switch byteOrder {
        case .bigEndian: raw = value.bigEndian
        case .littleEndian: raw = value.littleEndian
        }
        start.storeBytes(of: raw, toByteOffset: offset, as: T.self)
    }
}
