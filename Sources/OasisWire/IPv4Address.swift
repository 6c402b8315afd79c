import OasisBits

/// An IPv4 address (RFC 791 §2.3), in host order in a `UInt32`.
///
/// ```swift
/// let a = IPv4Address("192.0.2.1")!
/// a.rawValue == 0xc000_0201    // true
/// ```
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address as a number: `192.0.2.1` is `0xc000_0201`.
    public let rawValue: UInt32

    /// The address whose value is `rawValue`.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The address `a.b.c.d`.
    @inlinable
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text: four decimal numbers 0...255, no leading zeros beyond
    /// one digit (so `010` is rejected rather than read as octal or decimal, as
    /// `inet_pton` and `nsd-checkzone` reject it). The one parser of IPv4 text in
    /// Oasis: the command line, the zone files and the tests all come here.
    public init?(_ text: some StringProtocol) {
        var string = String(text)
        guard let parsed = string.withUTF8({ IPv4Address(bytes: $0.span) }) else { return nil }
        self = parsed
    }

    /// Parses dotted-quad text given as its bytes (see ``init(_:)``).
    public init?(bytes: Span<UInt8>) {
        var address: UInt32 = 0
        var parts = 0
        var value: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for index in bytes.indices {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                guard digits > 0, value <= 255, parts < 3 else { return nil }
                address = address << 8 | value
                parts += 1
                value = 0
                digits = 0
                leadingZero = false
            } else {
                let digit = byte &- 0x30
                guard digit < 10, digits < 3, !leadingZero else { return nil }
                leadingZero = digits == 0 && digit == 0
                value = value * 10 + UInt32(digit)
                digits += 1
            }
        }
        guard digits > 0, value <= 255, parts == 3 else { return nil }
        rawValue = address << 8 | value
    }

    /// `0.0.0.0`: "this host" as a source (RFC 1122 §3.2.1.3), an ARP probe's sender.
    @inlinable public static var any: IPv4Address { IPv4Address(rawValue: 0) }

    /// `255.255.255.255`: the limited broadcast address (RFC 919, RFC 1122 §3.2.1.3).
    @inlinable public static var broadcast: IPv4Address { IPv4Address(rawValue: 0xffff_ffff) }

    /// Whether the address is in `224.0.0.0/4` (RFC 5771).
    @inlinable public var isMulticast: Bool { rawValue & 0xf000_0000 == 0xe000_0000 }

    /// Whether the address is `255.255.255.255`.
    @inlinable public var isBroadcast: Bool { rawValue == 0xffff_ffff }

    /// Whether the address is `0.0.0.0`.
    @inlinable public var isUnspecified: Bool { rawValue == 0 }

    /// Whether the address is in `127.0.0.0/8`.
    @inlinable public var isLoopback: Bool { rawValue >> 24 == 127 }

    @inlinable
    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// Dotted-quad text: `192.0.2.1`.
    public var description: String {
        "\(rawValue >> 24).\(rawValue >> 16 & 0xff).\(rawValue >> 8 & 0xff).\(rawValue & 0xff)"
    }
}

/// An address with its subnet: `192.0.2.2/24` (CIDR, RFC 4632 §3.1).
///
/// ```swift
/// let net = IPv4Network("192.0.2.2/24")!
/// net.netmask          // 255.255.255.0
/// net.broadcast        // 192.0.2.255
/// net.contains(IPv4Address("192.0.2.77")!)   // true
/// ```
public struct IPv4Network: Hashable, Sendable, CustomStringConvertible {
    /// The address as written (an interface's own address keeps its host bits).
    public let address: IPv4Address
    /// The number of leading one bits of the netmask, 0...32.
    public let prefixLength: Int

    /// `address/prefixLength`; nil if the prefix length is outside 0...32.
    @inlinable
    public init?(address: IPv4Address, prefixLength: Int) {
        guard (0...32).contains(prefixLength) else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `192.0.2.2/24`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]),
            (1...2).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
            // No leading zero, as in the address itself: `/08` is refused.
            parts[1].count == 1 || parts[1].first != "0",
            let length = Int(parts[1])
        else { return nil }
        self.init(address: address, prefixLength: length)
    }

    /// The netmask: `prefixLength` one bits, then zeros.
    @inlinable
    public var netmask: IPv4Address {
        IPv4Address(rawValue: prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength))
    }

    /// The network address: the address with its host bits cleared.
    @inlinable
    public var networkAddress: IPv4Address {
        IPv4Address(rawValue: address.rawValue & netmask.rawValue)
    }

    /// The directed broadcast address: the host bits all set (RFC 919, RFC 1122
    /// §3.2.1.3).
    @inlinable
    public var broadcast: IPv4Address {
        IPv4Address(rawValue: address.rawValue | ~netmask.rawValue)
    }

    /// Whether `other` is inside this network.
    @inlinable
    public func contains(_ other: IPv4Address) -> Bool {
        other.rawValue & netmask.rawValue == address.rawValue & netmask.rawValue
    }

    /// `192.0.2.2/24`.
    public var description: String { "\(address)/\(prefixLength)" }
}
