/// A 48-bit IEEE 802 hardware address, as the device layer reads and sets it.
///
/// Stored in the low 48 bits of an integer, most significant byte first on the wire:
/// `MACAddress(0x02_00_5e_10_00_01)` is `02:00:5e:10:00:01`.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address in the low 48 bits; the high 16 bits are zero.
    public let rawValue: UInt64

    /// An address from its 48-bit value; bits above the 48th are discarded.
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue & 0xffff_ffff_ffff
    }

    /// An address from six bytes in wire order, or nil when `bytes` is not six long.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.init(bytes.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) })
    }

    /// The six bytes in wire order.
    public var bytes: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64($0))) }
    }

    /// `ff:ff:ff:ff:ff:ff`.
    public static let broadcast = MACAddress(0xffff_ffff_ffff)

    /// Lower-case, colon-separated, as `ip link` prints it.
    public var description: String {
        bytes.map { byte in
            let digits = String(byte, radix: 16)
            return byte < 0x10 ? "0" + digits : digits
        }.joined(separator: ":")
    }
}
