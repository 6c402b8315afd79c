// A small JSON reader and writer (RFC 8259) for control protocols that speak it, such
// as iperf3's parameters and results. Input comes from strangers: the reader is bounded
// in depth, rejects what the grammar does not allow, and never traps.

/// A JSON value. Objects keep their members in order (as written, or as read).
///
/// ```swift
/// let value = try JSONValue(parsing: Array(#"{"time":3,"reverse":true}"#.utf8))
/// let seconds = value["time"]?.integer          // 3
/// let text = JSONValue.object([.init("tcp", true)]).serialized   // {"tcp":true}
/// ```
public enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The deepest nesting of arrays and objects the reader accepts.
    public static let maximumDepth = 32

    /// The value of the first member named `key`, if this is an object that has one.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The number, if this is one.
    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// The number as an integer, truncated toward zero and clamped to `Int`'s range
    /// (as cJSON's `valueint`), if this is a number.
    public var integer: Int? {
        guard case .number(let value) = self else { return nil }
        if value.isNaN { return 0 }
        if value >= 9.223_372_036_854_775e18 { return .max }
        if value <= -9.223_372_036_854_775e18 { return .min }
        return Int(value)
    }

    /// The string, if this is one.
    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The members, if this is an object.
    public var members: [JSONMember]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The elements, if this is an array.
    public var elements: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }
}

/// One member of a JSON object.
public struct JSONMember: Hashable, Sendable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
}

/// What was wrong with a JSON text, and where (a byte offset).
public enum JSONError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The text ended inside a value.
    case truncated
    /// A byte the grammar does not allow here.
    case unexpected(byte: UInt8, at: Int)
    /// A number the grammar does not allow, or that does not fit a double.
    case badNumber(at: Int)
    /// A string escape that is not one of JSON's, or a lone surrogate.
    case badEscape(at: Int)
    /// Arrays and objects nested deeper than ``JSONValue/maximumDepth``.
    case tooDeep(at: Int)
    /// Bytes after the value.
    case trailingBytes(at: Int)

    public var description: String {
        switch self {
        case .truncated: return "JSON text ends inside a value"
        case .unexpected(let byte, let offset): return "unexpected byte \(byte) at \(offset)"
        case .badNumber(let offset): return "malformed number at \(offset)"
        case .badEscape(let offset): return "malformed string escape at \(offset)"
        case .tooDeep(let offset):
            return "nesting deeper than \(JSONValue.maximumDepth) at \(offset)"
        case .trailingBytes(let offset): return "bytes after the value at \(offset)"
        }
    }
}

// MARK: - Reading

extension JSONValue {
    /// Reads one JSON value filling all of `bytes` (whitespace around it allowed).
    ///
    /// - Throws: a ``JSONError`` saying what was wrong and where.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(JSONError) {
        var reader = JSONReader(bytes)
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.atEnd else { throw .trailingBytes(at: reader.offset) }
        self = value
    }

    /// Reads one JSON value filling all of `bytes`.
    public init(parsing bytes: [UInt8]) throws(JSONError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONError) in try JSONValue(parsing: raw) }
        }
        self = try result.get()
    }
}

/// A cursor over the text being read.
private struct JSONReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }

    func peek() throws(JSONError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated }
        return bytes[offset]
    }

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0a, 0x0d: offset += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8) throws(JSONError) {
        let next = try peek()
        guard next == byte else { throw .unexpected(byte: next, at: offset) }
        offset += 1
    }

    mutating func literal(_ text: StaticString, _ value: JSONValue) throws(JSONError) -> JSONValue {
        let start = offset
        for index in 0..<text.utf8CodeUnitCount {
            let byte = try peek()
            guard byte == text.utf8Start[index] else {
                throw .unexpected(byte: byte, at: start + index)
            }
            offset += 1
        }
        return value
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        let byte = try peek()
        switch byte {
        case UInt8(ascii: "{"):
            guard depth < JSONValue.maximumDepth else { throw .tooDeep(at: offset) }
            return try object(depth: depth + 1)
        case UInt8(ascii: "["):
            guard depth < JSONValue.maximumDepth else { throw .tooDeep(at: offset) }
            return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw .unexpected(byte: byte, at: offset)
        }
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        offset += 1  // {
        var members: [JSONMember] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "}") {
            offset += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard try peek() == UInt8(ascii: "\"") else {
                throw .unexpected(byte: try peek(), at: offset)
            }
            let key = try string()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            members.append(JSONMember(key, try value(depth: depth)))
            skipWhitespace()
            let next = try peek()
            offset += 1
            if next == UInt8(ascii: "}") { return .object(members) }
            guard next == UInt8(ascii: ",") else { throw .unexpected(byte: next, at: offset - 1) }
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        offset += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if try peek() == UInt8(ascii: "]") {
            offset += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth))
            skipWhitespace()
            let next = try peek()
            offset += 1
            if next == UInt8(ascii: "]") { return .array(elements) }
            guard next == UInt8(ascii: ",") else { throw .unexpected(byte: next, at: offset - 1) }
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func number() throws(JSONError) -> JSONValue {
        let start = offset
        func digits(_ reader: inout JSONReader) -> Int {
            let first = reader.offset
            while !reader.atEnd,
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(reader.bytes[reader.offset])
            {
                reader.offset += 1
            }
            return reader.offset - first
        }
        if bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard !atEnd else { throw .truncated }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
        } else if digits(&self) == 0 {
            throw .badNumber(at: start)
        }
        if !atEnd, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits(&self) > 0 else { throw .badNumber(at: start) }
        }
        if !atEnd, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            offset += 1
            if !atEnd, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") {
                offset += 1
            }
            guard digits(&self) > 0 else { throw .badNumber(at: start) }
        }
        let text = String(
            decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw .badNumber(at: start) }
        return .number(value)
    }

    mutating func string() throws(JSONError) -> String {
        offset += 1  // "
        var utf8: [UInt8] = []
        while true {
            let byte = try peek()
            offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try escape(into: &utf8)
            case 0..<0x20:
                throw .unexpected(byte: byte, at: offset - 1)
            default:
                utf8.append(byte)
            }
        }
    }

    mutating func escape(into utf8: inout [UInt8]) throws(JSONError) {
        let start = offset - 1
        let byte = try peek()
        offset += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0c)
        case UInt8(ascii: "n"): utf8.append(0x0a)
        case UInt8(ascii: "r"): utf8.append(0x0d)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4(start: start)
            if (0xd800..<0xdc00).contains(scalar) {
                // A high surrogate: its low half must follow as another \u escape.
                guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"),
                    bytes[offset + 1] == UInt8(ascii: "u")
                else { throw .badEscape(at: start) }
                offset += 2
                let low = try hex4(start: start)
                guard (0xdc00..<0xe000).contains(low) else { throw .badEscape(at: start) }
                scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
            } else if (0xdc00..<0xe000).contains(scalar) {
                throw .badEscape(at: start)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw .badEscape(at: start) }
            utf8.append(contentsOf: unicode.utf8)
        default:
            throw .badEscape(at: start)
        }
    }

    mutating func hex4(start: Int) throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = try peek()
            offset += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .badEscape(at: start)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}

// MARK: - Writing

extension JSONValue {
    /// The value as compact JSON text (no whitespace), UTF-8.
    public var serialized: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    /// The value as compact JSON text.
    public var text: String { String(decoding: serialized, as: UTF8.self) }

    private func write(into out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let value): out += Array((value ? "true" : "false").utf8)
        case .number(let value): out += Array(JSONValue.format(value).utf8)
        case .string(let value): JSONValue.write(string: value, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                element.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.write(string: member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Integers as integers (`3`, not `3.0`); others as the shortest text that reads
    /// back the same; what JSON cannot say (NaN, infinities) as `null`, as cJSON does.
    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(.towardZero), abs(value) < 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return "\(value)"
    }

    private static func write(string: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0a: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0d: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
