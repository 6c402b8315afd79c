// Zones on a block device: the layout `oasis block put-zones` writes and
// `oasis dns --zone-disk` serves, so that an appliance boots with its disk and its
// network interface and nothing else.

import OasisBits

/// The zone disk's layout.
///
/// ```
/// byte 0     header (one 4 KiB page; every integer big-endian)
///            0   magic "OASISZN1"
///            8   u32 count of zones (1...ZoneDisk.maximumZones)
///            12  u32 reserved, 0
///            16  count entries, back to back:
///                u64 byte offset of the zone's text (a multiple of 4096, at least 4096)
///                u32 byte length of the text (1...ZoneDisk.maximumZoneBytes)
///                32  SHA-256 of the text
///                u8  length of the origin, then the origin in presentation form
///                    ("example.com."), 1...255 bytes
///            zeros to the end of the page
/// byte 4096  the zones' master-file texts, each starting on a page boundary, in order
/// ```
///
/// The header is read from a stranger's disk: ``parseHeader(_:capacity:)`` checks every
/// field and bounds every size before anything is read, and a zone's text is checked
/// against its digest (``verify(_:of:)``). `$INCLUDE` is not followed in zones from a
/// disk.
public enum ZoneDisk {
    /// The header's first eight bytes.
    public static let magic: [UInt8] = Array("OASISZN1".utf8)
    /// The header's size, and the alignment of every zone's text.
    public static let headerBytes = 4096
    /// The most zones one disk holds.
    public static let maximumZones = 64
    /// The largest zone text.
    public static let maximumZoneBytes = 64 << 20
    /// The most zone text a disk holds in all.
    public static let maximumTotalBytes: UInt64 = 256 << 20

    /// Where one zone's text lies.
    public struct Extent: Hashable, Sendable {
        /// The origin as written ("example.com.").
        public var origin: String
        /// The text's first byte on the disk.
        public var offset: UInt64
        /// The text's length in bytes.
        public var length: Int
        /// The SHA-256 of the text.
        public var digest: [UInt8]

        public init(origin: String, offset: UInt64, length: Int, digest: [UInt8]) {
            self.origin = origin
            self.offset = offset
            self.length = length
            self.digest = digest
        }
    }

    /// Lays `zones` (an origin and a master file's bytes each) out as a disk image:
    /// the header, then each text on a page boundary, the last one padded to a whole
    /// page.
    public static func image(of zones: [(origin: String, text: [UInt8])]) throws(ZoneDiskError)
        -> [UInt8]
    {
        guard !zones.isEmpty, zones.count <= maximumZones else {
            throw .badCount(zones.count)
        }
        var header = magic
        header += bigEndian(UInt32(zones.count)) + [0, 0, 0, 0]
        var offset = UInt64(headerBytes)
        var body: [UInt8] = []
        for zone in zones {
            let name = Array(zone.origin.utf8)
            guard (1...255).contains(name.count) else { throw .badOrigin(zone.origin) }
            guard (1...maximumZoneBytes).contains(zone.text.count) else {
                throw .badLength(origin: zone.origin, length: zone.text.count)
            }
            header += bigEndian(offset) + bigEndian(UInt32(zone.text.count))
            header += SHA256.hash(zone.text).bytes
            header += [UInt8(name.count)] + name
            let padded = (zone.text.count + headerBytes - 1) / headerBytes * headerBytes
            body += zone.text + [UInt8](repeating: 0, count: padded - zone.text.count)
            offset += UInt64(padded)
        }
        guard header.count <= headerBytes else { throw .headerTooLarge(header.count) }
        guard offset - UInt64(headerBytes) <= maximumTotalBytes else {
            throw .tooLarge(offset - UInt64(headerBytes))
        }
        return header + [UInt8](repeating: 0, count: headerBytes - header.count) + body
    }

    /// The extents the header at the start of `bytes` names, for a disk of `capacity`
    /// bytes.
    public static func parseHeader(_ bytes: some Collection<UInt8>, capacity: UInt64)
        throws(ZoneDiskError) -> [Extent]
    {
        let header = Array(bytes.prefix(headerBytes))
        guard header.count >= 16, Array(header[0..<8]) == magic else { throw .noHeader }
        var reader = Reader(bytes: header, position: 8)
        let count = Int(try reader.u32())
        guard (1...maximumZones).contains(count) else { throw .badCount(count) }
        let reserved = try reader.u32()
        guard reserved == 0 else { throw .badReserved(reserved) }
        var extents: [Extent] = []
        var origins: Set<String> = []
        var total: UInt64 = 0
        for _ in 0..<count {
            let offset = try reader.u64()
            let length = Int(try reader.u32())
            let digest = try reader.bytes(32)
            let nameLength = Int(try reader.u8())
            let name = try reader.bytes(nameLength)
            guard nameLength > 0, name.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw .badOrigin(String(decoding: name, as: UTF8.self))
            }
            let origin = String(decoding: name, as: UTF8.self)
            guard origins.insert(origin.lowercased()).inserted else {
                throw .duplicateOrigin(origin)
            }
            guard (1...maximumZoneBytes).contains(length) else {
                throw .badLength(origin: origin, length: length)
            }
            guard offset >= UInt64(headerBytes), offset % UInt64(headerBytes) == 0,
                offset <= capacity, UInt64(length) <= capacity - offset
            else {
                throw .outOfRange(
                    origin: origin, offset: offset, length: length, capacity: capacity)
            }
            total += UInt64(length)
            guard total <= maximumTotalBytes else { throw .tooLarge(total) }
            extents.append(Extent(origin: origin, offset: offset, length: length, digest: digest))
        }
        return extents
    }

    /// Checks `text` against the digest in its extent.
    public static func verify(_ text: [UInt8], of extent: Extent) throws(ZoneDiskError) {
        guard text.count == extent.length, SHA256.hash(text).bytes == extent.digest else {
            throw .digestMismatch(origin: extent.origin)
        }
    }

    private static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    private struct Reader {
        var bytes: [UInt8]
        var position: Int

        mutating func bytes(_ count: Int) throws(ZoneDiskError) -> [UInt8] {
            guard count >= 0, position + count <= bytes.count else { throw .truncated }
            defer { position += count }
            return Array(bytes[position..<position + count])
        }
        mutating func u8() throws(ZoneDiskError) -> UInt8 { try bytes(1)[0] }
        mutating func u32() throws(ZoneDiskError) -> UInt32 {
            try bytes(4).reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64() throws(ZoneDiskError) -> UInt64 {
            try bytes(8).reduce(0) { $0 << 8 | UInt64($1) }
        }
    }
}

/// What is wrong with a zone disk.
public enum ZoneDiskError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first page does not start with "OASISZN1".
    case noHeader
    /// The header ends inside an entry.
    case truncated
    /// No zones, or more than ``ZoneDisk/maximumZones``.
    case badCount(Int)
    /// An origin that is empty, longer than 255 bytes or not printable ASCII.
    case badOrigin(String)
    /// A zone's text is empty or larger than ``ZoneDisk/maximumZoneBytes``.
    case badLength(origin: String, length: Int)
    /// A zone's text is not on a page boundary after the header, or past the disk's end.
    case outOfRange(origin: String, offset: UInt64, length: Int, capacity: UInt64)
    /// The texts add up to more than ``ZoneDisk/maximumTotalBytes``.
    case tooLarge(UInt64)
    /// The entries do not fit in the header's page.
    case headerTooLarge(Int)
    /// A zone's text does not match the digest in the header.
    case digestMismatch(origin: String)
    /// The header's reserved word is not zero (a newer or damaged layout).
    case badReserved(UInt32)
    /// Two entries of the header name one zone.
    case duplicateOrigin(String)

    public var description: String {
        switch self {
        case .noHeader: return "no zone disk header (OASISZN1) in the first sector"
        case .truncated: return "the zone disk header ends inside an entry"
        case .badCount(let count):
            return "\(count) zones (1...\(ZoneDisk.maximumZones) on a zone disk)"
        case .badOrigin(let origin): return "bad zone origin '\(ZoneFileError.clip(origin))'"
        case .badLength(let origin, let length):
            return "zone \(origin): \(length) bytes (1...\(ZoneDisk.maximumZoneBytes))"
        case .outOfRange(let origin, let offset, let length, let capacity):
            return
                "zone \(origin): \(length) bytes at \(offset) are not on a page after the header "
                + "within the disk's \(capacity) bytes"
        case .tooLarge(let bytes):
            return "\(bytes) bytes of zones (at most \(ZoneDisk.maximumTotalBytes))"
        case .headerTooLarge(let bytes):
            return "the header needs \(bytes) bytes (at most \(ZoneDisk.headerBytes))"
        case .digestMismatch(let origin): return "zone \(origin): SHA-256 mismatch"
        case .badReserved(let word): return "the header's reserved word is \(word), not 0"
        case .duplicateOrigin(let origin):
            return "zone \(origin) is in the header twice"
        }
    }
}
