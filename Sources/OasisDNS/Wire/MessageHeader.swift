import OasisBits

/// The fixed 12-byte DNS message header (RFC 1035 §4.1.1), flags included.
///
/// The flag word is declared as sub-byte ``Field``s, so that no code in this module
/// shifts or masks header bits by hand:
///
/// ```
///  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
/// |QR|  Opcode   |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
/// ```
public enum MessageHeader: HeaderLayout {
    /// The query identifier, copied into the response.
    public static let id = Field<UInt16>.first()
    /// Query (0) or response (1).
    public static let isResponse = Field<UInt8>.after(id, bits: 1)
    /// The kind of query; 0 is a standard QUERY.
    public static let opcode = Field<UInt8>.after(isResponse, bits: 4)
    /// Authoritative Answer.
    public static let authoritative = Field<UInt8>.after(opcode, bits: 1)
    /// TrunCation: the answer did not fit the transport.
    public static let truncated = Field<UInt8>.after(authoritative, bits: 1)
    /// Recursion Desired (copied into the response).
    public static let recursionDesired = Field<UInt8>.after(truncated, bits: 1)
    /// Recursion Available.
    public static let recursionAvailable = Field<UInt8>.after(recursionDesired, bits: 1)
    /// Reserved; must be zero (RFC 1035 §4.1.1).
    public static let zero = Field<UInt8>.after(recursionAvailable, bits: 1)
    /// Authentic Data (RFC 4035 §3.2.3).
    public static let authenticData = Field<UInt8>.after(zero, bits: 1)
    /// Checking Disabled (RFC 4035 §3.2.2).
    public static let checkingDisabled = Field<UInt8>.after(authenticData, bits: 1)
    /// The low four bits of the response code (EDNS carries the high eight).
    public static let rcode = Field<UInt8>.after(checkingDisabled, bits: 4)
    /// The whole flag word, for copying.
    public static let flags = Field<UInt16>.at(byte: 2)
    /// Number of entries in the question section.
    public static let questionCount = Field<UInt16>.at(byte: 4)
    /// Number of resource records in the answer section.
    public static let answerCount = Field<UInt16>.after(questionCount)
    /// Number of resource records in the authority section.
    public static let authorityCount = Field<UInt16>.after(answerCount)
    /// Number of resource records in the additional section.
    public static let additionalCount = Field<UInt16>.after(authorityCount)
    /// 12 bytes.
    public static let size = additionalCount.end
}

/// A resource record type (RFC 1035 §3.2.2 and later registrations).
public struct RecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit code on the wire.
    public var rawValue: UInt16
    /// The type with code `rawValue`.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = RecordType(rawValue: 1)
    public static let ns = RecordType(rawValue: 2)
    public static let md = RecordType(rawValue: 3)
    public static let mf = RecordType(rawValue: 4)
    public static let cname = RecordType(rawValue: 5)
    public static let soa = RecordType(rawValue: 6)
    public static let mb = RecordType(rawValue: 7)
    public static let mg = RecordType(rawValue: 8)
    public static let mr = RecordType(rawValue: 9)
    public static let `null` = RecordType(rawValue: 10)
    public static let wks = RecordType(rawValue: 11)
    public static let ptr = RecordType(rawValue: 12)
    public static let hinfo = RecordType(rawValue: 13)
    public static let minfo = RecordType(rawValue: 14)
    public static let mx = RecordType(rawValue: 15)
    public static let txt = RecordType(rawValue: 16)
    public static let rp = RecordType(rawValue: 17)
    public static let afsdb = RecordType(rawValue: 18)
    public static let x25 = RecordType(rawValue: 19)
    public static let isdn = RecordType(rawValue: 20)
    public static let rt = RecordType(rawValue: 21)
    public static let nsap = RecordType(rawValue: 22)
    public static let sig = RecordType(rawValue: 24)
    public static let key = RecordType(rawValue: 25)
    public static let px = RecordType(rawValue: 26)
    public static let aaaa = RecordType(rawValue: 28)
    public static let loc = RecordType(rawValue: 29)
    public static let nxt = RecordType(rawValue: 30)
    public static let srv = RecordType(rawValue: 33)
    public static let naptr = RecordType(rawValue: 35)
    public static let kx = RecordType(rawValue: 36)
    public static let cert = RecordType(rawValue: 37)
    public static let dname = RecordType(rawValue: 39)
    public static let opt = RecordType(rawValue: 41)
    public static let apl = RecordType(rawValue: 42)
    public static let ds = RecordType(rawValue: 43)
    public static let sshfp = RecordType(rawValue: 44)
    public static let ipseckey = RecordType(rawValue: 45)
    public static let rrsig = RecordType(rawValue: 46)
    public static let nsec = RecordType(rawValue: 47)
    public static let dnskey = RecordType(rawValue: 48)
    public static let dhcid = RecordType(rawValue: 49)
    public static let nsec3 = RecordType(rawValue: 50)
    public static let nsec3param = RecordType(rawValue: 51)
    public static let tlsa = RecordType(rawValue: 52)
    public static let smimea = RecordType(rawValue: 53)
    public static let cds = RecordType(rawValue: 59)
    public static let cdnskey = RecordType(rawValue: 60)
    public static let openpgpkey = RecordType(rawValue: 61)
    public static let csync = RecordType(rawValue: 62)
    public static let zonemd = RecordType(rawValue: 63)
    public static let svcb = RecordType(rawValue: 64)
    public static let https = RecordType(rawValue: 65)
    public static let spf = RecordType(rawValue: 99)
    public static let nid = RecordType(rawValue: 104)
    public static let l32 = RecordType(rawValue: 105)
    public static let l64 = RecordType(rawValue: 106)
    public static let lp = RecordType(rawValue: 107)
    public static let eui48 = RecordType(rawValue: 108)
    public static let eui64 = RecordType(rawValue: 109)
    public static let uri = RecordType(rawValue: 256)
    public static let caa = RecordType(rawValue: 257)
    public static let avc = RecordType(rawValue: 258)
    public static let dlv = RecordType(rawValue: 32769)
    /// Meta-types that only appear in questions (RFC 1035 §3.2.3).
    public static let ixfr = RecordType(rawValue: 251)
    public static let axfr = RecordType(rawValue: 252)
    public static let any = RecordType(rawValue: 255)

    /// Every mnemonic NSD 4.6 knows (its `rrtype_descriptors`), and the meta-types.
    static let mnemonics: [(String, RecordType)] = [
        ("A", .a), ("NS", .ns), ("MD", .md), ("MF", .mf), ("CNAME", .cname), ("SOA", .soa),
        ("MB", .mb), ("MG", .mg), ("MR", .mr), ("NULL", .`null`), ("WKS", .wks), ("PTR", .ptr),
        ("HINFO", .hinfo), ("MINFO", .minfo), ("MX", .mx), ("TXT", .txt), ("RP", .rp),
        ("AFSDB", .afsdb), ("X25", .x25), ("ISDN", .isdn), ("RT", .rt), ("NSAP", .nsap),
        ("SIG", .sig), ("KEY", .key), ("PX", .px), ("AAAA", .aaaa), ("LOC", .loc),
        ("NXT", .nxt), ("SRV", .srv), ("NAPTR", .naptr), ("KX", .kx), ("CERT", .cert),
        ("DNAME", .dname), ("OPT", .opt), ("APL", .apl), ("DS", .ds), ("SSHFP", .sshfp),
        ("IPSECKEY", .ipseckey), ("RRSIG", .rrsig), ("NSEC", .nsec), ("DNSKEY", .dnskey),
        ("DHCID", .dhcid), ("NSEC3", .nsec3), ("NSEC3PARAM", .nsec3param), ("TLSA", .tlsa),
        ("SMIMEA", .smimea), ("CDS", .cds), ("CDNSKEY", .cdnskey), ("OPENPGPKEY", .openpgpkey),
        ("CSYNC", .csync), ("ZONEMD", .zonemd), ("SVCB", .svcb), ("HTTPS", .https),
        ("SPF", .spf), ("NID", .nid), ("L32", .l32), ("L64", .l64), ("LP", .lp),
        ("EUI48", .eui48), ("EUI64", .eui64), ("URI", .uri), ("CAA", .caa), ("AVC", .avc),
        ("DLV", .dlv), ("IXFR", .ixfr), ("AXFR", .axfr), ("ANY", .any),
    ]

    /// The type named `text`: a mnemonic (any case) or RFC 3597's `TYPEnnn`.
    public init?(mnemonic text: some StringProtocol) {
        let upper = text.uppercased()
        if let known = RecordType.mnemonics.first(where: { $0.0 == upper }) {
            self = known.1
        } else if upper.hasPrefix("TYPE"), let code = UInt16(upper.dropFirst(4)),
            upper.count > 4, upper.dropFirst(4).allSatisfy(\.isNumber)
        {
            self.init(rawValue: code)
        } else {
            return nil
        }
    }

    /// The mnemonic, or `TYPEnnn` (RFC 3597 §5) for types without one here.
    public var description: String {
        RecordType.mnemonics.first(where: { $0.1 == self })?.0 ?? "TYPE\(rawValue)"
    }
}

/// A resource record class; only IN is served.
public struct RecordClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit code on the wire.
    public var rawValue: UInt16
    /// The class with code `rawValue`.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let internet = RecordClass(rawValue: 1)
    public static let chaos = RecordClass(rawValue: 3)
    public static let hesiod = RecordClass(rawValue: 4)
    public static let none = RecordClass(rawValue: 254)
    public static let any = RecordClass(rawValue: 255)

    /// The class named `text`: IN, CH, HS, ANY or RFC 3597's `CLASSnnn`.
    public init?(mnemonic text: some StringProtocol) {
        switch text.uppercased() {
        case "IN": self = .internet
        case "CH": self = .chaos
        case "HS": self = .hesiod
        case let other where other.hasPrefix("CLASS") && other.count > 5:
            guard other.dropFirst(5).allSatisfy(\.isNumber),
                let code = UInt16(other.dropFirst(5))
            else { return nil }
            self.init(rawValue: code)
        default: return nil
        }
    }

    /// The mnemonic, or `CLASSnnn`.
    public var description: String {
        switch self {
        case .internet: "IN"
        case .chaos: "CH"
        case .hesiod: "HS"
        case .any: "ANY"
        default: "CLASS\(rawValue)"
        }
    }
}

/// A response code: four bits in the header, eight more in an EDNS OPT (RFC 6891 §6.1.3).
public struct ResponseCode: RawRepresentable, Hashable, Sendable {
    /// The 12-bit code.
    public var rawValue: UInt16
    /// The code `rawValue`.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let noError = ResponseCode(rawValue: 0)
    public static let formatError = ResponseCode(rawValue: 1)
    public static let serverFailure = ResponseCode(rawValue: 2)
    public static let nameError = ResponseCode(rawValue: 3)
    public static let notImplemented = ResponseCode(rawValue: 4)
    public static let refused = ResponseCode(rawValue: 5)
    /// A name that should not exist does: a DNAME substitution too long (RFC 6672 §2.2).
    public static let yxDomain = ResponseCode(rawValue: 6)
    /// RFC 6891 §6.1.3: the OPT's version is not supported.
    /// NOTAUTH: here, a TSIG-signed query with a key we do not know (RFC 8945 §5.2).
    public static let notAuthorized = ResponseCode(rawValue: 9)
    public static let badVersion = ResponseCode(rawValue: 16)
}

extension MessageHeader {
    /// `value` placed in `field`'s bits of the flag word (the header's bytes 2–3, read
    /// as one big-endian integer): for code that builds or reads the word whole, from
    /// raw memory, with the positions still taken from the fields above.
    @inline(__always)
    static func flag<Value>(_ field: Field<Value>, _ value: Value) -> UInt16 {
        let shift = 2 * 16 - field.endBit
        return UInt16(truncatingIfNeeded: (UInt64(value) & ((1 << field.bitWidth) - 1)) << shift)
    }

    /// `field`'s value in the flag word `flags`.
    @inline(__always)
    static func value<Value>(of field: Field<Value>, in flags: UInt16) -> Value {
        let shift = 2 * 16 - field.endBit
        return Value(truncatingIfNeeded: (UInt64(flags) >> shift) & ((1 << field.bitWidth) - 1))
    }
}
