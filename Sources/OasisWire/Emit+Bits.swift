// The emitters for copyable views: each turns the view into a `Packet` (taking over
// its buffer reference, no copy), emits, and turns it back. For tools, tests and
// anything off the data path that holds `Bits`; the data path emits into `Packet`s.

import OasisBits

extension Bits {
    /// Lends the view's window to `body` as a ``Packet``, then takes back the window
    /// `body` left it at.
    @inlinable
    public mutating func withPacket<Failure: Error>(
        _ body: (inout Packet) throws(Failure) -> Void
    ) throws(Failure) {
        var packet = Packet(self)
        let outcome: Result<Void, Failure>
        do throws(Failure) {
            try body(&packet)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        self = Bits(packet)
        try outcome.get()
    }
}

extension EthernetRepr {
    /// ``emit(prependingTo:)-(Packet)`` for a copyable view.
    @inlinable
    public func emit(prependingTo bits: inout Bits) throws(EthernetError) {
        try bits.withPacket { (packet) throws(EthernetError) in try emit(prependingTo: &packet) }
    }
}

extension ArpRepr {
    /// ``emit(prependingTo:)-(Packet)`` for a copyable view.
    @inlinable
    public func emit(prependingTo bits: inout Bits) throws(ArpError) {
        try bits.withPacket { (packet) throws(ArpError) in try emit(prependingTo: &packet) }
    }
}

extension IPv4Repr {
    /// ``emit(prependingTo:)-(Packet)`` for a copyable view.
    @inlinable
    public func emit(prependingTo bits: inout Bits) throws(IPv4Error) {
        try bits.withPacket { (packet) throws(IPv4Error) in try emit(prependingTo: &packet) }
    }
}

extension ICMPv4Repr {
    /// ``emit(prependingTo:)-(Packet)`` for a copyable view.
    @inlinable
    public func emit(prependingTo bits: inout Bits) throws(ICMPv4Error) {
        try bits.withPacket { (packet) throws(ICMPv4Error) in try emit(prependingTo: &packet) }
    }
}

extension UDPRepr {
    /// ``emit(prependingTo:source:destination:)-(Packet,_,_)`` for a copyable view.
    @inlinable
    public func emit(
        prependingTo bits: inout Bits, source: IPv4Address, destination: IPv4Address
    ) throws(UDPError) {
        try bits.withPacket { (packet) throws(UDPError) in
            try emit(prependingTo: &packet, source: source, destination: destination)
        }
    }
}

extension TCPRepr {
    /// ``emit(prependingTo:source:destination:checksum:)-(Packet,_,_,_)`` for a copyable
    /// view.
    @inlinable
    public func emit(
        prependingTo bits: inout Bits, source: IPv4Address, destination: IPv4Address,
        checksum mode: ChecksumMode = .compute
    ) throws(TCPError) {
        try bits.withPacket { (packet) throws(TCPError) in
            try emit(
                prependingTo: &packet, source: source, destination: destination, checksum: mode)
        }
    }
}
