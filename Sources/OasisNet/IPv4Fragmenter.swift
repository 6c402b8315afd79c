import OasisBits
import OasisWire

/// Splits a datagram larger than the link MTU into fragments (RFC 791 §3.2, "An Example
/// Fragmentation Procedure"), one at a time into buffers the caller provides.
///
/// ```swift
/// var fragmenter = try IPv4Fragmenter(header: ip, payload: data, mtu: 1500)
/// while !fragmenter.isFinished {
///     var frame = try pool.allocate()          // empty, with headroom
///     try fragmenter.nextFragment(into: &frame) // frame is now one IPv4 packet
///     try ethernet.emit(prependingTo: &frame)
/// }
/// ```
///
/// Every fragment but the last carries a multiple of 8 bytes; each has its own
/// header, offset, MF flag and checksum. Headers are emitted without options. The
/// payload bytes are copied (they cannot stay in place: each fragment needs a header
/// in front of its slice).
public struct IPv4Fragmenter {
    /// What was wrong with a request to fragment.
    public enum Failure: Error, Hashable, Sendable {
        /// The MTU leaves no room for 8 bytes of data after a 20-byte header (RFC 791
        /// requires every link to carry 68 bytes).
        case mtuTooSmall(Int)
        /// DF is set and the datagram does not fit (RFC 1191: the sender should get
        /// ICMP "fragmentation needed").
        case dontFragment(mtu: Int)
        /// The buffer given to ``nextFragment(into:)`` had no room.
        case buffer(BitsError)
    }

    /// The header every fragment is derived from.
    public let header: IPv4Repr
    /// The datagram's payload.
    public let payload: Bits
    /// The largest data per fragment: (MTU − 20) rounded down to a multiple of 8.
    public let dataPerFragment: Int
    /// Bytes of `payload` already sent.
    public private(set) var offset = 0

    /// Prepares to fragment `payload` under `header` for a link of `mtu` bytes. A
    /// datagram that fits yields one unfragmented packet.
    public init(header: IPv4Repr, payload: Bits, mtu: Int) throws(Failure) {
        let room = mtu - IPv4Header.size
        guard room >= 8 else { throw .mtuTooSmall(mtu) }
        if header.dontFragment && payload.count > room { throw .dontFragment(mtu: mtu) }
        self.header = header
        self.payload = payload
        self.dataPerFragment = payload.count <= room ? max(room, payload.count) : room & ~7
    }

    /// Whether every fragment has been produced.
    public var isFinished: Bool { started && offset >= payload.count }

    private var started = false

    /// ``nextFragment(into:)-(Packet)`` for a copyable view.
    public mutating func nextFragment(into bits: inout Bits) throws(Failure) {
        var packet = Packet(bits)
        let outcome: Result<Void, Failure>
        do throws(Failure) {
            try nextFragment(into: &packet)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        bits = Bits(packet)
        try outcome.get()
    }

    /// Appends the next fragment's data to `packet` (an empty one with headroom for
    /// 20 bytes and more) and prepends its header; `packet` becomes the fragment.
    public mutating func nextFragment(into packet: inout Packet) throws(Failure) {
        let length = min(dataPerFragment, payload.count - offset)
        do {
            let slice = try payload.slice(from: offset, length: length)
            try slice.withUnsafeBytes { (bytes) throws(BitsError) in
                try packet.append(contentsOf: bytes)
            }
        } catch {
            throw .buffer(error)
        }
        var fragment = header
        fragment.fragmentOffset = header.fragmentOffset + offset
        fragment.moreFragments = header.moreFragments || offset + length < payload.count
        fragment.payloadLength = length
        do {
            try fragment.emit(prependingTo: &packet)
        } catch {
            // A fragment is at most an MTU long: only the buffer can fail.
            if case .buffer(let bits) = error { throw .buffer(bits) }
            throw .mtuTooSmall(dataPerFragment)
        }
        offset += length
        started = true
    }
}
