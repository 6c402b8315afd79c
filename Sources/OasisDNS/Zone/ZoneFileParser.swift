import OasisBits

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads RFC 1035 §5 master files, as BIND and NSD read them.
///
/// Supported: `$ORIGIN`, `$TTL`, `$INCLUDE file [origin]` (the path relative to the
/// including file), parentheses across lines, `;` comments, a blank owner meaning the
/// previous owner, `@`, relative names, TTL and class in either order or absent, TTL
/// units (`1h30m`, the BIND extension NSD accepts), quoted strings and names with
/// `\DDD`/`\X` escapes, RFC 3597 `TYPEnnn`, `CLASSnnn` and `\# length hex` data.
///
/// ```swift
/// let records = try ZoneFileParser.parse(file: "/etc/nsd/example.zone",
///                                        origin: DomainName(parsing: "example.com."))
/// ```
public enum ZoneFileParser {
    /// How deep `$INCLUDE`s may nest.
    public static let maximumIncludeDepth = 16

    /// Reads and parses the file at `path`.
    public static func parse(file path: String, origin: DomainName, defaultTTL: UInt32? = nil)
        throws(ZoneFileError) -> [ResourceRecord]
    {
        var state = State(origin: origin, defaultTTL: defaultTTL)
        try state.include(path: path, depth: 0)
        return state.records
    }

    /// Parses `text` as the contents of a file named `fileName`. `$INCLUDE` reads
    /// files relative to the working directory unless `allowIncludes` is false.
    public static func parse(
        text: String, fileName: String = "<text>", origin: DomainName, defaultTTL: UInt32? = nil,
        allowIncludes: Bool = true
    ) throws(ZoneFileError) -> [ResourceRecord] {
        var state = State(origin: origin, defaultTTL: defaultTTL)
        state.allowIncludes = allowIncludes
        try state.parse(bytes: Array(text.utf8), file: fileName, depth: 0)
        return state.records
    }
}

/// One token of an entry: its raw bytes (escapes still in place) and whether it was
/// quoted.
struct Token {
    var bytes: [UInt8]
    var quoted: Bool
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// One logical entry: the tokens of one line, or of several joined by parentheses.
struct Entry {
    var line: Int
    var blankOwner: Bool
    var tokens: [Token]
}

/// Splits master-file text into entries (RFC 1035 §5.1).
func tokenize(_ bytes: [UInt8], file: String) throws(ZoneFileError) -> [Entry] {
    var entries: [Entry] = []
    var index = 0
    var line = 1
    var depth = 0
    var parenthesisLine = 0
    var current = Entry(line: 1, blankOwner: false, tokens: [])
    var atLineStart = true
    func finishEntry() {
        if !current.tokens.isEmpty { entries.append(current) }
    }
    while index < bytes.count {
        let byte = bytes[index]
        if atLineStart && depth == 0 {
            finishEntry()
            current = Entry(line: line, blankOwner: byte == 0x20 || byte == 0x09, tokens: [])
            atLineStart = false
        }
        switch byte {
        case UInt8(ascii: "\n"):
            line += 1
            index += 1
            atLineStart = true
        case 0x20, 0x09, UInt8(ascii: "\r"):
            index += 1
        case UInt8(ascii: ";"):
            while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
        case UInt8(ascii: "("):
            if depth == 0 { parenthesisLine = line }
            depth += 1
            index += 1
        case UInt8(ascii: ")"):
            guard depth > 0 else {
                throw ZoneFileError(file: file, line: line, problem: .unbalancedParentheses)
            }
            depth -= 1
            index += 1
        case UInt8(ascii: "\""):
            let startLine = line
            var token: [UInt8] = []
            index += 1
            while true {
                guard index < bytes.count else {
                    throw ZoneFileError(file: file, line: startLine, problem: .unterminatedString)
                }
                let next = bytes[index]
                if next == UInt8(ascii: "\"") { break }
                if next == UInt8(ascii: "\n") { line += 1 }
                if next == UInt8(ascii: "\\") && index + 1 < bytes.count {
                    token.append(next)
                    index += 1
                    if bytes[index] == UInt8(ascii: "\n") { line += 1 }
                }
                token.append(bytes[index])
                index += 1
            }
            index += 1
            current.tokens.append(Token(bytes: token, quoted: true))
        default:
            var token: [UInt8] = []
            while index < bytes.count {
                let next = bytes[index]
                if next == 0x20 || next == 0x09 || next == UInt8(ascii: "\n")
                    || next == UInt8(ascii: "\r") || next == UInt8(ascii: ";")
                    || next == UInt8(ascii: "(") || next == UInt8(ascii: ")")
                    || next == UInt8(ascii: "\"")
                {
                    break
                }
                if next == UInt8(ascii: "\\") && index + 1 < bytes.count {
                    token.append(next)
                    index += 1
                }
                token.append(bytes[index])
                index += 1
            }
            current.tokens.append(Token(bytes: token, quoted: false))
        }
    }
    guard depth == 0 else {
        throw ZoneFileError(file: file, line: parenthesisLine, problem: .unbalancedParentheses)
    }
    finishEntry()
    return entries
}

/// A TTL: seconds, or numbers with units `s m h d w` (`1h30m`), any case.
func parseTTL(_ text: [UInt8]) -> UInt32? {
    guard let first = text.first, first >= 0x30 && first <= 0x39 else { return nil }
    var total: UInt64 = 0
    var number: UInt64 = 0
    var digits = 0
    var sawUnit = false
    for byte in text {
        switch byte {
        case 0x30...0x39:
            number = number * 10 + UInt64(byte - 0x30)
            digits += 1
            guard number <= UInt64(UInt32.max) else { return nil }
        default:
            let multiplier: UInt64
            switch asciiLower(byte) {
            case UInt8(ascii: "s"): multiplier = 1
            case UInt8(ascii: "m"): multiplier = 60
            case UInt8(ascii: "h"): multiplier = 3600
            case UInt8(ascii: "d"): multiplier = 86400
            case UInt8(ascii: "w"): multiplier = 604800
            default: return nil
            }
            guard digits > 0 else { return nil }
            total += number * multiplier
            number = 0
            digits = 0
            sawUnit = true
        }
        guard total <= UInt64(UInt32.max) else { return nil }
    }
    if digits > 0 {
        total += number
    } else if !sawUnit {
        return nil
    }
    return total <= UInt64(UInt32.max) ? UInt32(total) : nil
}

/// The bytes of a token with its `\DDD` and `\X` escapes resolved.
func unescaped(_ token: Token) -> [UInt8]? {
    var result: [UInt8] = []
    var index = 0
    let bytes = token.bytes
    while index < bytes.count {
        if bytes[index] == UInt8(ascii: "\\") {
            guard let (value, used) = try? unescape(bytes, at: index) else { return nil }
            result.append(value)
            index += used
        } else {
            result.append(bytes[index])
            index += 1
        }
    }
    return result
}

struct State {
    var origin: DomainName
    var defaultTTL: UInt32?
    var lastTTL: UInt32?
    var previousOwner: DomainName?
    var records: [ResourceRecord] = []
    var allowIncludes = true

    init(origin: DomainName, defaultTTL: UInt32?) {
        self.origin = origin
        self.defaultTTL = defaultTTL
    }

    mutating func include(path: String, depth: Int) throws(ZoneFileError) {
        guard let file = fopen(path, "rb") else {
            throw ZoneFileError(file: path, line: 0, problem: .cannotRead(errno: errno))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let read = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if read == 0 { break }
            bytes.append(contentsOf: chunk[0..<read])
        }
        if ferror(file) != 0 {
            throw ZoneFileError(file: path, line: 0, problem: .cannotRead(errno: errno))
        }
        try parse(bytes: bytes, file: path, depth: depth)
    }

    mutating func parse(bytes: [UInt8], file: String, depth: Int) throws(ZoneFileError) {
        for entry in try tokenize(bytes, file: file) {
            try handle(entry, file: file, depth: depth)
        }
    }

    func name(_ token: Token, file: String, line: Int) throws(ZoneFileError) -> DomainName {
        if token.bytes == [UInt8(ascii: "@")] && !token.quoted { return origin }
        do {
            return try DomainName(parsing: token.text, origin: origin)
        } catch {
            throw ZoneFileError(file: file, line: line, problem: .badName(token.text, error))
        }
    }

    mutating func handle(_ entry: Entry, file: String, depth: Int) throws(ZoneFileError) {
        var tokens = entry.tokens[...]
        let line = entry.line
        func fail(_ problem: ZoneFileError.Problem) -> ZoneFileError {
            ZoneFileError(file: file, line: line, problem: problem)
        }
        let first = tokens.first!
        if !entry.blankOwner && !first.quoted && first.bytes.first == UInt8(ascii: "$") {
            let directive = first.text.uppercased()
            tokens.removeFirst()
            switch directive {
            case "$ORIGIN":
                guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
                origin = try name(argument, file: file, line: line)
            case "$TTL":
                guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
                guard let ttl = parseTTL(argument.bytes) else { throw fail(.badTTL(argument.text)) }
                defaultTTL = ttl
            case "$INCLUDE":
                guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
                guard depth < ZoneFileParser.maximumIncludeDepth, allowIncludes else {
                    throw fail(.includeTooDeep)
                }
                var path = String(decoding: unescaped(argument) ?? argument.bytes, as: UTF8.self)
                if !path.hasPrefix("/"), let slash = file.lastIndex(of: "/") {
                    path = String(file[...slash]) + path
                }
                // RFC 1035 §5.1: an origin given with $INCLUDE applies to that file
                // only; the including file's origin (and owner) come back afterwards.
                let savedOrigin = origin
                let savedOwner = previousOwner
                if tokens.count > 1 {
                    origin = try name(tokens[tokens.startIndex + 1], file: file, line: line)
                }
                try include(path: path, depth: depth + 1)
                origin = savedOrigin
                previousOwner = savedOwner
            default:
                throw fail(.unknownDirective(first.text))
            }
            return
        }
        let owner: DomainName
        if entry.blankOwner {
            guard let previousOwner else { throw fail(.noPreviousOwner) }
            owner = previousOwner
        } else {
            owner = try name(tokens.removeFirst(), file: file, line: line)
        }
        previousOwner = owner
        var ttl: UInt32?
        var recordClass: RecordClass?
        var type: RecordType?
        while let token = tokens.first, type == nil {
            tokens.removeFirst()
            if ttl == nil, let value = parseTTL(token.bytes) {
                ttl = value
            } else if recordClass == nil, let value = RecordClass(mnemonic: token.text) {
                recordClass = value
            } else if let value = RecordType(mnemonic: token.text), !token.quoted {
                type = value
            } else if token.bytes.first.map({ $0 >= 0x30 && $0 <= 0x39 }) == true && ttl == nil {
                throw fail(.badTTL(token.text))
            } else {
                throw fail(.unknownType(token.text))
            }
        }
        guard let type else { throw fail(.missingArgument("a record type")) }
        if let recordClass, recordClass != .internet {
            throw fail(.unsupportedClass(recordClass.description))
        }
        if let ttl { lastTTL = ttl }
        // RFC 1035 §5.1: no TTL means the last one stated; RFC 2308 §4: $TTL first.
        guard let recordTTL = ttl ?? defaultTTL ?? lastTTL else { throw fail(.noTTL) }
        let data = try recordData(type: type, Array(tokens), file: file, line: line)
        records.append(ResourceRecord(name: owner, type: type, ttl: recordTTL, data: data))
    }

    func recordData(type: RecordType, _ tokens: [Token], file: String, line: Int)
        throws(ZoneFileError) -> RecordData
    {
        func bad(_ reason: String) -> ZoneFileError {
            ZoneFileError(
                file: file, line: line,
                problem: .badRecordData(type: type.description, reason: reason))
        }
        func count(_ expected: Int) throws(ZoneFileError) {
            guard tokens.count == expected else {
                throw bad("expected \(expected) fields, found \(tokens.count)")
            }
        }
        func number<T: FixedWidthInteger>(_ index: Int, _: T.Type, _ what: String)
            throws(ZoneFileError) -> T
        {
            guard let value = T(tokens[index].text) else {
                throw bad("bad \(what) '\(tokens[index].text)'")
            }
            return value
        }
        func target(_ index: Int) throws(ZoneFileError) -> DomainName {
            try name(tokens[index], file: file, line: line)
        }
        // RFC 3597 §5: `\# length hex…` works for every type, known or not.
        if let first = tokens.first, first.bytes == [UInt8(ascii: "\\"), UInt8(ascii: "#")],
            !first.quoted
        {
            guard tokens.count >= 2, let length = Int(tokens[1].text), length >= 0, length <= 65535
            else {
                throw bad("\\# needs a length")
            }
            var hex: [UInt8] = []
            for token in tokens.dropFirst(2) { hex += token.bytes }
            guard hex.count == 2 * length else {
                throw bad("\\# length \(length) but \(hex.count / 2) bytes of hex")
            }
            var data: [UInt8] = []
            data.reserveCapacity(length)
            var index = 0
            while index < hex.count {
                guard let high = hexValue(hex[index]), let low = hexValue(hex[index + 1]) else {
                    throw bad("bad hex digit")
                }
                data.append(high << 4 | low)
                index += 2
            }
            guard type != .opt else { throw bad("OPT is not a zone record") }
            // Known types must still be well formed: decode the bytes as wire data.
            let wire = Bits(data)
            do {
                return try RecordData.read(type: type, from: wire, at: 0, length: data.count)
            } catch {
                throw bad("the \\# data is not a valid \(type) RDATA")
            }
        }
        switch type {
        case .a:
            try count(1)
            guard let address = parseIPv4(tokens[0].bytes) else {
                throw bad("bad IPv4 address '\(tokens[0].text)'")
            }
            return .a(address)
        case .aaaa:
            try count(1)
            guard let address = parseIPv6(tokens[0].text) else {
                throw bad("bad IPv6 address '\(tokens[0].text)'")
            }
            return .aaaa(address)
        case .ns, .cname, .ptr:
            try count(1)
            let name = try target(0)
            return type == .ns ? .ns(name) : type == .cname ? .cname(name) : .ptr(name)
        case .soa:
            try count(7)
            var times: [UInt32] = []
            for index in 3..<7 {
                guard let value = parseTTL(tokens[index].bytes) else {
                    throw bad("bad time '\(tokens[index].text)'")
                }
                times.append(value)
            }
            return .soa(
                StartOfAuthority(
                    primary: try target(0), mailbox: try target(1),
                    serial: try number(2, UInt32.self, "serial"),
                    refresh: times[0], retry: times[1], expire: times[2], minimum: times[3]))
        case .mx:
            try count(2)
            return .mx(
                preference: try number(0, UInt16.self, "preference"), exchange: try target(1))
        case .srv:
            try count(4)
            return .srv(
                priority: try number(0, UInt16.self, "priority"),
                weight: try number(1, UInt16.self, "weight"),
                port: try number(2, UInt16.self, "port"), target: try target(3))
        case .txt:
            guard !tokens.isEmpty else { throw bad("no strings") }
            var strings: [[UInt8]] = []
            var total = 0
            for token in tokens {
                guard let bytes = unescaped(token) else {
                    throw bad("bad escape in '\(token.text)'")
                }
                guard bytes.count <= 255 else { throw bad("a string is longer than 255 bytes") }
                total += 1 + bytes.count
                strings.append(bytes)
            }
            guard total <= 65535 else { throw bad("too long") }
            return .txt(strings)
        case .caa:
            try count(3)
            let flags = try number(0, UInt8.self, "flags")
            let tag = tokens[1].bytes
            guard !tag.isEmpty, tag.count <= 255,
                tag.allSatisfy({
                    ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39)
                })
            else { throw bad("bad tag '\(tokens[1].text)'") }
            guard let value = unescaped(tokens[2]) else { throw bad("bad escape in the value") }
            return .caa(flags: flags, tag: tag, value: value)
        default:
            throw bad("no presentation format known for \(type): use \\# (RFC 3597)")
        }
    }
}

func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x61...0x66: byte - 0x61 + 10
    case 0x41...0x46: byte - 0x41 + 10
    default: nil
    }
}

/// A dotted-quad IPv4 address, four decimal numbers 0–255.
func parseIPv4(_ bytes: [UInt8]) -> UInt32? {
    let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var address: UInt32 = 0
    for part in parts {
        guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = UInt32(String(decoding: part, as: UTF8.self)), value <= 255
        else { return nil }
        address = address << 8 | value
    }
    return address
}

/// An IPv6 address in RFC 4291 §2.2 text form (with `::` and a trailing dotted quad).
func parseIPv6(_ text: String) -> [UInt8]? {
    var groups: [UInt16] = []
    var tail: [UInt16] = []
    var sawGap = false
    var halves: [String] = []
    let bytes = Array(text.utf8)
    var start = 0
    var index = 0
    while index + 1 < bytes.count {
        if bytes[index] == UInt8(ascii: ":") && bytes[index + 1] == UInt8(ascii: ":") {
            halves.append(String(decoding: bytes[start..<index], as: UTF8.self))
            start = index + 2
            index += 2
        } else {
            index += 1
        }
    }
    halves.append(String(decoding: bytes[start...], as: UTF8.self))
    guard halves.count <= 2 else { return nil }
    func parseHalf(_ half: String, allowIPv4: Bool) -> [UInt16]? {
        if half.isEmpty { return [] }
        var result: [UInt16] = []
        let parts = half.split(separator: ":", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1 && allowIPv4 && part.contains(".") {
                guard let v4 = parseIPv4(Array(part.utf8)) else { return nil }
                result += [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
            } else {
                guard !part.isEmpty, part.count <= 4, let value = UInt16(part, radix: 16) else {
                    return nil
                }
                result.append(value)
            }
        }
        return result
    }
    if halves.count == 2 {
        sawGap = true
        guard let head = parseHalf(halves[0], allowIPv4: false),
            let rest = parseHalf(halves[1], allowIPv4: true)
        else { return nil }
        groups = head
        tail = rest
        guard groups.count + tail.count <= 7 else { return nil }
    } else {
        guard let all = parseHalf(halves[0], allowIPv4: true), all.count == 8 else { return nil }
        groups = all
    }
    if sawGap { groups += [UInt16](repeating: 0, count: 8 - groups.count - tail.count) + tail }
    return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
}
