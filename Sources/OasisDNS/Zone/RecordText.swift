import OasisWire

/// Why a record's text does not parse (the parser adds the file, line and type).
struct RecordTextError: Error {
    var reason: String
}

/// Reads the presentation form of every record type NSD 4.6 loads beyond the ones
/// ``ZoneFileParser`` reads itself, into uncompressed wire RDATA (RFC 3597 §4: names in
/// stored data are never compressed).
///
/// Each type's fields are read left to right from the entry's tokens, as their RFCs
/// give them: numbers, names (relative to the origin), character-strings, base64
/// (RFC 4648 §4) and hex runs that may be split across tokens, base32hex (NSEC3's next
/// hash, RFC 5155 §3.3), type bitmaps (RFC 4034 §4.1.2), RRSIG times (RFC 4034 §3.2),
/// LOC (RFC 1876 §3), APL (RFC 3123 §5), IPSECKEY (RFC 4025 §3), SVCB/HTTPS
/// parameters (RFC 9460 §2.1), and the rest. A malformed field is a
/// ``RecordTextError`` naming it; nothing traps.
struct RecordTextReader {
    let text: [UInt8]
    let tokens: ArraySlice<Token>
    let origin: DomainName
    var index: Int
    var wire: [UInt8] = []

    init(text: [UInt8], tokens: ArraySlice<Token>, origin: DomainName) {
        self.text = text
        self.tokens = tokens
        self.origin = origin
        index = tokens.startIndex
    }

    typealias Failure = RecordTextError

    func fail(_ reason: String) -> RecordTextError { RecordTextError(reason: reason) }

    var atEnd: Bool { index >= tokens.endIndex }

    /// The next token's raw bytes (escapes in place).
    mutating func next(_ what: String) throws(Failure) -> (bytes: ArraySlice<UInt8>, token: Token) {
        guard index < tokens.endIndex else { throw fail("missing \(what)") }
        let token = tokens[index]
        index += 1
        return (text[token.range], token)
    }

    func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    mutating func finish() throws(Failure) {
        guard atEnd else {
            throw fail("unexpected '\(string(text[tokens[index].range]))' after the data")
        }
    }

    // MARK: Fields

    mutating func number<T: FixedWidthInteger & UnsignedInteger>(_ what: String, _: T.Type)
        throws(Failure) -> T
    {
        let (bytes, _) = try next(what)
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 &- 0x30 < 10 }), let value = T(string(bytes))
        else { throw fail("bad \(what) '\(string(bytes))'") }
        return value
    }

    mutating func u8(_ what: String) throws(Failure) {
        wire.append(try number(what, UInt8.self))
    }

    mutating func u16(_ what: String) throws(Failure) {
        append16(try number(what, UInt16.self))
    }

    mutating func u32(_ what: String) throws(Failure) {
        append32(try number(what, UInt32.self))
    }

    mutating func append16(_ value: UInt16) {
        wire.append(UInt8(value >> 8))
        wire.append(UInt8(value & 0xff))
    }

    mutating func append32(_ value: UInt32) {
        append16(UInt16(value >> 16))
        append16(UInt16(value & 0xffff))
    }

    /// A domain name, relative names completed with the origin.
    mutating func name(_ what: String) throws(Failure) {
        wire += try parsedName(what).wire
    }

    mutating func parsedName(_ what: String) throws(Failure) -> DomainName {
        let (bytes, token) = try next(what)
        if !token.quoted && bytes.count == 1 && bytes.first == UInt8(ascii: "@") { return origin }
        do {
            return try DomainName(presentation: Array(bytes).span, origin: origin)
        } catch {
            throw fail("bad \(what) '\(string(bytes))' (\(error))")
        }
    }

    /// One token's bytes with `\DDD` and `\X` resolved.
    mutating func unescapedToken(_ what: String) throws(Failure) -> [UInt8] {
        let (bytes, token) = try next(what)
        guard token.escaped else { return Array(bytes) }
        guard let value = unescaped(Array(bytes).span) else {
            throw fail("bad escape in \(what) '\(string(bytes))'")
        }
        return value
    }

    /// A character-string (RFC 1035 §3.3): a length byte and at most 255 bytes.
    mutating func characterString(_ what: String) throws(Failure) {
        let bytes = try unescapedToken(what)
        guard bytes.count <= 255 else { throw fail("\(what) is longer than 255 bytes") }
        wire.append(UInt8(bytes.count))
        wire += bytes
    }

    /// The rest of the tokens as character-strings (TXT-like types).
    mutating func characterStrings(_ what: String) throws(Failure) {
        guard !atEnd else { throw fail("no strings") }
        while !atEnd { try characterString(what) }
    }

    /// The rest of the tokens as hex digits (spaces allowed between them).
    mutating func hexRest(_ what: String, allowEmpty: Bool = false) throws(Failure) {
        var digits: [UInt8] = []
        while !atEnd { digits += try next(what).bytes }
        guard allowEmpty || !digits.isEmpty else { throw fail("missing \(what)") }
        wire += try hex(digits, what)
    }

    func hex(_ digits: some Collection<UInt8>, _ what: String) throws(Failure) -> [UInt8] {
        guard digits.count % 2 == 0 else { throw fail("odd number of hex digits in \(what)") }
        var result: [UInt8] = []
        result.reserveCapacity(digits.count / 2)
        var high: UInt8? = nil
        for digit in digits {
            guard let value = hexValue(digit) else { throw fail("bad hex digit in \(what)") }
            if let first = high {
                result.append(first << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        return result
    }

    /// The rest of the tokens as base64 (RFC 4648 §4), split anywhere.
    mutating func base64Rest(_ what: String, allowEmpty: Bool = false) throws(Failure) {
        var characters: [UInt8] = []
        while !atEnd { characters += try next(what).bytes }
        guard allowEmpty || !characters.isEmpty else { throw fail("missing \(what)") }
        // NSD takes "-" for no key material at all (RFC 4034 leaves it open).
        if characters == [UInt8(ascii: "-")] && allowEmpty { return }
        guard let bytes = decodeBase64(characters) else { throw fail("bad base64 in \(what)") }
        wire += bytes
    }

    /// An algorithm: a number or an RFC 4034 Appendix A.1 mnemonic.
    mutating func algorithm() throws(Failure) {
        let (bytes, _) = try next("algorithm")
        let text = string(bytes).uppercased()
        if let value = UInt8(text) {
            wire.append(value)
        } else if let known = dnssecAlgorithms.first(where: { $0.0 == text }) {
            wire.append(known.1)
        } else {
            throw fail("bad algorithm '\(string(bytes))'")
        }
    }

    /// A type mnemonic (or `TYPEnnn`).
    mutating func type(_ what: String) throws(Failure) -> UInt16 {
        let (bytes, _) = try next(what)
        guard let type = RecordType(mnemonic: string(bytes)) else {
            throw fail("bad \(what) '\(string(bytes))'")
        }
        return type.rawValue
    }

    /// The rest of the tokens as a list of types, as an RFC 4034 §4.1.2 bitmap.
    mutating func typeBitmap() throws(Failure) {
        var types: [UInt16] = []
        while !atEnd { types.append(try type("type")) }
        wire += encodeTypeBitmap(types)
    }

    /// An RRSIG time: `YYYYMMDDHHmmSS` (UTC), or seconds (RFC 4034 §3.2).
    mutating func time(_ what: String) throws(Failure) {
        let (bytes, _) = try next(what)
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 &- 0x30 < 10 }) else {
            throw fail("bad \(what) '\(string(bytes))'")
        }
        let digits = bytes.map { Int($0 - 0x30) }
        if digits.count == 14 {
            func field(_ from: Int, _ count: Int) -> Int {
                digits[from..<(from + count)].reduce(0) { $0 * 10 + $1 }
            }
            let (year, month, day) = (field(0, 4), field(4, 2), field(6, 2))
            let (hour, minute, second) = (field(8, 2), field(10, 2), field(12, 2))
            guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
                second < 61
            else { throw fail("bad \(what) '\(string(bytes))'") }
            let days = daysFromCivil(year: year, month: month, day: day)
            let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
            // RFC 4034 §3.1.5: serial number arithmetic, modulo 2^32.
            append32(UInt32(truncatingIfNeeded: seconds))
        } else {
            guard let value = UInt32(string(bytes)) else {
                throw fail("bad \(what) '\(string(bytes))'")
            }
            append32(value)
        }
    }

    /// A salt: `-` for none, or hex, after a length byte (RFC 5155 §3.3).
    mutating func salt() throws(Failure) {
        let (bytes, _) = try next("salt")
        if bytes.count == 1 && bytes.first == UInt8(ascii: "-") {
            wire.append(0)
            return
        }
        let salt = try hex(bytes, "salt")
        guard salt.count <= 255 else { throw fail("salt longer than 255 bytes") }
        wire.append(UInt8(salt.count))
        wire += salt
    }

    // MARK: Types

    /// The RDATA of a `type` record from the tokens.
    mutating func rdata(type: RecordType) throws(Failure) -> [UInt8] {
        switch type {
        case .md, .mf, .mb, .mg, .mr, .dname:
            try name("name")
        case .minfo, .rp:
            try name("mailbox")
            try name("name")
        case .afsdb, .rt, .kx, .lp:
            try u16("preference")
            try name("host")
        case .px:
            try u16("preference")
            try name("map822")
            try name("mapx400")
        case .hinfo:
            try characterString("cpu")
            try characterString("os")
        case .x25:
            try characterString("address")
        case .isdn:
            try characterString("address")
            if !atEnd { try characterString("subaddress") }
        case .spf, .avc:
            try characterStrings("text")
        case .naptr:
            try u16("order")
            try u16("preference")
            try characterString("flags")
            try characterString("services")
            try characterString("regexp")
            try name("replacement")
        case .nsap:
            // RFC 1706 §5: "0x" then hex, dots anywhere.
            let (bytes, _) = try next("address")
            guard bytes.count > 2, bytes.first == UInt8(ascii: "0"),
                bytes.dropFirst().first.map({ $0 | 0x20 }) == UInt8(ascii: "x")
            else { throw fail("an NSAP address starts with 0x") }
            wire += try hex(bytes.dropFirst(2).filter { $0 != UInt8(ascii: ".") }, "address")
        case .sig, .rrsig:
            append16(try self.type("type covered"))
            try algorithm()
            try u8("labels")
            try u32("original TTL")
            try time("expiration")
            try time("inception")
            try u16("key tag")
            try name("signer")
            try base64Rest("signature")
        case .key, .dnskey, .cdnskey:
            try u16("flags")
            try u8("protocol")
            try algorithm()
            try base64Rest("public key", allowEmpty: type == .key)
        case .ds, .cds, .dlv:
            try u16("key tag")
            try algorithm()
            try u8("digest type")
            try hexRest("digest", allowEmpty: type == .cds)
        case .sshfp:
            try u8("algorithm")
            try u8("fingerprint type")
            try hexRest("fingerprint")
        case .tlsa, .smimea:
            try u8("usage")
            try u8("selector")
            try u8("matching type")
            try hexRest("certificate association data")
        case .zonemd:
            try u32("serial")
            try u8("scheme")
            try u8("hash algorithm")
            try hexRest("digest")
        case .nsec:
            try name("next name")
            try typeBitmap()
        case .nxt:
            try name("next name")
            var types: [UInt16] = []
            while !atEnd { types.append(try self.type("type")) }
            // RFC 2535 §5.2: one bitmap of types 0 to 127, no window.
            var bits = [UInt8](repeating: 0, count: 16)
            for type in types {
                guard type < 128 else { throw fail("NXT holds only types below 128") }
                bits[Int(type) / 8] |= 0x80 >> UInt8(type % 8)
            }
            while let last = bits.last, last == 0 { bits.removeLast() }
            wire += bits
        case .nsec3:
            try u8("hash algorithm")
            try u8("flags")
            try u16("iterations")
            try salt()
            let (bytes, _) = try next("next hashed owner")
            guard let hash = decodeBase32Hex(bytes), !hash.isEmpty, hash.count <= 255 else {
                throw fail("bad next hashed owner '\(string(bytes))'")
            }
            wire.append(UInt8(hash.count))
            wire += hash
            try typeBitmap()
        case .nsec3param:
            try u8("hash algorithm")
            try u8("flags")
            try u16("iterations")
            try salt()
        case .dhcid, .openpgpkey:
            try base64Rest("data")
        case .cert:
            let (bytes, _) = try next("certificate type")
            let text = string(bytes).uppercased()
            if let value = UInt16(text) {
                append16(value)
            } else if let known = certificateTypes.first(where: { $0.0 == text }) {
                append16(known.1)
            } else {
                throw fail("bad certificate type '\(text)'")
            }
            try u16("key tag")
            try algorithm()
            try base64Rest("certificate")
        case .csync:
            try u32("serial")
            try u16("flags")
            try typeBitmap()
        case .uri:
            try u16("priority")
            try u16("weight")
            // RFC 7553 §4.5: the target, a quoted string, without a length byte.
            let target = try unescapedToken("target")
            guard !target.isEmpty else { throw fail("empty target") }
            wire += target
        case .nid, .l64:
            try u16("preference")
            try locator64()
        case .l32:
            try u16("preference")
            let (bytes, _) = try next("locator")
            guard let address = IPv4Address(bytes: Array(bytes).span) else {
                throw fail("bad locator '\(string(bytes))'")
            }
            append32(address.rawValue)
        case .eui48, .eui64:
            let (bytes, _) = try next("address")
            let groups = bytes.split(separator: UInt8(ascii: "-"), omittingEmptySubsequences: false)
            let count = type == .eui48 ? 6 : 8
            guard groups.count == count, groups.allSatisfy({ $0.count == 2 }) else {
                throw fail("bad address '\(string(bytes))'")
            }
            for group in groups { wire += try hex(group, "address") }
        case .loc:
            try location()
        case .apl:
            try addressPrefixes()
        case .ipseckey:
            try ipsecKey()
        case .wks:
            try wellKnownServices()
        case .svcb, .https:
            try u16("priority")
            try name("target")
            try serviceParameters()
        default:
            throw fail("no presentation format known for \(type): use \\# (RFC 3597)")
        }
        try finish()
        guard wire.count <= 65535 else { throw fail("over 65535 bytes") }
        return wire
    }

    /// Four groups of 16-bit hex: `0014:4fff:ff20:ee64` (RFC 6742 §2.3).
    mutating func locator64() throws(Failure) {
        let (bytes, _) = try next("locator")
        let groups = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard groups.count == 4, groups.allSatisfy({ $0.count == 4 }) else {
            throw fail("bad locator '\(string(bytes))'")
        }
        for group in groups { wire += try hex(group, "locator") }
    }

    /// RFC 1876 §3: `d [m [s]] N|S d [m [s]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]`.
    mutating func location() throws(Failure) {
        func decimal(_ bytes: ArraySlice<UInt8>, _ what: String, fraction: Int)
            throws(Failure) -> Int64
        {
            // A number with up to `fraction` decimal places, scaled by 10^fraction.
            var text = Array(bytes)
            var negative = false
            if text.first == UInt8(ascii: "-") {
                negative = true
                text.removeFirst()
            }
            let parts = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            guard parts.count <= 2, let whole = parts.first,
                whole.allSatisfy({ $0 &- 0x30 < 10 }), whole.count <= 10,
                (parts.count == 1 || (parts[1].count >= 1 && parts[1].count <= fraction))
            else { throw fail("bad \(what) '\(string(bytes))'") }
            var value: Int64 = 0
            for digit in whole { value = value * 10 + Int64(digit - 0x30) }
            var places = 0
            if parts.count == 2 {
                for digit in parts[1] {
                    guard digit &- 0x30 < 10 else { throw fail("bad \(what) '\(string(bytes))'") }
                    value = value * 10 + Int64(digit - 0x30)
                    places += 1
                }
            }
            while places < fraction {
                value *= 10
                places += 1
            }
            return negative ? -value : value
        }
        func coordinate(_ positive: UInt8, _ negative: UInt8, limit: Int64) throws(Failure)
            -> UInt32
        {
            let (degreesText, _) = try next("degrees")
            let degrees = try decimal(degreesText, "degrees", fraction: 0)
            var minutes: Int64 = 0
            var milliseconds: Int64 = 0
            var (hemisphere, _) = try next("hemisphere")
            if let value = try? decimal(hemisphere, "minutes", fraction: 0) {
                minutes = value
                (hemisphere, _) = try next("hemisphere")
                if let value = try? decimal(hemisphere, "seconds", fraction: 3) {
                    milliseconds = value
                    (hemisphere, _) = try next("hemisphere")
                }
            }
            guard hemisphere.count == 1, let letter = hemisphere.first.map({ $0 & 0xdf }),
                letter == positive || letter == negative
            else { throw fail("bad hemisphere '\(string(hemisphere))'") }
            guard degrees >= 0, degrees <= limit, (0..<60).contains(minutes),
                (0..<60000).contains(milliseconds)
            else { throw fail("coordinate out of range") }
            let value = ((degrees * 60 + minutes) * 60) * 1000 + milliseconds
            guard value <= limit * 3_600_000 else { throw fail("coordinate out of range") }
            let offset: Int64 = 1 << 31
            return UInt32(letter == positive ? offset + value : offset - value)
        }
        /// RFC 1876 §2: a size in centimetres as a mantissa and a power of ten.
        func precision(_ bytes: ArraySlice<UInt8>, _ what: String) throws(Failure) -> UInt8 {
            var text = bytes
            if text.last.map({ $0 | 0x20 }) == UInt8(ascii: "m") { text = text.dropLast() }
            var centimetres = try decimal(text, what, fraction: 2)
            guard centimetres >= 0, centimetres <= 9_000_000_000 else {
                throw fail("\(what) out of range")
            }
            var exponent: UInt8 = 0
            while centimetres >= 10 {
                centimetres /= 10
                exponent += 1
            }
            return UInt8(centimetres) << 4 | exponent
        }
        let latitude = try coordinate(UInt8(ascii: "N"), UInt8(ascii: "S"), limit: 90)
        let longitude = try coordinate(UInt8(ascii: "E"), UInt8(ascii: "W"), limit: 180)
        var (altitudeText, _) = try next("altitude")
        if altitudeText.last.map({ $0 | 0x20 }) == UInt8(ascii: "m") {
            altitudeText = altitudeText.dropLast()
        }
        let altitude = try decimal(altitudeText, "altitude", fraction: 2) + 10_000_000
        guard (0...Int64(UInt32.max)).contains(altitude) else {
            throw fail("altitude out of range")
        }
        var sizes: [UInt8] = [0x12, 0x16, 0x13]  // 1 m, 10 km, 10 m (RFC 1876 §3)
        for (position, what) in ["size", "horizontal precision", "vertical precision"].enumerated()
        where !atEnd {
            sizes[position] = try precision(try next(what).bytes, what)
        }
        wire.append(0)
        wire += sizes
        append32(latitude)
        append32(longitude)
        append32(UInt32(altitude))
    }

    /// RFC 3123 §5: `[!]afi:address/prefix`, any number of them.
    mutating func addressPrefixes() throws(Failure) {
        while !atEnd {
            let (bytes, _) = try next("prefix")
            var item = bytes
            var negate = false
            if item.first == UInt8(ascii: "!") {
                negate = true
                item = item.dropFirst()
            }
            guard let colon = item.firstIndex(of: UInt8(ascii: ":")),
                let slash = item.lastIndex(of: UInt8(ascii: "/")), colon < slash,
                let family = UInt16(string(item[..<colon])),
                let prefix = UInt8(string(item[(slash + 1)...]))
            else { throw fail("bad prefix '\(string(bytes))'") }
            let addressText = Array(item[(colon + 1)..<slash])
            var address: [UInt8]
            switch family {
            case 1:
                guard prefix <= 32, let v4 = IPv4Address(bytes: addressText.span) else {
                    throw fail("bad prefix '\(string(bytes))'")
                }
                let raw = v4.rawValue
                address = [
                    UInt8(raw >> 24), UInt8((raw >> 16) & 0xff), UInt8((raw >> 8) & 0xff),
                    UInt8(raw & 0xff),
                ]
            case 2:
                guard prefix <= 128, let v6 = parseIPv6(addressText.span) else {
                    throw fail("bad prefix '\(string(bytes))'")
                }
                address = v6
            default:
                throw fail("bad address family \(family)")
            }
            // RFC 3123 §4: trailing zero bytes are left out.
            while let last = address.last, last == 0 { address.removeLast() }
            append16(family)
            wire.append(prefix)
            wire.append(UInt8(address.count) | (negate ? 0x80 : 0))
            wire += address
        }
    }

    /// RFC 4025 §3: precedence, gateway type, algorithm, gateway, public key.
    mutating func ipsecKey() throws(Failure) {
        try u8("precedence")
        let gatewayType = try number("gateway type", UInt8.self)
        wire.append(gatewayType)
        try u8("algorithm")
        switch gatewayType {
        case 0:
            let (bytes, _) = try next("gateway")
            guard bytes.count == 1, bytes.first == UInt8(ascii: ".") else {
                throw fail("gateway type 0 needs '.'")
            }
        case 1:
            let (bytes, _) = try next("gateway")
            guard let address = IPv4Address(bytes: Array(bytes).span) else {
                throw fail("bad gateway '\(string(bytes))'")
            }
            append32(address.rawValue)
        case 2:
            let (bytes, _) = try next("gateway")
            guard let address = parseIPv6(Array(bytes).span) else {
                throw fail("bad gateway '\(string(bytes))'")
            }
            wire += address
        case 3:
            try name("gateway")
        default:
            throw fail("bad gateway type \(gatewayType)")
        }
        try base64Rest("public key", allowEmpty: true)
    }

    /// RFC 1035 §3.4.2: address, protocol, then the services as a port bitmap.
    mutating func wellKnownServices() throws(Failure) {
        let (bytes, _) = try next("address")
        guard let address = IPv4Address(bytes: Array(bytes).span) else {
            throw fail("bad address '\(string(bytes))'")
        }
        append32(address.rawValue)
        let (protocolText, _) = try next("protocol")
        let protocolName = string(protocolText).lowercased()
        let protocolNumber: UInt8
        switch protocolName {
        case "tcp": protocolNumber = 6
        case "udp": protocolNumber = 17
        default:
            guard let value = UInt8(protocolName) else {
                throw fail("bad protocol '\(protocolName)'")
            }
            protocolNumber = value
        }
        wire.append(protocolNumber)
        var bits: [UInt8] = []
        while !atEnd {
            let (service, _) = try next("service")
            let text = string(service).lowercased()
            guard let port = UInt16(text) ?? wellKnownPorts.first(where: { $0.0 == text })?.1 else {
                throw fail("unknown service '\(text)'")
            }
            let byte = Int(port) / 8
            if bits.count <= byte { bits += repeatElement(0, count: byte + 1 - bits.count) }
            bits[byte] |= 0x80 >> UInt8(port % 8)
        }
        wire += bits
    }

    /// RFC 9460 §2.1: `key=value` pairs (or bare keys), written in key order.
    mutating func serviceParameters() throws(Failure) {
        var parameters: [(UInt16, [UInt8])] = []
        while !atEnd {
            let (raw, token) = try next("parameter")
            var bytes = Array(raw)
            if token.escaped {
                guard let value = unescaped(bytes.span) else {
                    throw fail("bad escape in '\(string(raw))'")
                }
                bytes = value
            }
            var keyText = bytes
            var value: [UInt8]? = nil
            if let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
                keyText = Array(bytes[..<equals])
                value = Array(bytes[(equals + 1)...])
                // `key="quoted value"`: the value is the next (quoted) token.
                if value!.isEmpty, index < tokens.endIndex, tokens[index].quoted {
                    value = try unescapedToken("value")
                }
            }
            let key = string(keyText[...]).lowercased()
            guard let code = serviceKey(key) else { throw fail("unknown key '\(key)'") }
            guard !parameters.contains(where: { $0.0 == code }) else {
                throw fail("key '\(key)' given twice")
            }
            parameters.append((code, try serviceValue(code, value)))
        }
        parameters.sort { $0.0 < $1.0 }
        for (code, value) in parameters {
            guard value.count <= 65535 else { throw fail("a parameter over 65535 bytes") }
            append16(code)
            append16(UInt16(value.count))
            wire += value
        }
    }

    func serviceKey(_ key: String) -> UInt16? {
        let names = [
            "mandatory", "alpn", "no-default-alpn", "port", "ipv4hint", "ech", "ipv6hint",
        ]
        if let code = names.firstIndex(of: key) { return UInt16(code) }
        if key.hasPrefix("key"), key.count > 3, key.dropFirst(3).allSatisfy(\.isNumber) {
            return UInt16(key.dropFirst(3))
        }
        return nil
    }

    func serviceValue(_ code: UInt16, _ value: [UInt8]?) throws(Failure) -> [UInt8] {
        func list() -> [[UInt8]] {
            (value ?? []).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
                .map(Array.init)
        }
        var result: [UInt8] = []
        switch code {
        case 0:  // mandatory: keys
            var codes: [UInt16] = []
            for item in list() {
                guard let key = serviceKey(string(item[...]).lowercased()) else {
                    throw fail("bad mandatory key '\(string(item[...]))'")
                }
                codes.append(key)
            }
            for key in codes.sorted() { result += [UInt8(key >> 8), UInt8(key & 0xff)] }
        case 1:  // alpn: character-strings
            for item in list() {
                guard !item.isEmpty, item.count <= 255 else { throw fail("bad alpn") }
                result.append(UInt8(item.count))
                result += item
            }
        case 2:  // no-default-alpn: no value
            guard value == nil || value!.isEmpty else { throw fail("no-default-alpn has no value") }
        case 3:
            guard let port = UInt16(string((value ?? [])[...])) else { throw fail("bad port") }
            result = [UInt8(port >> 8), UInt8(port & 0xff)]
        case 4:
            for item in list() {
                guard let address = IPv4Address(bytes: item.span) else {
                    throw fail("bad ipv4hint")
                }
                let raw = address.rawValue
                result += [
                    UInt8(raw >> 24), UInt8((raw >> 16) & 0xff), UInt8((raw >> 8) & 0xff),
                    UInt8(raw & 0xff),
                ]
            }
        case 5:
            guard let bytes = decodeBase64(value ?? []) else { throw fail("bad ech") }
            result = bytes
        case 6:
            for item in list() {
                guard let address = parseIPv6(item.span) else { throw fail("bad ipv6hint") }
                result += address
            }
        default:
            result = value ?? []
        }
        return result
    }
}

/// RFC 4034 Appendix A.1 and later assignments: DNSSEC algorithm mnemonics.
let dnssecAlgorithms: [(String, UInt8)] = [
    ("RSAMD5", 1), ("DH", 2), ("DSA", 3), ("ECC", 4), ("RSASHA1", 5), ("DSA-NSEC3-SHA1", 6),
    ("RSASHA1-NSEC3-SHA1", 7), ("RSASHA256", 8), ("RSASHA512", 10), ("ECC-GOST", 12),
    ("ECDSAP256SHA256", 13), ("ECDSAP384SHA384", 14), ("ED25519", 15), ("ED448", 16),
    ("INDIRECT", 252), ("PRIVATEDNS", 253), ("PRIVATEOID", 254),
]

/// RFC 4398 §2.1: certificate type mnemonics.
let certificateTypes: [(String, UInt16)] = [
    ("PKIX", 1), ("SPKI", 2), ("PGP", 3), ("IPKIX", 4), ("ISPKI", 5), ("IPGP", 6),
    ("ACPKIX", 7), ("IACPKIX", 8), ("URI", 253), ("OID", 254),
]

/// A few service names for WKS records (their ports).
let wellKnownPorts: [(String, UInt16)] = [
    ("ftp", 21), ("ssh", 22), ("telnet", 23), ("smtp", 25), ("domain", 53), ("http", 80),
    ("pop3", 110), ("ntp", 123), ("imap", 143), ("snmp", 161), ("https", 443),
]

/// RFC 4034 §4.1.2: window blocks of the types present.
func encodeTypeBitmap(_ types: [UInt16]) -> [UInt8] {
    var result: [UInt8] = []
    let sorted = Set(types).sorted()
    var position = 0
    while position < sorted.count {
        let window = UInt8(sorted[position] >> 8)
        var bits = [UInt8](repeating: 0, count: 32)
        var length = 0
        while position < sorted.count && UInt8(sorted[position] >> 8) == window {
            let low = Int(sorted[position] & 0xff)
            bits[low / 8] |= 0x80 >> UInt8(low % 8)
            length = low / 8 + 1
            position += 1
        }
        result.append(window)
        result.append(UInt8(length))
        result += bits[0..<length]
    }
    return result
}

/// RFC 4648 §4 base64, padding optional at the end only; nil if malformed.
func decodeBase64(_ characters: [UInt8]) -> [UInt8]? {
    var result: [UInt8] = []
    result.reserveCapacity(characters.count * 3 / 4)
    var accumulator: UInt32 = 0
    var bits = 0
    var padding = 0
    for character in characters {
        let value: UInt32
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(character - 65)
        case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(character - 97 + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(character - 48 + 52)
        case UInt8(ascii: "+"): value = 62
        case UInt8(ascii: "/"): value = 63
        case UInt8(ascii: "="):
            padding += 1
            continue
        default: return nil
        }
        guard padding == 0 else { return nil }
        accumulator = accumulator << 6 | value
        bits += 6
        if bits >= 8 {
            bits -= 8
            result.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
        }
    }
    guard padding <= 2, (characters.count % 4 == 0 || padding == 0) else { return nil }
    return result
}

/// RFC 4648 §7 base32 with the extended hex alphabet, no padding (RFC 5155 §3.3);
/// nil if malformed.
func decodeBase32Hex(_ characters: some Collection<UInt8>) -> [UInt8]? {
    var result: [UInt8] = []
    var accumulator: UInt64 = 0
    var bits = 0
    for character in characters {
        let value: UInt64
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt64(character - 48)
        case UInt8(ascii: "a")...UInt8(ascii: "v"): value = UInt64(character - 97 + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "V"): value = UInt64(character - 65 + 10)
        default: return nil
        }
        accumulator = accumulator << 5 | value
        bits += 5
        if bits >= 8 {
            bits -= 8
            result.append(UInt8(truncatingIfNeeded: accumulator >> UInt64(bits)))
        }
    }
    // Left-over bits must be zero padding of fewer than 8 bits.
    guard bits < 5 || accumulator & ((1 << UInt64(bits)) - 1) == 0 else { return nil }
    return result
}

/// RFC 4648 §7 base32hex of `bytes`, lowercase, no padding (NSEC3 owner labels).
func encodeBase32Hex(_ bytes: some Collection<UInt8>) -> [UInt8] {
    let alphabet = Array("0123456789abcdefghijklmnopqrstuv".utf8)
    var result: [UInt8] = []
    var accumulator: UInt64 = 0
    var bits = 0
    for byte in bytes {
        accumulator = accumulator << 8 | UInt64(byte)
        bits += 8
        while bits >= 5 {
            bits -= 5
            result.append(alphabet[Int((accumulator >> UInt64(bits)) & 31)])
        }
    }
    if bits > 0 { result.append(alphabet[Int((accumulator << UInt64(5 - bits)) & 31)]) }
    return result
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146097 + dayOfEra - 719468
}
