import OasisBits
import OasisWire

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
///
/// ``parse(file:origin:defaultTTL:each:)`` hands the records over one at a time
/// instead, for zones too large to want an array of them.
public enum ZoneFileParser {
    /// How deep `$INCLUDE`s may nest.
    public static let maximumIncludeDepth = 16

    /// Reads and parses the file at `path`.
    public static func parse(file path: String, origin: DomainName, defaultTTL: UInt32? = nil)
        throws(ZoneFileError) -> [ResourceRecord]
    {
        var records: [ResourceRecord] = []
        try parse(file: path, origin: origin, defaultTTL: defaultTTL) { record, _, _ in
            records.append(record)
        }
        return records
    }

    /// Parses `text` as the contents of a file named `fileName`. `$INCLUDE` reads
    /// files relative to the working directory unless `allowIncludes` is false.
    public static func parse(
        text: String, fileName: String = "<text>", origin: DomainName, defaultTTL: UInt32? = nil,
        allowIncludes: Bool = true
    ) throws(ZoneFileError) -> [ResourceRecord] {
        var state = State(origin: origin, defaultTTL: defaultTTL)
        state.allowIncludes = allowIncludes
        var records: [ResourceRecord] = []
        try state.parse(text: Array(text.utf8), file: fileName, depth: 0) { record, _, _ in
            records.append(record)
        }
        return records
    }
}

extension ZoneFileParser {
    /// Reads the file at `path`, handing each record to `body` in file order, with the
    /// file and line it came from (the line the entry starts on).
    ///
    /// The records are those ``parse(file:origin:defaultTTL:)`` returns and a broken
    /// file throws the same error, but `body` may have been given the records before
    /// the problem by then. An error `body` throws ends the reading and comes out as it
    /// was thrown. Returns the line the file ends on (after its last newline), where
    /// `nsd-checkzone` reports what the zone as a whole lacks.
    @discardableResult
    public static func parse(
        file path: String, origin: DomainName, defaultTTL: UInt32? = nil,
        each body: (ResourceRecord, _ file: String, _ line: Int) throws(ZoneFileError) -> Void
    ) throws(ZoneFileError) -> Int {
        var state = State(origin: origin, defaultTTL: defaultTTL)
        return try state.include(path: path, depth: 0, body: body)
    }
}

/// Where a record goes: the record, its file and the line its entry starts on.
typealias RecordSink = (ResourceRecord, String, Int) throws(ZoneFileError) -> Void

/// One token of an entry: where its raw bytes (escapes still in place, quotes left
/// out) lie in the file's text, whether it was quoted, and what it holds.
struct Token {
    var start: Int
    var end: Int
    var quoted: Bool
    /// It holds a backslash: escapes to resolve.
    var escaped: Bool
    /// Every byte is ASCII, so its text is its bytes and byte-wise case folding is
    /// Unicode's.
    var ascii: Bool

    var range: Range<Int> { start..<end }
}

/// The tokens of one logical entry: one line, or several joined by parentheses.
struct Entry {
    var tokens: [Token] = []
    /// The line the entry starts on.
    var line = 0
    /// The entry's line starts with a space or tab: no owner.
    var blankOwner = false
}

/// Splits master-file text into entries (RFC 1035 §5.1), one at a time: text given
/// whole, or a file read a chunk at a time, holding no more than the entry being
/// scanned and the chunk it ends in.
struct Scanner {
    /// The text: all of it, or for a file, from the current entry on (the tokens'
    /// ranges are offsets into it).
    private(set) var text: [UInt8]
    let file: String
    /// The current entry.
    private(set) var entry = Entry()
    /// The scanner threw: the text is malformed there.
    private(set) var failed = false
    private var cursor = Cursor()
    /// Where more text comes from; nil when `text` is all of it.
    private let source: FileSource?

    /// The most bytes one entry may take in a file (its text, comments and all): the
    /// longest record's text is under 300 KB (65 535 bytes of RDATA as `\ddd`
    /// escapes); more is refused rather than held.
    static let maximumEntryBytes = 4 << 20

    init(text: [UInt8], file: String) {
        self.text = text
        self.file = file
        source = nil
        entry.tokens.reserveCapacity(16)
    }

    /// A scanner reading `source`, a file named `file`, as it goes.
    init(source: FileSource, file: String) {
        text = []
        self.file = file
        self.source = source
        entry.tokens.reserveCapacity(16)
    }

    /// The line the scanner is on: after the last entry, the line the text ends on.
    var line: Int { cursor.line }

    /// The text of `token`, for messages and the exact Unicode paths.
    func string(_ token: Token) -> String {
        String(decoding: text[token.range], as: UTF8.self)
    }

    /// Moves to the next entry; false at the end of the text.
    mutating func nextEntry() throws(ZoneFileError) -> Bool {
        while true {
            let start = cursor
            var found = false
            var problem: ZoneFileError? = nil
            do {
                let text = self.text  // a copy of the reference, so `self` is not borrowed
                found = try cursor.scanEntry(text.span, into: &entry, file: file)
            } catch {
                problem = error
            }
            // An entry is known whole once a newline outside parentheses ends it, or
            // the text ends. A file with more to read, scanned to the end of what is
            // read: the entry may go on there.
            if let source, !source.atEnd, cursor.index >= text.count,
                !(found && cursor.atLineStart && cursor.depth == 0)
            {
                if problem == nil && !found && cursor.atLineStart && cursor.depth == 0 {
                    // Only blank lines and comments: nothing to keep.
                    try refill(from: source, keepingFrom: text.count, line: cursor.line)
                } else {
                    cursor = start
                    try refill(from: source, keepingFrom: start.index, line: start.line)
                }
                continue
            }
            if let problem {
                failed = true
                throw problem
            }
            return found
        }
    }

    /// Drops the text before `keep` (entries done with), then reads the next chunk of
    /// `source`. The entry starting at `keep` (on `line`) may not grow past
    /// ``maximumEntryBytes``.
    private mutating func refill(from source: FileSource, keepingFrom keep: Int, line: Int)
        throws(ZoneFileError)
    {
        if keep > 0 {
            text.removeSubrange(0..<keep)
            cursor.index -= keep
        }
        guard text.count <= Scanner.maximumEntryBytes else {
            failed = true
            throw ZoneFileError(file: file, line: line, problem: .entryTooLong)
        }
        do {
            // As much again as is held: an entry spanning chunks is rescanned from its
            // start after each read, so reads that double keep that linear.
            try source.read(appendingTo: &text, count: max(FileSource.chunk, text.count))
        } catch {
            failed = true
            throw ZoneFileError(file: file, line: 0, problem: .cannotRead(errno: error.code))
        }
    }

    /// The first syntax error in the rest of the text, if any: how a file that was
    /// split whole before being handled would have failed.
    mutating func syntaxErrorInTheRest() -> ZoneFileError? {
        guard !failed else { return nil }
        while true {
            do {
                guard try nextEntry() else { return nil }
            } catch {
                return error
            }
        }
    }
}

/// A zone file read a chunk at a time.
final class FileSource {
    /// A failed read's `errno`.
    struct ReadError: Error { var code: Int32 }

    private let handle: UnsafeMutablePointer<FILE>
    /// The file has no more to give.
    private(set) var atEnd = false
    /// The bytes read at a time.
    static let chunk = 64 * 1024

    /// Opens `path`; nil (with `errno` set) if it cannot.
    init?(path: String) {
        guard let handle = fopen(path, "rb") else { return nil }
        self.handle = handle
    }

    deinit { fclose(handle) }

    /// Appends up to `count` more bytes to `bytes`, or notes the end.
    func read(appendingTo bytes: inout [UInt8], count: Int) throws(ReadError) {
        let chunk = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = fread(buffer.baseAddress, 1, count, handle)
        }
        bytes.append(contentsOf: chunk)
        if chunk.count < count {
            if ferror(handle) != 0 { throw ReadError(code: errno) }
            atEnd = true
        }
    }
}

/// Where a ``Scanner`` is in its text.
private struct Cursor {
    var index = 0
    var line = 1
    var depth = 0
    var parenthesisLine = 0
    var atLineStart = true

    /// Space, tab, newline, carriage return, `;`, `(`, `)` and `"`: the bytes that end
    /// an unquoted token, as bits of a 64-bit mask.
    /// The most tokens one entry may have: a record's RDATA is at most 65 535 bytes,
    /// so no type needs more than twice that many in its text (RFC 3597's hex, a digit
    /// pair per byte, split as finely as it may be), with its owner, TTL, class and
    /// type. An entry of more is refused as it is scanned: a 20 MB line of one-byte
    /// tokens held 816 MB of them before being refused.
    static let maximumTokens = 2 * 65_535 + 8

    static let delimiters: UInt64 =
        1 << 0x20 | 1 << 0x09 | 1 << 0x0a | 1 << 0x0d | 1 << 0x3b | 1 << 0x28 | 1 << 0x29
        | 1 << 0x22

    mutating func scanEntry(_ text: Span<UInt8>, into entry: inout Entry, file: String)
        throws(ZoneFileError) -> Bool
    {
        entry.tokens.removeAll(keepingCapacity: true)
        let count = text.count
        let delimiters = Cursor.delimiters
        while index < count {
            let byte = text[index]
            if atLineStart && depth == 0 {
                if !entry.tokens.isEmpty { return true }
                entry.line = line
                entry.blankOwner = byte == 0x20 || byte == 0x09
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
                while index < count && text[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "("):
                if depth == 0 { parenthesisLine = line }
                depth += 1
                index += 1
            case UInt8(ascii: ")"):
                guard depth > 0 else {
                    throw ZoneFileError(
                        file: file, line: line, problem: .unbalancedParentheses)
                }
                depth -= 1
                index += 1
            case UInt8(ascii: "\""):
                let startLine = line
                index += 1
                let start = index
                var escaped = false
                var bits: UInt8 = 0
                while true {
                    guard index < count else {
                        throw ZoneFileError(
                            file: file, line: startLine, problem: .unterminatedString)
                    }
                    let next = text[index]
                    if next == UInt8(ascii: "\"") { break }
                    if next == UInt8(ascii: "\n") { line += 1 }
                    if next == UInt8(ascii: "\\") {
                        escaped = true
                        if index + 1 < count {
                            index += 1
                            if text[index] == UInt8(ascii: "\n") { line += 1 }
                        }
                    }
                    bits |= text[index]
                    index += 1
                }
                guard entry.tokens.count < Cursor.maximumTokens else {
                    throw ZoneFileError(file: file, line: entry.line, problem: .tooManyTokens)
                }
                entry.tokens.append(
                    Token(
                        start: start, end: index, quoted: true, escaped: escaped,
                        ascii: bits < 0x80))
                index += 1
            default:
                let start = index
                var escaped = false
                var bits: UInt8 = 0
                while index < count {
                    let next = text[index]
                    if next < 64 && (delimiters >> UInt64(next)) & 1 != 0 { break }
                    if next == UInt8(ascii: "\\") {
                        escaped = true
                        if index + 1 < count { index += 1 }
                    }
                    bits |= text[index]
                    index += 1
                }
                guard entry.tokens.count < Cursor.maximumTokens else {
                    throw ZoneFileError(file: file, line: entry.line, problem: .tooManyTokens)
                }
                entry.tokens.append(
                    Token(
                        start: start, end: index, quoted: false, escaped: escaped,
                        ascii: bits < 0x80))
            }
        }
        guard depth == 0 else {
            throw ZoneFileError(file: file, line: parenthesisLine, problem: .unbalancedParentheses)
        }
        return !entry.tokens.isEmpty
    }
}

extension ZoneFileParser {
    /// The largest TTL a zone may give (RFC 2181 §8: 2³¹ − 1 seconds).
    public static let largestTTL: UInt32 = 0x7fff_ffff
    /// What a TTL above ``largestTTL`` (up to 2³² − 1) becomes: RFC 2181 §8 asks that
    /// it be read as zero, NSD 4.6 loads the record (or takes the `$TTL`) with its
    /// default TTL, 3600; we do as NSD does, so the two serve the same zone alike.
    public static let ttlInPlaceOfTooLarge: UInt32 = 3600

    /// `ttl`, or ``ttlInPlaceOfTooLarge`` if it is above ``largestTTL``.
    static func servedTTL(_ ttl: UInt32) -> UInt32 {
        ttl > largestTTL ? ttlInPlaceOfTooLarge : ttl
    }
}

/// A TTL: seconds, or numbers with units `s m h d w` (`1h30m`), any case.
func parseTTL(_ text: Span<UInt8>) -> UInt32? {
    guard !text.isEmpty, text[0] >= 0x30 && text[0] <= 0x39 else { return nil }
    var total: UInt64 = 0
    var number: UInt64 = 0
    var digits = 0
    var sawUnit = false
    for index in text.indices {
        let byte = text[index]
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

/// `bytes` with their `\DDD` and `\X` escapes resolved.
func unescaped(_ bytes: Span<UInt8>) -> [UInt8]? {
    var result: [UInt8] = []
    result.reserveCapacity(bytes.count)
    var index = 0
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

/// An unsigned decimal number in `bytes`, or nil if it does not fit `T`. Only digits:
/// the caller decides what else means.
func decimal<T: FixedWidthInteger>(_ bytes: Span<UInt8>, as _: T.Type) -> T? {
    var value: T = 0
    for index in bytes.indices {
        let digit = bytes[index] &- 0x30
        guard digit < 10 else { return nil }
        let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
        let (sum, carry) = times10.addingReportingOverflow(T(digit))
        guard !overflow && !carry else { return nil }
        value = sum
    }
    return value
}

/// `bytes` (at most 7) upper-cased in ASCII and packed with their count into one
/// integer, for matching mnemonics; nil for more than 7 bytes.
func packedUppercase(_ bytes: Span<UInt8>) -> UInt64? {
    guard bytes.count <= 7 else { return nil }
    var packed = UInt64(bytes.count) << 56
    var shift: UInt64 = 0
    for index in bytes.indices {
        let byte = bytes[index]
        let upper = byte &- 0x61 < 26 ? byte & 0xdf : byte
        packed |= UInt64(upper) << shift
        shift += 8
    }
    return packed
}

/// Whether `bytes` starts with `prefix` (upper-case ASCII), ignoring ASCII case.
func hasUppercasePrefix(_ bytes: Span<UInt8>, _ prefix: StaticString) -> Bool {
    guard bytes.count >= prefix.utf8CodeUnitCount else { return false }
    var index = 0
    while index < prefix.utf8CodeUnitCount {
        let actual = bytes[index]
        guard (actual &- 0x61 < 26 ? actual & 0xdf : actual) == prefix.utf8Start[index] else {
            return false
        }
        index += 1
    }
    return true
}

/// ``RecordType/mnemonics`` packed by ``packedUppercase(_:)``.
let packedTypeMnemonics: [(UInt64, RecordType)] = RecordType.mnemonics.compactMap { name, type in
    packedUppercase(Array(name.utf8).span).map { ($0, type) }
}

/// ``RecordType/init(mnemonic:)`` for ASCII bytes, without making a string.
func recordType(ascii bytes: Span<UInt8>) -> RecordType? {
    if let packed = packedUppercase(bytes) {
        for (key, type) in packedTypeMnemonics where key == packed { return type }
    } else if bytes.count <= 10 {
        // NSEC3PARAM, OPENPGPKEY, IPSECKEY: longer than a packed key holds.
        var text: [UInt8] = []
        for index in bytes.indices { text.append(bytes[index]) }
        if let type = RecordType(mnemonic: String(decoding: text, as: UTF8.self)),
            !hasUppercasePrefix(bytes, "TYPE")
        {
            return type
        }
    }
    guard bytes.count > 4, hasUppercasePrefix(bytes, "TYPE"),
        let code = decimal(bytes.extracting(droppingFirst: 4), as: UInt16.self)
    else { return nil }
    return RecordType(rawValue: code)
}

/// ``RecordClass/init(mnemonic:)`` for ASCII bytes, without making a string.
func recordClass(ascii bytes: Span<UInt8>) -> RecordClass? {
    if bytes.count == 2, let packed = packedUppercase(bytes) {
        switch packed {
        case packedIN: return .internet
        case packedCH: return .chaos
        case packedHS: return .hesiod
        default: return nil
        }
    }
    guard bytes.count > 5, hasUppercasePrefix(bytes, "CLASS"),
        let code = decimal(bytes.extracting(droppingFirst: 5), as: UInt16.self)
    else { return nil }
    return RecordClass(rawValue: code)
}

private let packedIN: UInt64 = 2 << 56 | UInt64(UInt8(ascii: "N")) << 8 | UInt64(UInt8(ascii: "I"))
private let packedCH: UInt64 = 2 << 56 | UInt64(UInt8(ascii: "H")) << 8 | UInt64(UInt8(ascii: "C"))
private let packedHS: UInt64 = 2 << 56 | UInt64(UInt8(ascii: "S")) << 8 | UInt64(UInt8(ascii: "H"))

struct State {
    var origin: DomainName
    var defaultTTL: UInt32?
    var lastTTL: UInt32?
    var previousOwner: DomainName?
    var allowIncludes = true
    /// The caller's `body` threw: its error passes through untouched.
    var bodyFailed = false

    init(origin: DomainName, defaultTTL: UInt32?) {
        self.origin = origin
        self.defaultTTL = defaultTTL
    }

    /// Parses the file at `path`; the line it ends on.
    @discardableResult
    mutating func include(path: String, depth: Int, body: RecordSink) throws(ZoneFileError)
        -> Int
    {
        // Streamed: what is held is the entry being read and the chunk it ends in.
        guard let source = FileSource(path: path) else {
            throw ZoneFileError(file: path, line: 0, problem: .cannotRead(errno: errno))
        }
        return try parse(Scanner(source: source, file: path), depth: depth, body: body)
    }

    /// Parses `text`; the line it ends on.
    @discardableResult
    mutating func parse(text: [UInt8], file: String, depth: Int, body: RecordSink)
        throws(ZoneFileError) -> Int
    {
        try parse(Scanner(text: text, file: file), depth: depth, body: body)
    }

    /// Parses what `scanner` gives; the line it ends on.
    mutating func parse(_ scanner: consuming Scanner, depth: Int, body: RecordSink)
        throws(ZoneFileError) -> Int
    {
        var scanner = scanner
        do {
            while try scanner.nextEntry() {
                try handle(scanner, depth: depth, body: body)
            }
            return scanner.line
        } catch {
            // A file used to be split into entries whole before any was handled: a
            // syntax error anywhere in it wins over a problem met handling an entry, or
            // in a file it includes. What `body` throws is not ours to replace.
            if !bodyFailed, let syntaxError = scanner.syntaxErrorInTheRest() {
                throw syntaxError
            }
            throw error
        }
    }

    func name(_ token: Token, in scanner: Scanner, line: Int) throws(ZoneFileError) -> DomainName {
        let bytes = scanner.text.span.extracting(token.range)
        if !token.quoted && bytes.count == 1 && bytes[0] == UInt8(ascii: "@") { return origin }
        do {
            if token.ascii {
                return try DomainName(presentation: bytes, origin: origin)
            }
            // Not ASCII: the text, as decoded (invalid UTF-8 becomes U+FFFD), is parsed.
            return try DomainName(parsing: scanner.string(token), origin: origin)
        } catch {
            throw ZoneFileError(
                file: scanner.file, line: line, problem: .badName(scanner.string(token), error))
        }
    }

    mutating func handle(_ scanner: Scanner, depth: Int, body: RecordSink) throws(ZoneFileError) {
        let text = scanner.text.span
        let line = scanner.entry.line
        let file = scanner.file
        func fail(_ problem: ZoneFileError.Problem) -> ZoneFileError {
            ZoneFileError(file: file, line: line, problem: problem)
        }
        guard let first = scanner.entry.tokens.first else { return }
        if !scanner.entry.blankOwner && !first.quoted && first.start < first.end
            && text[first.start] == UInt8(ascii: "$")
        {
            try directive(scanner, depth: depth, body: body)
            return
        }
        var next = 0
        let owner: DomainName
        if scanner.entry.blankOwner {
            guard let previousOwner else { throw fail(.noPreviousOwner) }
            owner = previousOwner
        } else {
            owner = try name(first, in: scanner, line: line)
            next = 1
        }
        previousOwner = owner
        var ttl: UInt32?
        var recordClass: RecordClass?
        var type: RecordType?
        while next < scanner.entry.tokens.count, type == nil {
            let token = scanner.entry.tokens[next]
            next += 1
            let bytes = text.extracting(token.range)
            if ttl == nil, let value = parseTTL(bytes) {
                ttl = ZoneFileParser.servedTTL(value)
            } else if recordClass == nil,
                let value = token.ascii
                    ? OasisDNS.recordClass(ascii: bytes)
                    : RecordClass(mnemonic: scanner.string(token))
            {
                recordClass = value
            } else if !token.quoted,
                let value = token.ascii
                    ? recordType(ascii: bytes) : RecordType(mnemonic: scanner.string(token))
            {
                type = value
            } else if !bytes.isEmpty && bytes[0] &- 0x30 < 10 && ttl == nil {
                throw fail(.badTTL(scanner.string(token)))
            } else {
                throw fail(.unknownType(scanner.string(token)))
            }
        }
        guard let type else { throw fail(.missingArgument("a record type")) }
        if let recordClass, recordClass != .internet {
            throw fail(.unsupportedClass(recordClass.description))
        }
        if let ttl { lastTTL = ttl }
        // RFC 1035 §5.1: no TTL means the last one stated; RFC 2308 §4: $TTL first.
        guard let recordTTL = ttl ?? defaultTTL ?? lastTTL else { throw fail(.noTTL) }
        let data = try recordData(type: type, scanner, from: next, line: line)
        let record = ResourceRecord(name: owner, type: type, ttl: recordTTL, data: data)
        do {
            try body(record, file, line)
        } catch {
            bodyFailed = true
            throw error
        }
    }

    /// `$ORIGIN`, `$TTL` or `$INCLUDE`: the current entry starts with `$`.
    mutating func directive(_ scanner: Scanner, depth: Int, body: RecordSink)
        throws(ZoneFileError)
    {
        let line = scanner.entry.line
        let file = scanner.file
        func fail(_ problem: ZoneFileError.Problem) -> ZoneFileError {
            ZoneFileError(file: file, line: line, problem: problem)
        }
        var tokens = scanner.entry.tokens[...]
        let first = tokens.removeFirst()
        let directive = scanner.string(first).uppercased()
        switch directive {
        case "$ORIGIN":
            guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
            origin = try name(argument, in: scanner, line: line)
        case "$TTL":
            guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
            guard let ttl = parseTTL(scanner.text.span.extracting(argument.range)) else {
                throw fail(.badTTL(scanner.string(argument)))
            }
            defaultTTL = ZoneFileParser.servedTTL(ttl)
        case "$INCLUDE":
            guard let argument = tokens.first else { throw fail(.missingArgument(directive)) }
            guard allowIncludes else { throw fail(.includeNotFollowed) }
            guard depth < ZoneFileParser.maximumIncludeDepth else {
                throw fail(.includeTooDeep)
            }
            let bytes = unescaped(scanner.text.span.extracting(argument.range))
            var path = String(decoding: bytes ?? Array(scanner.text[argument.range]), as: UTF8.self)
            if !path.hasPrefix("/"), let slash = file.lastIndex(of: "/") {
                path = String(file[...slash]) + path
            }
            // RFC 1035 §5.1: an origin given with $INCLUDE applies to that file
            // only; the including file's origin (and owner) come back afterwards.
            let savedOrigin = origin
            let savedOwner = previousOwner
            if tokens.count > 1 {
                origin = try name(tokens[tokens.startIndex + 1], in: scanner, line: line)
            }
            // A device or a pipe (`$INCLUDE /dev/zero`) would be read without end: only
            // regular files are included (a missing one fails as it opens).
            var status = stat()
            guard stat(path, &status) == 0 else {
                // Where the $INCLUDE is, as nsd-checkzone says it.
                throw fail(.cannotOpenInclude(path, errno: errno))
            }
            if status.st_mode & S_IFMT != S_IFREG {
                throw fail(.notARegularFile(path))
            }
            try include(path: path, depth: depth + 1, body: body)
            origin = savedOrigin
            previousOwner = savedOwner
        default:
            throw fail(.unknownDirective(scanner.string(first)))
        }
    }

    /// The RDATA of a `type` record: the current entry's tokens from `first` on.
    func recordData(type: RecordType, _ scanner: Scanner, from first: Int, line: Int)
        throws(ZoneFileError) -> RecordData
    {
        let fields = scanner.entry.tokens.count - first
        let text = scanner.text.span
        func bad(_ reason: String) -> ZoneFileError {
            ZoneFileError(
                file: scanner.file, line: line,
                problem: .badRecordData(type: type.description, reason: reason))
        }
        func count(_ expected: Int) throws(ZoneFileError) {
            guard fields == expected else {
                throw bad("expected \(expected) fields, found \(fields)")
            }
        }
        func token(_ index: Int) -> Token { scanner.entry.tokens[first + index] }
        func range(_ index: Int) -> Range<Int> { token(index).range }
        func string(_ index: Int) -> String { scanner.string(token(index)) }
        func number<T: FixedWidthInteger>(_ index: Int, _: T.Type) -> T? {
            // Digits only: read here. Anything else as Swift reads integers (a sign…).
            if let value = decimal(text.extracting(range(index)), as: T.self),
                !range(index).isEmpty
            {
                return value
            }
            return T(string(index))
        }
        func number<T: FixedWidthInteger>(_ index: Int, _ type: T.Type, _ what: String)
            throws(ZoneFileError) -> T
        {
            guard let value = number(index, type) else {
                throw bad("bad \(what) '\(string(index))'")
            }
            return value
        }
        func target(_ index: Int) throws(ZoneFileError) -> DomainName {
            try name(token(index), in: scanner, line: line)
        }
        // RFC 3597 §5: `\# length hex…` works for every type, known or not.
        if fields > 0, !token(0).quoted, range(0).count == 2,
            text[token(0).start] == UInt8(ascii: "\\"),
            text[token(0).start + 1] == UInt8(ascii: "#")
        {
            guard fields >= 2, let length = number(1, Int.self), length >= 0, length <= 65535
            else {
                throw bad("\\# needs a length")
            }
            var hex: [UInt8] = []
            for index in 2..<fields { hex += scanner.text[range(index)] }
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
            // The one IPv4 text parser: no leading zeros, as nsd-checkzone.
            guard let address = IPv4Address(bytes: text.extracting(range(0))) else {
                throw bad("bad IPv4 address '\(string(0))'")
            }
            return .a(address.rawValue)
        case .aaaa:
            try count(1)
            guard let address = parseIPv6(text.extracting(range(0))) else {
                throw bad("bad IPv6 address '\(string(0))'")
            }
            return .aaaa(address)
        case .ns, .cname, .ptr:
            try count(1)
            let name = try target(0)
            return type == .ns ? .ns(name) : type == .cname ? .cname(name) : .ptr(name)
        case .soa:
            try count(7)
            func time(_ index: Int) throws(ZoneFileError) -> UInt32 {
                guard let value = parseTTL(text.extracting(range(index))) else {
                    throw bad("bad time '\(string(index))'")
                }
                return value
            }
            let refresh = try time(3)
            let retry = try time(4)
            let expire = try time(5)
            let minimum = try time(6)
            return .soa(
                StartOfAuthority(
                    primary: try target(0), mailbox: try target(1),
                    serial: try number(2, UInt32.self, "serial"),
                    refresh: refresh, retry: retry, expire: expire, minimum: minimum))
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
            guard fields > 0 else { throw bad("no strings") }
            var strings: [[UInt8]] = []
            strings.reserveCapacity(fields)
            var total = 0
            for index in 0..<fields {
                let bytes =
                    token(index).escaped
                    ? unescaped(text.extracting(range(index))) : Array(scanner.text[range(index)])
                guard let bytes else {
                    throw bad("bad escape in '\(string(index))'")
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
            let tag = Array(scanner.text[range(1)])
            guard !tag.isEmpty, tag.count <= 255,
                tag.allSatisfy({
                    ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39)
                })
            else { throw bad("bad tag '\(string(1))'") }
            guard let value = unescaped(text.extracting(range(2))) else {
                throw bad("bad escape in the value")
            }
            return .caa(flags: flags, tag: tag, value: value)
        default:
            var reader = RecordTextReader(
                text: scanner.text, tokens: scanner.entry.tokens[(first)...], origin: origin)
            do {
                return .opaque(try reader.rdata(type: type))
            } catch {
                throw bad(error.reason)
            }
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

/// ``parseIPv6(_:)`` for bytes. Hex digits, colons and dots are read here; any other
/// text is read as the string it decodes to.
func parseIPv6(_ bytes: Span<UInt8>) -> [UInt8]? {
    let colon = UInt8(ascii: ":")
    let dot = UInt8(ascii: ".")
    for index in bytes.indices {
        let byte = bytes[index]
        guard hexValue(byte) != nil || byte == colon || byte == dot else {
            var text: [UInt8] = []
            text.reserveCapacity(bytes.count)
            for index in bytes.indices { text.append(bytes[index]) }
            return parseIPv6(String(decoding: text, as: UTF8.self))
        }
    }
    // Split at `::`, left to right, as the string reader does; at most once.
    var gap: Int? = nil
    var index = 0
    while index + 1 < bytes.count {
        if bytes[index] == colon && bytes[index + 1] == colon {
            guard gap == nil else { return nil }
            gap = index
            index += 2
        } else {
            index += 1
        }
    }
    /// How many 16-bit groups `half` has, if it is well formed.
    func groups(_ half: Span<UInt8>, allowIPv4: Bool) -> Int {
        guard !half.isEmpty else { return 0 }
        var count = 1
        var sawDot = false
        for index in half.indices {
            if half[index] == colon {
                count += 1
                sawDot = false
            } else if half[index] == dot {
                sawDot = true
            }
        }
        return allowIPv4 && sawDot ? count + 1 : count
    }
    var address = [UInt8](repeating: 0, count: 16)
    /// Writes the groups of `half` from group `first` on; false if it is malformed.
    func write(_ half: Span<UInt8>, allowIPv4: Bool, from first: Int) -> Bool {
        var offset = 2 * first
        var start = 0
        while start < half.count {
            var end = start
            var sawDot = false
            while end < half.count && half[end] != colon {
                if half[end] == dot { sawDot = true }
                end += 1
            }
            if end == half.count && allowIPv4 && sawDot {
                guard let v4 = IPv4Address(bytes: half.extracting(start..<end))?.rawValue,
                    offset + 4 <= 16
                else { return false }
                address[offset] = UInt8(v4 >> 24)
                address[offset + 1] = UInt8((v4 >> 16) & 0xff)
                address[offset + 2] = UInt8((v4 >> 8) & 0xff)
                address[offset + 3] = UInt8(v4 & 0xff)
                return true
            }
            guard end > start, end - start <= 4, offset + 2 <= 16 else { return false }
            var value: UInt16 = 0
            for position in start..<end {
                guard let digit = hexValue(half[position]) else { return false }
                value = value << 4 | UInt16(digit)
            }
            address[offset] = UInt8(value >> 8)
            address[offset + 1] = UInt8(value & 0xff)
            offset += 2
            if end == half.count { return true }
            start = end + 1
            // A colon at the very end leaves an empty last group.
            if start == half.count { return false }
        }
        return true
    }
    if let gap {
        let head = bytes.extracting(0..<gap)
        let tail = bytes.extracting((gap + 2)...)
        let tailGroups = groups(tail, allowIPv4: true)
        guard groups(head, allowIPv4: false) + tailGroups <= 7,
            write(head, allowIPv4: false, from: 0),
            write(tail, allowIPv4: true, from: 8 - tailGroups)
        else { return nil }
    } else {
        guard groups(bytes, allowIPv4: true) == 8, write(bytes, allowIPv4: true, from: 0) else {
            return nil
        }
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
                guard let v4 = IPv4Address(part)?.rawValue else { return nil }
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
