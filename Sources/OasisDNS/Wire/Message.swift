import OasisBits

/// A question: the name, type and class asked about (RFC 1035 §4.1.2).
public struct Question: Hashable, Sendable {
    public var name: DomainName
    public var type: RecordType
    public var recordClass: RecordClass

    public init(name: DomainName, type: RecordType, recordClass: RecordClass = .internet) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
    }
}

/// The EDNS(0) OPT pseudo-record's fields (RFC 6891 §6.1.2–6.1.3).
public struct EDNS: Hashable, Sendable {
    /// The requestor's (or responder's) UDP payload size.
    public var udpPayloadSize: UInt16
    /// The high eight bits of the 12-bit response code.
    public var extendedRcode: UInt8
    /// The EDNS version; only 0 is defined.
    public var version: UInt8
    /// DNSSEC OK (RFC 3225).
    public var dnssecOK: Bool
    /// The options, as raw TLV bytes (checked to be well formed when parsed).
    public var options: [UInt8]

    public init(
        udpPayloadSize: UInt16 = 1232, extendedRcode: UInt8 = 0, version: UInt8 = 0,
        dnssecOK: Bool = false, options: [UInt8] = []
    ) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRcode = extendedRcode
        self.version = version
        self.dnssecOK = dnssecOK
        self.options = options
    }
}

/// A whole DNS message, parsed (allocates: for tools and tests; the engine's query
/// path reads the query in place).
public struct Message: Hashable, Sendable {
    public var id: UInt16 = 0
    public var isResponse = false
    public var opcode: UInt8 = 0
    public var authoritative = false
    public var truncated = false
    public var recursionDesired = false
    public var recursionAvailable = false
    public var authenticData = false
    public var checkingDisabled = false
    /// The full response code: the header's four bits, plus the OPT's eight if present.
    public var rcode = ResponseCode.noError
    public var questions: [Question] = []
    public var answers: [ResourceRecord] = []
    public var authority: [ResourceRecord] = []
    /// The additional section without the OPT record (see ``edns``).
    public var additional: [ResourceRecord] = []
    public var edns: EDNS?

    public init() {}

    /// Parses a message (RFC 1035 §4.1). Bytes after the last record are ignored.
    public init(parsing message: Bits) throws(WireError) {
        let header = try WireError.wrap { () throws(BitsError) in
            try message.header(MessageHeader.self)
        }
        id = header[MessageHeader.id]
        isResponse = header[MessageHeader.isResponse] == 1
        opcode = header[MessageHeader.opcode]
        authoritative = header[MessageHeader.authoritative] == 1
        truncated = header[MessageHeader.truncated] == 1
        recursionDesired = header[MessageHeader.recursionDesired] == 1
        recursionAvailable = header[MessageHeader.recursionAvailable] == 1
        authenticData = header[MessageHeader.authenticData] == 1
        checkingDisabled = header[MessageHeader.checkingDisabled] == 1
        rcode = ResponseCode(rawValue: UInt16(header[MessageHeader.rcode]))
        var offset = MessageHeader.size
        for _ in 0..<header[MessageHeader.questionCount] {
            let (name, next) = try message.readName(at: offset)
            let type: UInt16 = try WireError.wrap { () throws(BitsError) in
                try message.read(at: next)
            }
            let qclass: UInt16 = try WireError.wrap { () throws(BitsError) in
                try message.read(at: next + 2)
            }
            questions.append(
                Question(
                    name: name, type: RecordType(rawValue: type),
                    recordClass: RecordClass(rawValue: qclass)))
            offset = next + 4
        }
        func records(_ count: UInt16, additional: Bool) throws(WireError) -> [ResourceRecord] {
            var result: [ResourceRecord] = []
            for _ in 0..<count {
                let start = offset
                let (name, next) = try message.readName(at: offset)
                let fixed = try WireError.wrap { () throws(BitsError) in
                    try message.slice(from: next, length: 10)
                }
                let type = RecordType(
                    rawValue: try WireError.wrap { () throws(BitsError) in try fixed.read(at: 0) })
                let rclass: UInt16 = try WireError.wrap { () throws(BitsError) in
                    try fixed.read(at: 2)
                }
                let ttl: UInt32 = try WireError.wrap { () throws(BitsError) in try fixed.read(at: 4)
                }
                let length = Int(
                    try WireError.wrap { () throws(BitsError) -> UInt16 in try fixed.read(at: 8) })
                offset = next + 10 + length
                if type == .opt && additional {
                    guard edns == nil, name.wire == [0] else { throw .badOPT(offset: start) }
                    let options = try WireError.wrap { () throws(BitsError) in
                        try message.slice(from: next + 10, length: length)
                    }.copyBytes()
                    var index = 0
                    while index < options.count {
                        guard index + 4 <= options.count else {
                            throw .badEDNSOption(offset: next + 10 + index)
                        }
                        let optionLength = Int(options[index + 2]) << 8 | Int(options[index + 3])
                        guard index + 4 + optionLength <= options.count else {
                            throw .badEDNSOption(offset: next + 10 + index)
                        }
                        index += 4 + optionLength
                    }
                    edns = EDNS(
                        udpPayloadSize: rclass, extendedRcode: UInt8(ttl >> 24),
                        version: UInt8((ttl >> 16) & 0xff), dnssecOK: ttl & 0x8000 != 0,
                        options: options)
                    continue
                }
                let data = try RecordData.read(
                    type: type, from: message, at: next + 10, length: length)
                result.append(
                    ResourceRecord(
                        name: name, type: type, recordClass: RecordClass(rawValue: rclass),
                        ttl: ttl, data: data))
            }
            return result
        }
        answers = try records(header[MessageHeader.answerCount], additional: false)
        authority = try records(header[MessageHeader.authorityCount], additional: false)
        additional = try records(header[MessageHeader.additionalCount], additional: true)
        if let edns {
            rcode = ResponseCode(rawValue: UInt16(edns.extendedRcode) << 4 | rcode.rawValue)
        }
    }

    /// Writes the message into `bits` (appending to it; normally empty), compressing
    /// names, and returns its length. Fails if it does not fit in `limit` bytes or the
    /// buffer's tailroom.
    @discardableResult
    public func encode(into bits: inout Bits, limit: Int = 65535) throws(MessageFull) -> Int {
        let start = bits.count
        try MessageWriter.with(into: &bits, limit: limit) { (writer) throws(MessageFull) in
            _ = try writer.reserve(MessageHeader.size)
            try write(into: &writer)
        }
        // The header last, over the bytes reserved for it.
        guard var header = try? bits.shifted(by: start).header(MessageHeader.self) else {
            return bits.count - start
        }
        header[MessageHeader.id] = id
        header[MessageHeader.isResponse] = isResponse ? 1 : 0
        header[MessageHeader.opcode] = opcode
        header[MessageHeader.authoritative] = authoritative ? 1 : 0
        header[MessageHeader.truncated] = truncated ? 1 : 0
        header[MessageHeader.recursionDesired] = recursionDesired ? 1 : 0
        header[MessageHeader.recursionAvailable] = recursionAvailable ? 1 : 0
        header[MessageHeader.zero] = 0
        header[MessageHeader.authenticData] = authenticData ? 1 : 0
        header[MessageHeader.checkingDisabled] = checkingDisabled ? 1 : 0
        header[MessageHeader.rcode] = UInt8(rcode.rawValue & 0xf)
        header[MessageHeader.questionCount] = UInt16(questions.count)
        header[MessageHeader.answerCount] = UInt16(answers.count)
        header[MessageHeader.authorityCount] = UInt16(authority.count)
        header[MessageHeader.additionalCount] = UInt16(additional.count + (edns == nil ? 0 : 1))
        return bits.count - start
    }

    /// The sections after the header.
    private func write(into writer: inout MessageWriter) throws(MessageFull) {
        for question in questions {
            try withBytes(question.name.wire) { (raw) throws(MessageFull) in
                try writer.appendName(raw, compress: true)
            }
            try writer.append(question.type.rawValue)
            try writer.append(question.recordClass.rawValue)
        }
        for record in answers + authority + additional {
            try withBytes(record.name.wire) { (raw) throws(MessageFull) in
                try writer.appendName(raw, compress: true)
            }
            try writer.append(record.type.rawValue)
            try writer.append(record.recordClass.rawValue)
            try writer.append(record.ttl)
            let lengthAt = writer.count
            try writer.append(UInt16(0))
            try withBytes(record.data.wire) { (raw) throws(MessageFull) in
                try writer.appendRecordData(raw, type: record.type)
            }
            writer.patch(UInt16(writer.count - lengthAt - 2), at: lengthAt)
        }
        if let edns {
            try writer.append(UInt8(0))
            try writer.append(RecordType.opt.rawValue)
            try writer.append(edns.udpPayloadSize)
            let extended = UInt8(truncatingIfNeeded: rcode.rawValue >> 4) | edns.extendedRcode
            try writer.append(
                UInt32(extended) << 24 | UInt32(edns.version) << 16 | (edns.dnssecOK ? 0x8000 : 0))
            try writer.append(UInt16(edns.options.count))
            try withBytes(edns.options) { (raw) throws(MessageFull) in try writer.append(bytes: raw)
            }
        }
    }
}

extension MessageWriter {
    /// Appends stored (uncompressed) RDATA of `type`, compressing the names of the
    /// RFC 1035 types that allow it (RFC 3597 §4) — NS, CNAME, PTR, MX, SOA — as NSD
    /// and BIND do. `rdata` must be well formed (it comes from our own store).
    mutating func appendRecordData(_ rdata: UnsafeRawBufferPointer, type: RecordType)
        throws(MessageFull)
    {
        switch type {
        // NSD 4.6 compresses the names of NS, CNAME, SOA, MB, MG, MR, PTR, MINFO and
        // MX (its RDATA_WF_COMPRESSED_DNAME); no others (RFC 3597 §4).
        case .ns, .cname, .ptr, .mb, .mg, .mr:
            try appendName(rdata, compress: true)
        case .minfo:
            let first = wireNameLength(rdata, from: 0)
            try appendName(UnsafeRawBufferPointer(rebasing: rdata[0..<first]), compress: true)
            try appendName(UnsafeRawBufferPointer(rebasing: rdata[first...]), compress: true)
        case .mx:
            try append(bytes: UnsafeRawBufferPointer(rebasing: rdata[0..<2]))
            try appendName(UnsafeRawBufferPointer(rebasing: rdata[2...]), compress: true)
        case .soa:
            let primaryLength = wireNameLength(rdata, from: 0)
            try appendName(
                UnsafeRawBufferPointer(rebasing: rdata[0..<primaryLength]), compress: true)
            try appendName(
                UnsafeRawBufferPointer(rebasing: rdata[primaryLength...]), compress: true)
            try append(bytes: UnsafeRawBufferPointer(rebasing: rdata[(rdata.count - 20)...]))
        default:
            try append(bytes: rdata)
        }
    }
}

/// The length of the uncompressed, well-formed wire name at `start` of `bytes`.
@inline(__always)
func wireNameLength(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
    var position = start
    while bytes[position] != 0 { position += 1 + Int(bytes[position]) }
    return position + 1 - start
}

/// `array.withUnsafeBytes` with a typed error (the standard one only rethrows).
@inline(__always)
func withBytes<Result, Failure: Error>(
    _ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
) throws(Failure) -> Result {
    let outcome = array.withUnsafeBytes { raw in
        Swift.Result { () throws(Failure) in try body(raw) }
    }
    return try outcome.get()
}
