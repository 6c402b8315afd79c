// What an `ImpairedDevice` does to frames, and the text form it is given in on the
// command line (`--impair loss=2%,delay=5ms,seed=42`).

/// A probability, held exactly in parts per billion so that a specification reads back
/// as it was written (`0.1%` stays `0.1%`, not `0.1000000000000001%`).
///
/// ```swift
/// let loss = Probability(percent: 2)        // 2%
/// loss.partsPerBillion                       // 20_000_000
/// ```
public struct Probability: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// One in a billion units: 1% is 10 000 000.
    public let partsPerBillion: UInt32

    /// Never.
    public static let zero = Probability(partsPerBillion: 0)
    /// Always.
    public static let one = Probability(partsPerBillion: 1_000_000_000)

    /// `partsPerBillion` clamped to `0...1_000_000_000`.
    public init(partsPerBillion: UInt32) {
        self.partsPerBillion = min(partsPerBillion, 1_000_000_000)
    }

    /// `percent` (0...100) rounded to the nearest part per billion; a value outside the
    /// range, or not a number, is clamped into it (NaN is zero).
    public init(percent: Double) {
        guard percent.isFinite, percent > 0 else {
            self.init(partsPerBillion: percent == .infinity ? 1_000_000_000 : 0)
            return
        }
        let parts = min(percent, 100) * 10_000_000
        self.init(partsPerBillion: UInt32(parts.rounded()))
    }

    /// The probability as a fraction in 0...1.
    public var fraction: Double { Double(partsPerBillion) / 1e9 }

    /// Whether it never happens.
    public var isZero: Bool { partsPerBillion == 0 }

    public static func < (lhs: Probability, rhs: Probability) -> Bool {
        lhs.partsPerBillion < rhs.partsPerBillion
    }

    /// `2%`, `0.1%`, `0%`: the form the parser reads.
    public var description: String {
        let whole = partsPerBillion / 10_000_000
        var fraction = partsPerBillion % 10_000_000
        guard fraction != 0 else { return "\(whole)%" }
        var digits = 7
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text + "%"
    }
}

/// What is done to the frames going one way through an ``ImpairedDevice``: the stages a
/// frame passes, in this order.
///
/// 1. **loss**: the frame is dropped.
/// 2. **duplication**: a copy is made; the frame and its copy go through the rest each
///    on its own.
/// 3. **corruption**: one random bit of one random byte after the Ethernet header is
///    flipped, so that the IP, UDP or TCP checksum catches it.
/// 4. **reordering**: the frame is held back and released after the next
///    ``reorderGap`` frames have passed it, or after ``reorderTimeout`` if fewer come.
/// 5. **delay**: the frame waits ``delay`` plus a uniform draw in
///    `-jitter...+jitter` (never below zero). Delay keeps the order frames came in
///    (a frame never leaves before one that came before it): reordering is its own stage.
/// 6. **rate**: a token bucket of ``burst`` bytes refilled at ``rate`` bits per second;
///    a frame waits in a queue until the bucket holds its size, and one that finds the
///    queue full is dropped.
///
/// Each queue (frames set aside for reordering, delayed frames, frames waiting for the
/// rate) holds at most ``limit`` frames; a frame with no room is dropped and counted.
///
/// ```swift
/// var impairment = Impairment()
/// impairment.loss = Probability(percent: 5)
/// impairment.delay = .milliseconds(20)
/// ```
public struct Impairment: Hashable, Sendable {
    /// The chance that a frame is dropped.
    public var loss: Probability = .zero
    /// The chance that a frame is sent twice.
    public var duplicate: Probability = .zero
    /// The chance that a frame is held back and overtaken.
    public var reorder: Probability = .zero
    /// How many frames overtake one held back for reordering (at least 1).
    public var reorderGap: Int = 3
    /// The longest a frame is held back for reordering when fewer frames come.
    public var reorderTimeout: Duration = .milliseconds(10)
    /// The chance that a frame has one bit flipped.
    public var corrupt: Probability = .zero
    /// How long every frame waits.
    public var delay: Duration = .zero
    /// The spread of the delay: each frame's is `delay` plus a uniform draw in
    /// `-jitter...+jitter`, never below zero.
    public var jitter: Duration = .zero
    /// The rate frames leave at, in bits per second of Ethernet frame (header
    /// included, no preamble or gap); nil for no limit.
    public var rate: UInt64?
    /// The bytes the rate's token bucket holds: how much may leave at once after a
    /// pause. At least the largest frame, whatever it says.
    public var burst: Int = 16 * 1024
    /// The most frames each queue holds.
    public var limit: Int = 1000

    /// No impairment.
    public init() {}

    /// Whether frames pass untouched (then the device does nothing to them at all).
    public var isNone: Bool {
        loss.isZero && duplicate.isZero && reorder.isZero && corrupt.isZero && delay <= .zero
            && jitter <= .zero && rate == nil
    }

    /// Whether any frame may be held in a queue: by reordering, delay or rate.
    public var holdsFrames: Bool {
        !reorder.isZero || delay > .zero || jitter > .zero || rate != nil
    }
}

/// What an ``ImpairedDevice`` does each way, and the seed its random choices come from.
///
/// Written as text (the `--impair` option of `oasis stack` and `oasis dns`): fields
/// `NAME=VALUE` separated by commas. A field applies to both directions unless it is
/// prefixed with `in:` (frames the device receives, on their way to the stack) or
/// `out:` (frames the stack transmits); a later field overrides an earlier one for the
/// directions it names. `seed` belongs to no direction. An empty specification, or
/// `none`, impairs nothing.
///
/// | field | value | default |
/// | --- | --- | --- |
/// | `loss`, `dup`, `reorder`, `corrupt` | a probability: `2%`, `0.5%`, or a fraction `0.02` | 0 |
/// | `reorder-gap` | frames that overtake a held-back one, 1...10000 | 3 |
/// | `reorder-timeout` | a duration: `10ms`, `500us`, `1s`, `250ns` (at most 60 s) | 10ms |
/// | `delay`, `jitter` | a duration | 0 |
/// | `rate` | bits per second: `100mbit`, `1gbit`, `64kbit`, `9600bit` (decimal units), or `none` | none |
/// | `burst` | bytes: `16kb`, `1mb`, `3000b` (binary units), at most 64 MiB | 16kb |
/// | `limit` | frames each queue holds, 1...100000 | 1000 |
/// | `seed` | an unsigned 64-bit integer, decimal or `0x` hexadecimal | 0 |
///
/// ```swift
/// let configuration = try ImpairmentConfiguration(
///     parsing: "loss=2%,dup=1%,reorder=1%,delay=5ms,jitter=1ms,out:rate=100mbit,seed=42")
/// configuration.inbound.loss           // 2%
/// configuration.inbound.rate           // nil: only what the stack sends is limited
/// ```
///
/// The same seed and the same configuration make the same decisions frame after frame.
public struct ImpairmentConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// What is done to frames the device receives, before the stack sees them.
    public var inbound: Impairment
    /// What is done to frames the stack transmits, before the device sends them.
    public var outbound: Impairment
    /// The seed every random decision is drawn from.
    public var seed: UInt64

    /// A configuration of the two directions and the seed.
    public init(
        inbound: Impairment = Impairment(), outbound: Impairment = Impairment(), seed: UInt64 = 0
    ) {
        self.inbound = inbound
        self.outbound = outbound
        self.seed = seed
    }

    /// The same impairment both ways.
    public init(both impairment: Impairment, seed: UInt64 = 0) {
        self.init(inbound: impairment, outbound: impairment, seed: seed)
    }

    /// Whether neither direction is impaired.
    public var isNone: Bool { inbound.isNone && outbound.isNone }

    /// The configuration `specification` describes (see the type's documentation).
    ///
    /// - Throws: an ``ImpairmentSpecificationError`` naming the field that is wrong.
    public init(parsing specification: String) throws(ImpairmentSpecificationError) {
        self.init()
        let trimmed = specification.trimmingSpaces
        if trimmed.isEmpty || trimmed == "none" { return }
        var seedSeen = false
        for (position, rawItem) in trimmed.split(separator: ",", omittingEmptySubsequences: false)
            .enumerated()
        {
            let item = Substring(rawItem).trimmingSpaces
            guard !item.isEmpty else { throw .emptyField(position: position + 1) }
            var name = item
            var directions: Set<Direction> = [.inbound, .outbound]
            if let colon = item.firstIndex(of: ":") {
                let prefix = String(item[..<colon])
                switch prefix {
                case "in": directions = [.inbound]
                case "out": directions = [.outbound]
                default: throw .unknownDirection(field: item, direction: prefix)
                }
                name = String(item[item.index(after: colon)...])
            }
            guard let equals = name.firstIndex(of: "=") else {
                throw .missingValue(field: name)
            }
            let field = String(name[..<equals]).trimmingSpaces
            let value = String(name[name.index(after: equals)...]).trimmingSpaces
            guard !value.isEmpty else { throw .missingValue(field: field) }
            if field == "seed" {
                guard directions.count == 2 else { throw .seedHasNoDirection }
                guard !seedSeen else { throw .repeated(field: "seed") }
                seedSeen = true
                seed = try Self.parseSeed(value)
                continue
            }
            for direction in [Direction.inbound, .outbound] where directions.contains(direction) {
                let known =
                    direction == .inbound
                    ? try inbound.set(field, to: value) : try outbound.set(field, to: value)
                guard known else { throw .unknownField(field) }
            }
        }
    }

    private enum Direction { case inbound, outbound }

    /// The fields a specification may name, in the order ``description`` writes them.
    public static let fieldNames = [
        "loss", "dup", "reorder", "reorder-gap", "reorder-timeout", "corrupt", "delay", "jitter",
        "rate", "burst", "limit", "seed",
    ]

    // MARK: Values

    /// `2%` (0...100) or a fraction `0.02` (0...1).
    static func parseProbability(_ field: String, _ value: String)
        throws(ImpairmentSpecificationError)
        -> Probability
    {
        let isPercent = value.hasSuffix("%")
        let number = isPercent ? String(value.dropLast()).trimmingSpaces : value
        guard let amount = parseDecimal(number) else {
            throw .invalidValue(
                field: field, value: value, expected: "a probability such as 2% or 0.02")
        }
        let percent = isPercent ? amount : amount * 100
        guard percent >= 0, percent <= 100 else {
            throw .outOfRange(field: field, value: value, allowed: "0% to 100%")
        }
        return Probability(percent: percent)
    }

    /// A non-negative decimal number, without exponents, infinities or NaN.
    private static func parseDecimal(_ text: String) -> Double? {
        guard !text.isEmpty, text.count <= 32,
            text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            text.filter({ $0 == "." }).count <= 1, text != "."
        else { return nil }
        guard let number = Double(text), number.isFinite else { return nil }
        return number
    }

    /// The number and the unit of `value`: `5ms` is (5, "ms").
    private static func splitUnit(_ value: String) -> (number: String, unit: String) {
        let digits = value.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        return (String(digits), String(value.dropFirst(digits.count)).trimmingSpaces.lowercased())
    }

    static let longestDuration = Duration.seconds(60)

    /// `10ms`, `1.5ms`, `500us`, `2s`, `100ns`; `0` alone needs no unit.
    static func parseDuration(_ field: String, _ value: String) throws(ImpairmentSpecificationError)
        -> Duration
    {
        let (number, unit) = splitUnit(value)
        let expected = "a duration such as 5ms, 500us, 1s or 100ns"
        guard let amount = parseDecimal(number) else {
            throw .invalidValue(field: field, value: value, expected: expected)
        }
        let nanosecondsPerUnit: Double
        switch unit {
        case "ns": nanosecondsPerUnit = 1
        case "us", "µs": nanosecondsPerUnit = 1e3
        case "ms": nanosecondsPerUnit = 1e6
        case "s": nanosecondsPerUnit = 1e9
        case "" where amount == 0: nanosecondsPerUnit = 1
        default: throw .invalidValue(field: field, value: value, expected: expected)
        }
        let nanoseconds = (amount * nanosecondsPerUnit).rounded()
        guard nanoseconds <= 60e9 else {
            throw .outOfRange(field: field, value: value, allowed: "0 to 60s")
        }
        return .nanoseconds(Int64(nanoseconds))
    }

    /// `100mbit`, `1.5gbit`, `64kbit`, `9600bit`: decimal units, as `tc` writes them.
    static func parseRate(_ field: String, _ value: String) throws(ImpairmentSpecificationError)
        -> UInt64
    {
        let (number, unit) = splitUnit(value)
        let expected = "a rate such as 100mbit, 1gbit, 64kbit or 9600bit"
        guard let amount = parseDecimal(number) else {
            throw .invalidValue(field: field, value: value, expected: expected)
        }
        let multiplier: Double
        switch unit {
        case "bit": multiplier = 1
        case "kbit": multiplier = 1e3
        case "mbit": multiplier = 1e6
        case "gbit": multiplier = 1e9
        default: throw .invalidValue(field: field, value: value, expected: expected)
        }
        let bits = (amount * multiplier).rounded()
        guard bits >= 1, bits <= 1e12 else {
            throw .outOfRange(field: field, value: value, allowed: "1bit to 1000gbit")
        }
        return UInt64(bits)
    }

    /// `16kb`, `1mb`, `3000b` or a plain number of bytes: binary units.
    static func parseSize(_ field: String, _ value: String) throws(ImpairmentSpecificationError)
        -> Int
    {
        let (number, unit) = splitUnit(value)
        let expected = "a size such as 16kb, 1mb or 3000b"
        guard let amount = parseDecimal(number) else {
            throw .invalidValue(field: field, value: value, expected: expected)
        }
        let multiplier: Double
        switch unit {
        case "", "b": multiplier = 1
        case "kb", "k": multiplier = 1024
        case "mb", "m": multiplier = 1024 * 1024
        default: throw .invalidValue(field: field, value: value, expected: expected)
        }
        let bytes = (amount * multiplier).rounded()
        guard bytes >= 1, bytes <= 64 * 1024 * 1024 else {
            throw .outOfRange(field: field, value: value, allowed: "1b to 64mb")
        }
        return Int(bytes)
    }

    static func parseInteger(
        _ field: String, _ value: String, in range: ClosedRange<Int>
    ) throws(ImpairmentSpecificationError) -> Int {
        guard value.count <= 18, value.allSatisfy({ $0.isASCII && $0.isNumber }),
            let number = Int(value)
        else {
            throw .invalidValue(field: field, value: value, expected: "a whole number")
        }
        guard range.contains(number) else {
            throw .outOfRange(
                field: field, value: value, allowed: "\(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    static func parseSeed(_ value: String) throws(ImpairmentSpecificationError) -> UInt64 {
        let lowered = value.lowercased()
        let parsed =
            lowered.hasPrefix("0x")
            ? UInt64(lowered.dropFirst(2), radix: 16) : UInt64(lowered, radix: 10)
        guard let seed = parsed, !lowered.contains("+"), !lowered.contains("-") else {
            throw .invalidValue(
                field: "seed", value: value, expected: "an unsigned 64-bit integer (decimal or 0x…)"
            )
        }
        return seed
    }

    // MARK: Text

    /// The specification that parses back to this configuration: fields that differ
    /// from the defaults, without a prefix where both directions agree.
    public var description: String {
        var fields: [String] = []
        for (name, inText, outText) in Self.fieldTexts(inbound: inbound, outbound: outbound) {
            if inText == outText {
                if let inText { fields.append("\(name)=\(inText)") }
                continue
            }
            fields.append("in:\(name)=\(inText ?? Self.defaultText(name))")
            fields.append("out:\(name)=\(outText ?? Self.defaultText(name))")
        }
        if seed != 0 { fields.append("seed=\(seed)") }
        return fields.isEmpty ? "none" : fields.joined(separator: ",")
    }

    private static func defaultText(_ name: String) -> String {
        fieldTexts(inbound: Impairment(), outbound: Impairment(), keepDefaults: true)
            .first { $0.name == name }?.inText ?? "none"
    }

    /// Each field's text for each direction; nil where it is the default (unless
    /// `keepDefaults`).
    private static func fieldTexts(
        inbound: Impairment, outbound: Impairment, keepDefaults: Bool = false
    ) -> [(name: String, inText: String?, outText: String?)] {
        let defaults = Impairment()
        func text(_ impairment: Impairment, _ name: String) -> String? {
            switch name {
            case "loss" where keepDefaults || impairment.loss != defaults.loss:
                return impairment.loss.description
            case "dup" where keepDefaults || impairment.duplicate != defaults.duplicate:
                return impairment.duplicate.description
            case "reorder" where keepDefaults || impairment.reorder != defaults.reorder:
                return impairment.reorder.description
            case "reorder-gap" where keepDefaults || impairment.reorderGap != defaults.reorderGap:
                return String(impairment.reorderGap)
            case "reorder-timeout"
            where keepDefaults || impairment.reorderTimeout != defaults.reorderTimeout:
                return durationText(impairment.reorderTimeout)
            case "corrupt" where keepDefaults || impairment.corrupt != defaults.corrupt:
                return impairment.corrupt.description
            case "delay" where keepDefaults || impairment.delay != defaults.delay:
                return durationText(impairment.delay)
            case "jitter" where keepDefaults || impairment.jitter != defaults.jitter:
                return durationText(impairment.jitter)
            case "rate" where impairment.rate != defaults.rate:
                return impairment.rate.map(rateText)
            case "burst" where keepDefaults || impairment.burst != defaults.burst:
                return sizeText(impairment.burst)
            case "limit" where keepDefaults || impairment.limit != defaults.limit:
                return String(impairment.limit)
            default: return nil
            }
        }
        return fieldNames.filter { $0 != "seed" }.map { name in
            (name, text(inbound, name), text(outbound, name))
        }
    }

    static func durationText(_ duration: Duration) -> String {
        let nanoseconds = nanosecondsClamped(duration)
        for (unit, size) in [("s", Int64(1_000_000_000)), ("ms", 1_000_000), ("us", 1_000)]
        where nanoseconds % size == 0 && nanoseconds != 0 {
            return "\(nanoseconds / size)\(unit)"
        }
        return nanoseconds == 0 ? "0" : "\(nanoseconds)ns"
    }

    static func rateText(_ bits: UInt64) -> String {
        for (unit, size) in [("gbit", UInt64(1_000_000_000)), ("mbit", 1_000_000), ("kbit", 1_000)]
        where bits % size == 0 {
            return "\(bits / size)\(unit)"
        }
        return "\(bits)bit"
    }

    static func sizeText(_ bytes: Int) -> String {
        if bytes % (1024 * 1024) == 0 { return "\(bytes / (1024 * 1024))mb" }
        if bytes % 1024 == 0 { return "\(bytes / 1024)kb" }
        return "\(bytes)b"
    }
}

extension Impairment {
    /// Sets `field` from its text; false when there is no such field.
    mutating func set(_ field: String, to value: String) throws(ImpairmentSpecificationError)
        -> Bool
    {
        typealias Parse = ImpairmentConfiguration
        switch field {
        case "loss": loss = try Parse.parseProbability(field, value)
        case "dup", "duplicate": duplicate = try Parse.parseProbability(field, value)
        case "reorder": reorder = try Parse.parseProbability(field, value)
        case "reorder-gap": reorderGap = try Parse.parseInteger(field, value, in: 1...10_000)
        case "reorder-timeout": reorderTimeout = try Parse.parseDuration(field, value)
        case "corrupt": corrupt = try Parse.parseProbability(field, value)
        case "delay": delay = try Parse.parseDuration(field, value)
        case "jitter": jitter = try Parse.parseDuration(field, value)
        case "rate": rate = value == "none" ? nil : try Parse.parseRate(field, value)
        case "burst": burst = try Parse.parseSize(field, value)
        case "limit": limit = try Parse.parseInteger(field, value, in: 1...100_000)
        default: return false
        }
        return true
    }
}

/// What is wrong with an impairment specification; each case names the field.
public enum ImpairmentSpecificationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A field the specification does not know, such as `loos`.
    case unknownField(String)
    /// A field without `=VALUE`, or with nothing after the `=`.
    case missingValue(field: String)
    /// A value that does not read as the field's kind of value.
    case invalidValue(field: String, value: String, expected: String)
    /// A value of the right kind outside what the field allows.
    case outOfRange(field: String, value: String, allowed: String)
    /// Nothing between two commas (`position` counts fields from 1).
    case emptyField(position: Int)
    /// A prefix other than `in:` or `out:`.
    case unknownDirection(field: String, direction: String)
    /// `in:seed=` or `out:seed=`: one seed serves both directions.
    case seedHasNoDirection
    /// A field that may be given once, given twice.
    case repeated(field: String)

    public var description: String {
        switch self {
        case .unknownField(let field):
            return "unknown field `\(field)` (known: "
                + ImpairmentConfiguration.fieldNames.joined(separator: ", ") + ")"
        case .missingValue(let field): return "`\(field)` needs a value: \(field)=VALUE"
        case .invalidValue(let field, let value, let expected):
            return "`\(field)=\(value)`: expected \(expected)"
        case .outOfRange(let field, let value, let allowed):
            return "`\(field)=\(value)` is out of range: \(allowed)"
        case .emptyField(let position): return "field \(position) is empty"
        case .unknownDirection(let field, let direction):
            return "`\(field)`: unknown direction `\(direction):` (in: or out:)"
        case .seedHasNoDirection: return "`seed` applies to both directions: write seed=N"
        case .repeated(let field): return "`\(field)` is given twice"
        }
    }
}

/// A duration in whole nanoseconds, clamped to `0...Int64.max`.
func nanosecondsClamped(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0 else { return 0 }
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return .max }
    let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    return overflow2 ? .max : max(0, sum)
}

extension StringProtocol {
    /// The text without spaces and tabs at either end.
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}
