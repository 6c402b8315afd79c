import OasisBits

/// The start of a zone of authority (RFC 1035 §3.3.13).
public struct StartOfAuthority: Hashable, Sendable {
    public var primary: DomainName
    public var mailbox: DomainName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    /// The TTL of negative answers, capped by the SOA's own TTL (RFC 2308 §5).
    public var minimum: UInt32

    public init(
        primary: DomainName, mailbox: DomainName, serial: UInt32, refresh: UInt32,
        retry: UInt32, expire: UInt32, minimum: UInt32
    ) {
        self.primary = primary
        self.mailbox = mailbox
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }
}

/// The RDATA of a resource record, by type. Types without a case here are kept as
/// opaque bytes (RFC 3597), which is also how they travel.
public enum RecordData: Hashable, Sendable {
    /// An IPv4 address (RFC 1035 §3.4.1).
    case a(UInt32)
    /// An IPv6 address, 16 bytes (RFC 3596 §2.2).
    case aaaa([UInt8])
    case ns(DomainName)
    case cname(DomainName)
    case ptr(DomainName)
    case soa(StartOfAuthority)
    case mx(preference: UInt16, exchange: DomainName)
    /// One or more character-strings of at most 255 bytes each (RFC 1035 §3.3.14).
    case txt([[UInt8]])
    /// RFC 2782.
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DomainName)
    /// RFC 8659 §4.1.
    case caa(flags: UInt8, tag: [UInt8], value: [UInt8])
    /// Any other type: RFC 3597 unknown RDATA.
    case opaque([UInt8])

    /// The RDATA in uncompressed wire form (RFC 3597 §4: names are never compressed in
    /// stored data; ``MessageWriter`` compresses the RFC 1035 types when it writes).
    public var wire: [UInt8] {
        var bytes: [UInt8] = []
        appendWire(to: &bytes)
        return bytes
    }

    /// Appends the RDATA in uncompressed wire form (``wire``) to `bytes`.
    public func appendWire(to bytes: inout [UInt8]) {
        func u16(_ value: UInt16) {
            bytes.append(UInt8(value >> 8))
            bytes.append(UInt8(value & 0xff))
        }
        func u32(_ value: UInt32) {
            u16(UInt16(value >> 16))
            u16(UInt16(value & 0xffff))
        }
        switch self {
        case .a(let address): u32(address)
        case .aaaa(let address): bytes += address
        case .ns(let name), .cname(let name), .ptr(let name): bytes += name.wire
        case .soa(let soa):
            bytes += soa.primary.wire
            bytes += soa.mailbox.wire
            for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                u32(value)
            }
        case .mx(let preference, let exchange):
            u16(preference)
            bytes += exchange.wire
        case .txt(let strings):
            for string in strings {
                bytes.append(UInt8(truncatingIfNeeded: string.count))
                bytes += string
            }
        case .srv(let priority, let weight, let port, let target):
            u16(priority)
            u16(weight)
            u16(port)
            bytes += target.wire
        case .caa(let flags, let tag, let value):
            bytes.append(flags)
            bytes.append(UInt8(truncatingIfNeeded: tag.count))
            bytes += tag
            bytes += value
        case .opaque(let data): bytes += data
        }
    }

    /// Reads `length` bytes of RDATA of type `type` at `offset` of `message`,
    /// following compression pointers in the names of the types that may have them.
    public static func read(
        type: RecordType, from message: Bits, at offset: Int, length: Int
    ) throws(WireError) -> RecordData {
        let end = offset + length
        let rdata = try WireError.wrap { () throws(BitsError) in
            try message.slice(from: offset, length: length)
        }
        let bad = WireError.badRecordData(type: type, offset: offset)
        func name(at position: Int) throws(WireError) -> (DomainName, Int) {
            let (name, next) = try message.readName(at: position)
            guard next <= end else { throw bad }
            return (name, next)
        }
        func u16(_ at: Int) throws(WireError) -> UInt16 {
            try WireError.wrap { () throws(BitsError) in try rdata.read(at: at) }
        }
        func u32(_ at: Int) throws(WireError) -> UInt32 {
            try WireError.wrap { () throws(BitsError) in try rdata.read(at: at) }
        }
        switch type {
        case .a:
            guard length == 4 else { throw bad }
            return .a(try u32(0))
        case .aaaa:
            guard length == 16 else { throw bad }
            return .aaaa(rdata.copyBytes())
        case .ns, .cname, .ptr:
            let (target, next) = try name(at: offset)
            guard next == end else { throw bad }
            return type == .ns ? .ns(target) : type == .cname ? .cname(target) : .ptr(target)
        case .soa:
            let (primary, afterPrimary) = try name(at: offset)
            let (mailbox, afterMailbox) = try name(at: afterPrimary)
            guard end - afterMailbox == 20 else { throw bad }
            let base = afterMailbox - offset
            return .soa(
                StartOfAuthority(
                    primary: primary, mailbox: mailbox, serial: try u32(base),
                    refresh: try u32(base + 4), retry: try u32(base + 8),
                    expire: try u32(base + 12), minimum: try u32(base + 16)))
        case .mx:
            guard length >= 3 else { throw bad }
            let (exchange, next) = try name(at: offset + 2)
            guard next == end else { throw bad }
            return .mx(preference: try u16(0), exchange: exchange)
        case .srv:
            guard length >= 7 else { throw bad }
            let (target, next) = try name(at: offset + 6)
            guard next == end else { throw bad }
            return .srv(priority: try u16(0), weight: try u16(2), port: try u16(4), target: target)
        case .txt:
            let bytes = rdata.copyBytes()
            guard !bytes.isEmpty else { throw bad }
            var strings: [[UInt8]] = []
            var index = 0
            while index < bytes.count {
                let count = Int(bytes[index])
                guard index + 1 + count <= bytes.count else { throw bad }
                strings.append(Array(bytes[(index + 1)..<(index + 1 + count)]))
                index += 1 + count
            }
            return .txt(strings)
        case .caa:
            let bytes = rdata.copyBytes()
            guard bytes.count >= 2, 2 + Int(bytes[1]) <= bytes.count, bytes[1] > 0 else {
                throw bad
            }
            let tagEnd = 2 + Int(bytes[1])
            return .caa(
                flags: bytes[0], tag: Array(bytes[2..<tagEnd]), value: Array(bytes[tagEnd...]))
        // Types whose names the engine or the writer reads as stored: kept as RDATA
        // with every name decompressed (a pointer in a message, or in RFC 3597 data,
        // would otherwise be read as a label length).
        case .kx, .rt:
            // A preference, then the host whose addresses go in the additional section.
            guard length >= 3 else { throw bad }
            let (host, next) = try name(at: offset + 2)
            guard next == end else { throw bad }
            return .opaque(Array(rdata.copyBytes()[0..<2]) + host.wire)
        case .mb, .mg, .mr, .dname:
            let (target, next) = try name(at: offset)
            guard next == end else { throw bad }
            return .opaque(target.wire)
        case .minfo:
            let (mailbox, next) = try name(at: offset)
            let (errors, last) = try name(at: next)
            guard last == end else { throw bad }
            return .opaque(mailbox.wire + errors.wire)
        case .rrsig:
            // Type covered to key tag (18 bytes), the signer, a signature.
            guard length > 18 else { throw bad }
            let (signer, next) = try name(at: offset + 18)
            guard next < end else { throw bad }
            let bytes = rdata.copyBytes()
            return .opaque(Array(bytes[0..<18]) + signer.wire + bytes[(next - offset)...])
        case .nsec3param, .nsec3:
            // Algorithm, flags, iterations, salt (RFC 5155 §3.2, §4.2); NSEC3 then a
            // hash and a type bitmap.
            let bytes = rdata.copyBytes()
            guard bytes.count >= 5, 5 + Int(bytes[4]) <= bytes.count else { throw bad }
            if type == .nsec3 {
                let hashAt = 5 + Int(bytes[4])
                guard hashAt < bytes.count, bytes[hashAt] > 0,
                    hashAt + 1 + Int(bytes[hashAt]) <= bytes.count
                else { throw bad }
            } else {
                guard 5 + Int(bytes[4]) == bytes.count else { throw bad }
            }
            return .opaque(bytes)
        case .nsec:
            let (next, afterNext) = try name(at: offset)
            guard afterNext <= end else { throw bad }
            return .opaque(next.wire + rdata.copyBytes()[(afterNext - offset)...])
        default:
            return .opaque(rdata.copyBytes())
        }
    }
}

/// A resource record: owner, type, class, TTL and data (RFC 1035 §3.2.1).
public struct ResourceRecord: Hashable, Sendable, CustomStringConvertible {
    public var name: DomainName
    public var type: RecordType
    public var recordClass: RecordClass
    public var ttl: UInt32
    public var data: RecordData

    public init(
        name: DomainName, type: RecordType, recordClass: RecordClass = .internet, ttl: UInt32,
        data: RecordData
    ) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }

    /// The record in master-file form, one line; unknown types in RFC 3597 form.
    public var description: String {
        "\(name) \(ttl) \(recordClass) \(type) \(data.presentation(type: type))"
    }
}

extension RecordData {
    /// The RDATA in master-file presentation form.
    public func presentation(type: RecordType) -> String {
        func quoted(_ bytes: [UInt8]) -> String {
            var text = "\""
            for byte in bytes { appendEscaped(byte, to: &text, inName: false) }
            return text + "\""
        }
        switch self {
        case .a(let address):
            return
                "\(address >> 24).\((address >> 16) & 0xff).\((address >> 8) & 0xff).\(address & 0xff)"
        case .aaaa(let bytes):
            return stride(from: 0, to: 16, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }.joined(separator: ":")
        case .ns(let name), .cname(let name), .ptr(let name): return name.description
        case .soa(let soa):
            return
                "\(soa.primary) \(soa.mailbox) \(soa.serial) \(soa.refresh) \(soa.retry) \(soa.expire) \(soa.minimum)"
        case .mx(let preference, let exchange): return "\(preference) \(exchange)"
        case .txt(let strings): return strings.map(quoted).joined(separator: " ")
        case .srv(let priority, let weight, let port, let target):
            return "\(priority) \(weight) \(port) \(target)"
        case .caa(let flags, let tag, let value):
            return "\(flags) \(String(decoding: tag, as: UTF8.self)) \(quoted(value))"
        case .opaque(let bytes):
            let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            return "\\# \(bytes.count)" + (bytes.isEmpty ? "" : " " + hex)
        }
    }
}
