import Testing

@testable import oasis

@Suite struct OpenFlowPrintTests {
    @Test func hexWithSeparatorsIsRead() {
        #expect(
            OpenFlowPrintCommand.bytes(fromHex: "01 00:00 08 0000002a") == [
                1, 0, 0, 8, 0, 0, 0, 0x2a,
            ])
        #expect(OpenFlowPrintCommand.bytes(fromHex: "0") == nil)
        #expect(OpenFlowPrintCommand.bytes(fromHex: "zz") == nil)
    }

    @Test func printsAHelloAndFailsOnATruncatedMessage() throws {
        let good = try OpenFlowPrintCommand.parse(["010000080000002a"])
        try good.run()
        let bad = try OpenFlowPrintCommand.parse(["0100000800"])
        #expect(throws: (any Error).self) { try bad.run() }
    }
}
