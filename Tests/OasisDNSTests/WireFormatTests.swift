import OasisBits
import Testing

@testable import OasisDNS

/// Bytes from a hex string (test vectors).
func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

@Suite struct WireFormatTests {
    // NSD 4.6.1's answer to `dig +norec www.example.com A` (EDNS 1232), captured here.
    let wwwAnswer = hex(
        "abcd8500000100010002000203777777076578616d706c6503636f6d0000010001c00c0001000100000e100004c0000203c0100002000100000e100006036e7331c010c0100002000100000e10000f036e7332056f74686572036e657400c03d0001000100000e100004c000020100002904d0000000000000"
    )
    // NSD's answer to an MX query at the apex, without EDNS.
    let mxAnswer = hex(
        "abce84000001000100020002076578616d706c6503636f6d00000f0001c00c000f000100000e100009000a046d61696cc00cc00c0002000100000e100006036e7331c00cc00c0002000100000e10000f036e7332056f74686572036e657400c02b0001000100000e100004c0000202c03e0001000100000e100004c0000201"
    )

    func name(_ text: String) -> DomainName { try! DomainName(parsing: text) }

    @Test func parseRealAnswer() throws {
        let message = try Message(parsing: Bits(wwwAnswer))
        #expect(
            message.id == 0xabcd && message.isResponse && message.authoritative
                && message.recursionDesired)
        #expect(!message.truncated && message.rcode == .noError)
        #expect(message.questions == [Question(name: name("www.example.com."), type: .a)])
        #expect(
            message.answers == [
                ResourceRecord(
                    name: name("www.example.com."), type: .a, ttl: 3600, data: .a(0xc000_0203))
            ])
        #expect(
            message.authority.map(\.data) == [
                .ns(name("ns1.example.com.")), .ns(name("ns2.other.net.")),
            ])
        #expect(
            message.additional == [
                ResourceRecord(
                    name: name("ns1.example.com."), type: .a, ttl: 3600, data: .a(0xc000_0201))
            ])
        #expect(message.edns == EDNS(udpPayloadSize: 1232))
    }

    @Test func reencodeGivesTheSameBytes() throws {
        // Our compression picks the same pointers as NSD's for these answers.
        for bytes in [wwwAnswer, mxAnswer] {
            let message = try Message(parsing: Bits(bytes))
            var out = emptyMessageBuffer()
            try message.encode(into: &out)
            #expect(out.copyBytes() == bytes)
        }
        let mx = try Message(parsing: Bits(mxAnswer))
        #expect(mx.answers[0].data == .mx(preference: 10, exchange: name("mail.example.com.")))
    }

    @Test func headerFlagsAreSubByteFields() throws {
        var bits = Bits([UInt8](repeating: 0, count: 12))
        var header = try bits.header(MessageHeader.self)
        header[MessageHeader.isResponse] = 1
        header[MessageHeader.opcode] = 5
        header[MessageHeader.truncated] = 1
        header[MessageHeader.rcode] = 3
        #expect(bits.copyBytes()[2...3] == [0xaa, 0x03])
        _ = try bits.truncate(to: 11)
        #expect(throws: BitsError.truncated(offset: 0, length: 12, available: 11)) {
            try bits.header(MessageHeader.self)
        }
    }

    let header: [UInt8] = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]

    @Test func pointerLoopsAndForwardPointersAreRejected() {
        #expect(throws: WireError.badPointer(offset: 12, target: 12)) {
            try Message(parsing: Bits(header + [0xc0, 0x0c, 0, 1, 0, 1]))
        }
        // Pointers pointing at each other: the first already points forward.
        #expect(throws: WireError.badPointer(offset: 12, target: 14)) {
            try Message(parsing: Bits(header + [0xc0, 0x0e, 0xc0, 0x10, 0xc0, 0x0e, 0, 1, 0, 1]))
        }
        #expect(throws: WireError.badPointer(offset: 16, target: 32)) {
            try Message(parsing: Bits(header + [3, 0x77, 0x77, 0x77, 0xc0, 0x20, 0, 1, 0, 1]))
        }
    }

    @Test func longPointerChainsAreRejected() throws {
        // A root label after the header, then pointers each two bytes back: every hop
        // is legal on its own, but a thousand of them are not a name (and would cost a
        // query dearly).
        var bytes = [UInt8](repeating: 0, count: 12) + [0]
        for index in 0..<1000 {
            let target = index == 0 ? 12 : 13 + 2 * (index - 1)
            bytes += [0xc0 | UInt8(target >> 8), UInt8(target & 0xff)]
        }
        let bits = Bits(bytes)
        #expect(throws: WireError.self) { try bits.readName(at: 13 + 2 * 999) }
        // A chain within 127 hops still reads, as the root name.
        let (name, end) = try bits.readName(at: 13 + 2 * 99)
        #expect(name.description == ".")
        #expect(end == 13 + 2 * 100)
        // No name lies in the header: a pointer into it is refused (NSD: FORMERR).
        #expect(throws: WireError.badPointer(offset: 12, target: 4)) {
            try Bits(bytes[0..<12] + [0xc0, 0x04]).readName(at: 12)
        }
    }

    @Test func overlongLabelsAndNamesAreRejected() {
        #expect(throws: WireError.labelTooLong(offset: 12, length: 64)) {
            try Message(
                parsing: Bits(
                    header + [64] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1]))
        }
        #expect(throws: WireError.labelTooLong(offset: 12, length: 0x80)) {
            try Message(parsing: Bits(header + [0x80, 0, 0, 1, 0, 1]))
        }
        let label = [63] + [UInt8](repeating: 0x61, count: 63)
        let long = header + label + label + label + label + [0, 0, 1, 0, 1]
        #expect(throws: WireError.nameTooLong(offset: 12)) { try Message(parsing: Bits(long)) }
        // 255 exactly is fine: three 63-byte labels, one 61-byte label, the root.
        let exact =
            header + label + label + label + [61] + [UInt8](repeating: 0x62, count: 61) + [
                0, 0, 1, 0, 1,
            ]
        #expect((try? Message(parsing: Bits(exact)))?.questions.first?.name.wire.count == 255)
    }

    @Test func truncatedMessagesAreTypedErrors() {
        for cut in [0, 5, 12, 20, wwwAnswer.count - 1] {
            #expect(throws: WireError.self) {
                try Message(parsing: Bits(Array(wwwAnswer.prefix(cut))))
            }
        }
    }

    @Test func compressionOnWrite() throws {
        var message = Message()
        message.questions = [Question(name: name("a.example.com."), type: .a)]
        message.answers = [
            ResourceRecord(
                name: name("A.EXAMPLE.COM."), type: .cname, ttl: 1,
                data: .cname(name("b.example.com."))),
            ResourceRecord(
                name: name("b.example.com."), type: .srv, ttl: 1,
                data: .srv(priority: 1, weight: 2, port: 3, target: name("c.example.com."))),
        ]
        var out = emptyMessageBuffer()
        try message.encode(into: &out)
        let bytes = out.copyBytes()
        // The owner of the first answer is a pointer to the question (case ignored);
        // the CNAME target shares "example.com"; SRV's target is not compressed.
        #expect(bytes[31...32] == [0xc0, 0x0c])
        #expect(bytes.count == 12 + 19 + (2 + 10 + 4) + (2 + 10 + 6 + 15))
        #expect(try Message(parsing: out) == message)
    }

    @Test func namesInPresentationForm() throws {
        #expect(
            name(#"a\.b.c\032d.\255."#).wire == [
                3, 0x61, 0x2e, 0x62, 3, 0x63, 0x20, 0x64, 1, 0xff, 0,
            ])
        #expect(name(#"a\.b.c\032d.\255."#).description == #"a\.b.c\ d.\255."#)
        #expect(name("WWW.Example.COM") == name("www.example.com."))
        #expect(throws: NameSyntaxError.badEscape) { try DomainName(parsing: #"a\25"#) }
        #expect(throws: NameSyntaxError.nameTooLong) {
            try DomainName(
                parsing: Array(repeating: String(repeating: "a", count: 60), count: 5).joined(
                    separator: "."))
        }
    }
}
