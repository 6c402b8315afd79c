// MAC and IPv4 addresses read from and written to every kind of byte view.

import OasisBits

extension RawSpan {
    /// The MAC address at byte `offset`; ``BitsError/truncated(offset:length:available:)``
    /// if its six bytes do not fit.
    @inlinable
    public func readMAC(at offset: Int) throws(BitsError) -> MACAddress {
        MACAddress(rawValue: try read(Field<UInt64>.at(byte: offset, bits: 48)))
    }

    /// The MAC address at byte `offset`, which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript(mac offset: Int) -> MACAddress {
        MACAddress(rawValue: self[Field<UInt64>.at(byte: offset, bits: 48)])
    }

    /// The IPv4 address at byte `offset`, which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript(ipv4 offset: Int) -> IPv4Address {
        IPv4Address(rawValue: self[UInt32.self, at: offset])
    }
}

extension MutableRawSpan {
    /// The MAC address at byte `offset`, which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript(mac offset: Int) -> MACAddress {
        get { MACAddress(rawValue: self[Field<UInt64>.at(byte: offset, bits: 48)]) }
        set { self[Field<UInt64>.at(byte: offset, bits: 48)] = newValue.rawValue }
    }

    /// The IPv4 address at byte `offset`, which the caller has proven fits.
    @inlinable @inline(__always)
    public subscript(ipv4 offset: Int) -> IPv4Address {
        get { IPv4Address(rawValue: self[UInt32.self, at: offset]) }
        set { self[UInt32.self, at: offset] = newValue.rawValue }
    }
}

extension Bits {
    /// Reads a MAC address at byte `offset` of the view.
    @inlinable
    public func readMAC(at offset: Int) throws(BitsError) -> MACAddress {
        MACAddress(rawValue: try read(Field<UInt64>.at(byte: offset, bits: 48)))
    }

    /// Writes a MAC address at byte `offset` of the view.
    @inlinable
    public mutating func writeMAC(_ address: MACAddress, at offset: Int) throws(BitsError) {
        try write(address.rawValue, to: Field<UInt64>.at(byte: offset, bits: 48))
    }

    /// Reads an IPv4 address at byte `offset` of the view.
    @inlinable
    public func readIPv4(at offset: Int) throws(BitsError) -> IPv4Address {
        IPv4Address(rawValue: try read(UInt32.self, at: offset))
    }

    /// Writes an IPv4 address at byte `offset` of the view.
    @inlinable
    public mutating func writeIPv4(_ address: IPv4Address, at offset: Int) throws(BitsError) {
        try write(address.rawValue, at: offset)
    }
}

extension Packet {
    /// Reads a MAC address at byte `offset` of the packet.
    @inlinable
    public func readMAC(at offset: Int) throws(BitsError) -> MACAddress {
        MACAddress(rawValue: try read(Field<UInt64>.at(byte: offset, bits: 48)))
    }

    /// Writes a MAC address at byte `offset` of the packet.
    @inlinable
    public mutating func writeMAC(_ address: MACAddress, at offset: Int) throws(BitsError) {
        try write(address.rawValue, to: Field<UInt64>.at(byte: offset, bits: 48))
    }

    /// Reads an IPv4 address at byte `offset` of the packet.
    @inlinable
    public func readIPv4(at offset: Int) throws(BitsError) -> IPv4Address {
        IPv4Address(rawValue: try read(UInt32.self, at: offset))
    }

    /// Writes an IPv4 address at byte `offset` of the packet.
    @inlinable
    public mutating func writeIPv4(_ address: IPv4Address, at offset: Int) throws(BitsError) {
        try write(address.rawValue, at: offset)
    }
}

extension RawSpan {
    /// The big-endian integer at `offset`, which the view reading it has proven lies
    /// inside (checked again by the span, cheaply): what views' getters are built on,
    /// with the field's offset written out from its layout.
    @inlinable @inline(__always)
    internal func _bigEndian<T: FixedWidthInteger & BitwiseCopyable>(_: T.Type, at offset: Int) -> T
    {
        T(bigEndian: unsafeLoadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
