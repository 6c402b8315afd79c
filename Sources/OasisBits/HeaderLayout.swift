/// A header declared once: its fields, its size and the constants it must carry.
///
/// A layout is a caseless enum of `static let` ``Field``s. From it you get the parser
/// (``Bits/header(_:)``: checks the length and the constants once), non-throwing field
/// accessors on the resulting ``Header``, and writers (``Bits/prependHeader(_:)`` and
/// ``Bits/appendHeader(_:)``). It reads like the OCaml seed's
/// `bitmatch bits with { 1:8:int; t:8; len:16; xid:32 }`:
///
/// ```swift
/// enum OpenFlowHeader: HeaderLayout {
///     static let version = Field<UInt8>.first()
///     static let type    = Field<UInt8>.after(version)
///     static let length  = Field<UInt16>.after(type)
///     static let xid     = Field<UInt32>.after(length)
///     static let size    = xid.end                                   // 8 bytes
///     static let constants: [Constant] = [.init(version, equals: 1)]
/// }
///
/// let h = try bits.header(OpenFlowHeader.self)   // throws BitsError on short or v4 input
/// let xid = h[OpenFlowHeader.xid]                // no throw: the length was checked
/// ```
///
/// Nothing here looks anything up by name: fields are offsets computed when the enum's
/// statics are first touched, and generic code over a layout specialises to plain loads.
public protocol HeaderLayout {
    /// The fixed size of the header in bytes; every field of the layout must end
    /// within it. Usually the ``Field/end`` of the last field.
    static var size: Int { get }

    /// Values that fields must hold for the bytes to be this header (a version number,
    /// a type code). ``Bits/header(_:)`` checks them in order; the writers put them in.
    static var constants: [Constant] { get }
}

extension HeaderLayout {
    /// No constants, unless the layout declares some.
    @inlinable public static var constants: [Constant] { [] }
}

/// A field of a header that must hold one value, such as OpenFlow's `version == 1`.
public struct Constant: Hashable, Sendable {
    /// The offset of the field's first bit from the start of the header.
    public let bitOffset: Int
    /// The width of the field in bits.
    public let bitWidth: Int
    /// The byte order of the field.
    public let byteOrder: ByteOrder
    /// The field's required bits, in the low end.
    public let value: UInt64

    /// `field` must hold `value`.
    @inlinable
    public init<Value>(_ field: Field<Value>, equals value: Value) {
        self.bitOffset = field.bitOffset
        self.bitWidth = field.bitWidth
        self.byteOrder = field.byteOrder
        self.value = field._raw(fromValue: value)
    }

    @inlinable internal var _byteOffset: Int { bitOffset >> 3 }
    @inlinable internal var _byteSpan: Int { ((bitOffset + bitWidth + 7) >> 3) - _byteOffset }
}

/// A view that has been checked to start with a `Layout` header.
///
/// Made by ``Bits/header(_:)`` (parsing) or by ``Bits/prependHeader(_:)`` and
/// ``Bits/appendHeader(_:)`` (writing). Its view is at least `Layout.size` bytes long,
/// so its field accessors neither throw nor look at the length again.
///
/// ```swift
/// var h = try packet.prependHeader(OpenFlowHeader.self)
/// h[OpenFlowHeader.type] = 0                    // OFPT_HELLO
/// h[OpenFlowHeader.length] = UInt16(h.bits.count)
/// h[OpenFlowHeader.xid] = 42
/// ```
///
/// The subscript accepts any ``Field``; one that reaches past `Layout.size` belongs to
/// another layout and is a programming error that traps on every call — whatever the
/// bytes are — so the first test that touches it finds it. No packet can make it trap.
public struct Header<Layout: HeaderLayout> {
    @usableFromInline internal var _bits: Bits

    @inlinable
    internal init(unchecked bits: Bits) {
        self._bits = bits
    }

    /// The view the header was found in or written to: the header and everything after
    /// it (options, payload). At least `Layout.size` bytes.
    @inlinable public var bits: Bits { _bits }

    /// The bytes after the fixed `Layout.size` bytes of the header.
    @inlinable
    public var payload: Bits {
        let size = Layout.size
        return Bits(
            unchecked: _bits.buffer, offset: _bits._offset + size, count: _bits._count - size)
    }

    /// The value of `field`; writing keeps only its low `field.bitWidth` bits.
    @inlinable
    public subscript<Value>(field: Field<Value>) -> Value {
        @inline(__always) get {
            precondition(field.endBit <= Layout.size &* 8, "Field lies outside this header")
            return _bits._load(field)
        }
        set {
            precondition(field.endBit <= Layout.size &* 8, "Field lies outside this header")
            _bits._store(newValue, to: field)
        }
    }
}

extension Bits {
    /// Checks that the view starts with a `Layout` header — long enough, and with
    /// every one of `Layout.constants` in place — and returns it as a ``Header``.
    ///
    /// Fails with ``BitsError/truncated(offset:length:available:)`` if the view is
    /// shorter than `Layout.size`, or ``BitsError/constantMismatch(bitOffset:bitWidth:expected:found:)``
    /// for the first constant that does not hold.
    @inlinable @inline(__always)
    public func header<Layout: HeaderLayout>(_: Layout.Type) throws(BitsError) -> Header<Layout> {
        let size = Layout.size
        guard size >= 0, size <= _count else {
            throw .truncated(offset: 0, length: size, available: _count)
        }
        for constant in Layout.constants {
            try _check(constant._byteOffset, constant._byteSpan)
            let found = _loadRaw(constant.bitOffset, constant.bitWidth, constant.byteOrder)
            if found != constant.value {
                throw .constantMismatch(
                    bitOffset: constant.bitOffset, bitWidth: constant.bitWidth,
                    expected: constant.value, found: found)
            }
        }
        return Header(unchecked: self)
    }

    /// Moves the start of the view back `Layout.size` bytes into the headroom, zeroes
    /// them, writes `Layout.constants` and returns the new header over the whole view
    /// (header and what was already there). Set the other fields through the result.
    ///
    /// Fails with ``BitsError/noHeadroom(needed:available:)`` if the buffer has no room.
    @inlinable
    public mutating func prependHeader<Layout: HeaderLayout>(
        _: Layout.Type
    ) throws(BitsError) -> Header<Layout> {
        try prepend(Layout.size)
        return _initialiseHeader(Layout.self, at: 0)
    }

    /// Extends the view by `Layout.size` bytes into the tailroom, zeroes them, writes
    /// `Layout.constants` and returns the header over the new bytes (building a packet
    /// front to back).
    ///
    /// Fails with ``BitsError/noTailroom(needed:available:)`` if the buffer has no room.
    @inlinable
    public mutating func appendHeader<Layout: HeaderLayout>(
        _: Layout.Type
    ) throws(BitsError) -> Header<Layout> {
        let start = _count
        try extend(by: Layout.size)
        return _initialiseHeader(Layout.self, at: start)
    }

    @inlinable
    internal func _initialiseHeader<Layout: HeaderLayout>(
        _: Layout.Type, at start: Int
    ) -> Header<Layout> {
        let size = Layout.size
        (_start + start).initializeMemory(as: UInt8.self, repeating: 0, count: size)
        let header = Bits(unchecked: buffer, offset: _offset + start, count: _count - start)
        for constant in Layout.constants where constant._byteOffset + constant._byteSpan <= size {
            header._storeRaw(
                constant.value, constant.bitOffset, constant.bitWidth, constant.byteOrder)
        }
        return Header(unchecked: header)
    }
}
