#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A zone file that cannot be loaded: which file, which line and what is wrong, in the
/// manner of `nsd-checkzone` (`example.zone:12: bad TTL '1x'`).
public struct ZoneFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file (as given, or as resolved for `$INCLUDE`), or `<text>`.
    public var file: String
    /// The line the offending entry starts on, from 1 (0: the file as a whole).
    public var line: Int
    /// What is wrong.
    public var problem: Problem

    public init(file: String, line: Int, problem: Problem) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    /// What can be wrong with a zone file.
    public enum Problem: Hashable, Sendable {
        case cannotRead(errno: Int32)
        /// An `$INCLUDE`d file that cannot be opened (reported at the `$INCLUDE`).
        case cannotOpenInclude(String, errno: Int32)
        case unterminatedString
        case unbalancedParentheses
        case unknownDirective(String)
        case missingArgument(String)
        case badName(String, NameSyntaxError)
        case badTTL(String)
        case unknownType(String)
        case unsupportedClass(String)
        /// The RDATA of the type does not parse; the text says which field and why.
        case badRecordData(type: String, reason: String)
        case noPreviousOwner
        case noTTL
        case includeTooDeep
        /// `$INCLUDE` where includes are not followed (a zone read from a zone disk).
        case includeNotFollowed
        /// A second zone with an origin already served.
        case zoneServedTwice(String)
        /// `$INCLUDE` of something that is not a regular file (a device, a pipe, a
        /// folder).
        case notARegularFile(String)
        /// An entry with more tokens than any record's text needs.
        case tooManyTokens
        /// An entry longer than any record's text needs (``Scanner`` bounds it).
        case entryTooLong
        case outOfZone(String)
        case noSOA
        case multipleSOA
        case cnameAndOtherData(String)
        case multipleCNAME(String)
        /// More than one DNAME at a name (RFC 6672 §2.4).
        case multipleDNAME(String)
        /// A DNAME and a CNAME at one name (RFC 6672 §2.4).
        case dnameAndCNAME(String)
        case emptyFile
    }

    public var description: String {
        let what: String
        switch problem {
        case .cannotRead(let code): what = "cannot read the file (errno \(code))"
        case .cannotOpenInclude(let path, let code):
            what =
                "cannot open include file '\(Self.clip(path))': \(String(cString: strerror(code)))"
        case .unterminatedString: what = "unterminated quoted string"
        case .unbalancedParentheses: what = "unbalanced parentheses"
        case .unknownDirective(let name): what = "unknown directive '\(Self.clip(name))'"
        case .missingArgument(let name): what = "\(Self.clip(name)) needs an argument"
        case .badName(let text, let reason):
            what = "bad domain name '\(Self.clip(text))' (\(Self.clip("\(reason)", limit: 200)))"
        case .badTTL(let text): what = "bad TTL '\(Self.clip(text))'"
        case .unknownType(let text): what = "unknown record type '\(Self.clip(text))'"
        case .unsupportedClass(let text): what = "class '\(Self.clip(text))' not served (only IN)"
        case .badRecordData(let type, let reason):
            what = "bad \(Self.clip(type)) data: \(Self.clip(reason, limit: 200))"
        case .noPreviousOwner: what = "blank owner with no previous owner"
        case .noTTL: what = "no TTL given and no $TTL in effect"
        case .includeTooDeep: what = "$INCLUDE nested too deeply (a loop?)"
        case .includeNotFollowed: what = "$INCLUDE is not followed in a zone from a disk"
        case .zoneServedTwice(let name): what = "zone '\(Self.clip(name))' is served twice"
        case .tooManyTokens: what = "an entry of more tokens than any record has"
        case .entryTooLong: what = "an entry longer than any record's text (over 4 MiB)"
        case .notARegularFile(let path):
            what = "$INCLUDE of '\(Self.clip(path))', which is not a regular file"
        case .outOfZone(let name): what = "'\(Self.clip(name))' is outside the zone"
        case .noSOA: what = "the zone has no SOA record at its apex"
        case .multipleSOA: what = "the zone has more than one SOA record"
        case .cnameAndOtherData(let name): what = "CNAME and other data at '\(Self.clip(name))'"
        case .multipleCNAME(let name): what = "more than one CNAME at '\(Self.clip(name))'"
        case .multipleDNAME(let name): what = "more than one DNAME at '\(Self.clip(name))'"
        case .dnameAndCNAME(let name): what = "DNAME and CNAME at '\(Self.clip(name))'"
        case .emptyFile: what = "no records"
        }
        return "\(Self.clip(file, limit: 256)):\(line): \(what)"
    }

    /// At most `limit` characters of `text` from a file (a hostile one may put megabytes
    /// of NULs on a line), with anything not printable ASCII escaped as `\xNN` (bytes
    /// of UTF-8) and `...` where it was cut.
    ///
    /// ```swift
    /// ZoneFileError.clip("a\u{0}b")   // "a\\x00b"
    /// ```
    public static func clip(_ text: String, limit: Int = 64) -> String {
        var out = ""
        var shown = 0
        for byte in text.utf8 {
            guard shown < limit else {
                out += "..."
                break
            }
            if byte >= 0x20 && byte < 0x7f {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
            shown += 1
        }
        return out
    }
}
