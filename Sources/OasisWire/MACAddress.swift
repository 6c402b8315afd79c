// The Ethernet address: one type for the devices, the stack, the switch and the controller.

/// An IEEE 802 MAC address (EUI-48): six bytes, stored in the low 48 bits of a `UInt64`.
///
/// ```swift
/// let mac = MACAddress("02:00:00:00:00:01")!
/// print(mac)               // 02:00:00:00:00:01
/// mac.isMulticast          // false: bit 0 of the first byte is clear
/// ```
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// An address from its 48-bit value; bits above the 48th are discarded:
    /// `MACAddress(0x02_00_5e_10_00_01)` is `02:00:5e:10:00:01`.
    @inlinable
    public init(_ rawValue: UInt64) {
        self.init(rawValue: rawValue)
    }

    /// An address from six bytes in wire order, or nil when `bytes` is not six long.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.init(rawValue: bytes.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) })
    }

    /// An address from up to six bytes in wire order; missing bytes are zero.
    public init(_ bytes: [UInt8]) {
        var value: UInt64 = 0
        for index in 0..<6 { value = value << 8 | UInt64(index < bytes.count ? bytes[index] : 0) }
        self.init(rawValue: value)
    }

    /// The six bytes in wire order.
    public var bytes: [UInt8] { (0..<6).map { self[$0] } }

    /// The six bytes, first byte in bits 40...47.
    public let rawValue: UInt64

    /// The address whose six bytes are the low 48 bits of `rawValue`.
    @inlinable
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xffff_ffff_ffff
    }

    /// The address made of six bytes, first on the wire first.
    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        let high = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
        self.init(rawValue: high | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5))
    }

    /// Parses `02:00:00:00:00:01` (colons or dashes, one or two hex digits a byte, no
    /// signs or spaces).
    public init?(_ text: some StringProtocol) {
        var value: UInt64 = 0
        var groups = 0
        // One separator throughout: colons, or hyphens (`02-00-...`), not both.
        let separator: Character = text.contains(":") ? ":" : "-"
        for group in text.split(separator: separator, omittingEmptySubsequences: false) {
            // Hex digits only: `UInt8(_:radix:)` would also take a sign ("+f").
            guard (1...2).contains(group.count), group.allSatisfy(\.isHexDigit),
                let byte = UInt8(group, radix: 16)
            else { return nil }
            value = value << 8 | UInt64(byte)
            groups += 1
        }
        guard groups == 6 else { return nil }
        self.init(rawValue: value)
    }

    /// `ff:ff:ff:ff:ff:ff`.
    @inlinable public static var broadcast: MACAddress { MACAddress(rawValue: 0xffff_ffff_ffff) }

    /// `00:00:00:00:00:00`, the "unknown" target hardware address of an ARP request.
    @inlinable public static var zero: MACAddress { MACAddress(rawValue: 0) }

    /// Whether the group bit (least significant bit of the first byte) is set: a
    /// multicast or the broadcast address (IEEE 802-2014 §8.2).
    @inlinable public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    @inlinable public var isBroadcast: Bool { rawValue == 0xffff_ffff_ffff }

    /// Whether the address can be the source of a frame: not multicast, not zero.
    @inlinable public var isUnicast: Bool { !isMulticast && rawValue != 0 }

    /// Byte `index` (0...5) of the address, in wire order.
    @inlinable
    public subscript(index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: rawValue >> UInt64(8 * (5 - index)))
    }

    /// Lower-case, colon-separated: `02:00:00:00:00:01`.
    public var description: String {
        (0..<6).map { index in
            let hex = String(self[index], radix: 16)
            return self[index] < 16 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
