// Queries by type and answers by rcode, as NSD's and Knot's statistics give them.

import OasisDNS

/// What a DNS server answered, by the question's type and the answer's rcode, and how
/// many answers were truncated. Fixed storage: counting allocates nothing.
public struct QueryCounters {
    /// Queries by QTYPE for types 0…255; ``otherTypes`` for the rest (CAA, TYPE65534…).
    public private(set) var byType = [UInt64](repeating: 0, count: 256)
    public private(set) var otherTypes: UInt64 = 0
    /// Queries whose question could not be read (no type to count).
    public private(set) var noQuestion: UInt64 = 0
    /// Answers by rcode (the header's four bits).
    public private(set) var byRcode = [UInt64](repeating: 0, count: 16)
    /// Answers sent with TC set.
    public private(set) var truncated: UInt64 = 0

    public init() {}

    /// Counts one answered query: its type read from `query`'s question, the answer's
    /// rcode and TC bit from `answer`'s header.
    public mutating func count(query: UnsafeRawBufferPointer, answer: UnsafeRawBufferPointer) {
        if answer.count >= 4 {
            byRcode[Int(answer[3] & 0x0f)] &+= 1
            if answer[2] & 0x02 != 0 { truncated &+= 1 }
        }
        // QNAME from byte 12: labels up to the root (a pointer ends it too), then QTYPE.
        var index = 12
        while index < query.count {
            let length = Int(query[index])
            if length == 0 {
                index += 1
                break
            }
            if length & 0xc0 != 0 {
                index += 2
                break
            }
            index += 1 + length
        }
        guard query.count >= 12, index + 2 <= query.count else {
            noQuestion &+= 1
            return
        }
        let type = Int(query[index]) << 8 | Int(query[index + 1])
        if type < 256 { byType[type] &+= 1 } else { otherTypes &+= 1 }
    }

    /// Adds another server's (or worker's) counts.
    public mutating func add(_ other: QueryCounters) {
        for index in 0..<256 { byType[index] &+= other.byType[index] }
        for index in 0..<16 { byRcode[index] &+= other.byRcode[index] }
        otherTypes &+= other.otherTypes
        noQuestion &+= other.noQuestion
        truncated &+= other.truncated
    }

    static let rcodeNames = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
        "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13",
        "RCODE14", "RCODE15",
    ]

    /// `type A 10, type AAAA 2; rcode NOERROR 11, NXDOMAIN 1; truncated 0`: the types
    /// and rcodes seen, most frequent first.
    public var summary: String {
        var types = byType.enumerated().filter { $0.element > 0 }
            .sorted { $0.element > $1.element }
            .map { "\(RecordType(rawValue: UInt16($0.offset))) \($0.element)" }
        if otherTypes > 0 { types.append("other \(otherTypes)") }
        if noQuestion > 0 { types.append("no question \(noQuestion)") }
        let rcodes = byRcode.enumerated().filter { $0.element > 0 }
            .sorted { $0.element > $1.element }
            .map { "\(QueryCounters.rcodeNames[$0.offset]) \($0.element)" }
        return "by type: \(types.isEmpty ? "none" : types.joined(separator: ", ")); "
            + "by rcode: \(rcodes.isEmpty ? "none" : rcodes.joined(separator: ", ")); "
            + "truncated \(truncated)"
    }
}
