import OasisBits
import Testing

@testable import OasisOpenFlow

@Suite("Splitting a TCP stream into messages")
struct FramerTests {
    let stream: [UInt8] = sampleMessages.flatMap { try! $0.encoded().copyBytes() }

    func drain(_ framer: inout MessageFramer) throws -> [Message] {
        var messages: [Message] = []
        while let bits = try framer.next() { messages.append(try Message.decode(bits)) }
        return messages
    }

    @Test func manyMessagesInOneRead() throws {
        var framer = MessageFramer()
        stream.withUnsafeBytes { #expect(framer.append($0) == stream.count) }
        #expect(try drain(&framer) == sampleMessages)
        #expect(framer.bufferedCount == 0)
    }

    @Test(arguments: [1, 3, 7, 64, 1000])
    func oneMessageOverManyReads(chunk: Int) throws {
        var framer = MessageFramer()
        var messages: [Message] = []
        for start in stride(from: 0, to: stream.count, by: chunk) {
            let piece = Array(stream[start..<min(stream.count, start + chunk)])
            piece.withUnsafeBytes { _ = framer.append($0) }
            messages += try drain(&framer)
        }
        #expect(messages == sampleMessages)
    }

    @Test func boundedBuffering() throws {
        var framer = MessageFramer(maximumLength: 1024)
        let big = hex("01 02 08 00 00 00 00 01")
        big.withUnsafeBytes { _ = framer.append($0) }
        #expect(throws: OpenFlowError.badLength(type: 2, length: 2048, expected: "8...1024")) {
            try framer.next()
        }
        var short = MessageFramer()
        hex("01 00 00 04 00 00 00 01").withUnsafeBytes { _ = short.append($0) }
        #expect(throws: OpenFlowError.self) { try short.next() }
        // It accepts at most twice the bound while nothing is taken out.
        var full = MessageFramer(maximumLength: 1024)
        let lots = [UInt8](repeating: 0, count: 10_000)
        #expect(lots.withUnsafeBytes { full.append($0) } == Buffer(byteCount: 2048).capacity)
    }

    @Test func viewsStayValidWhenTheFramerReusesRoom() throws {
        var framer = MessageFramer(maximumLength: 2048)
        let echo = try Message(
            xid: 1, body: .echoRequest(Payload([UInt8](repeating: 0xab, count: 1000)))
        ).encoded().copyBytes()
        var kept: [Bits] = []
        for _ in 0..<20 {
            echo.withUnsafeBytes { #expect(framer.append($0) == echo.count) }
            while let bits = try framer.next() { kept.append(bits) }
        }
        #expect(kept.count == 20)
        for bits in kept { #expect(bits.copyBytes() == echo) }
    }
}
