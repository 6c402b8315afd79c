import Foundation
import OasisBits
import OasisOpenFlow
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

/// Issue 19, item 10: a pcap file whose record lies about its length (a caplen of
/// 0xffffffff) or breaks off is reported as corrupt, and the command fails, after
/// printing what came before.
@Suite struct OpenFlowPrintCorruptPcapTests {
    func corrupted(_ change: (inout [UInt8]) -> Void) throws -> String {
        var file = try OpenFlowPcap.write([Message(xid: 42, body: .hello())])
        change(&file)
        let path = "/tmp/oasis-corrupt-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pcap"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(file)))
        return path
    }

    @Test func aCapturedLengthOf0xffffffffIsCorrupt() throws {
        let path = try corrupted { file in
            // A second record whose caplen is 0xffffffff.
            file += [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
            file += [1, 2, 3]
        }
        defer { unlink(path) }
        let contents = try #require(
            OpenFlowPcap.read(Bits(Array(try Data(contentsOf: URL(fileURLWithPath: path))))))
        #expect(contents.messages.count == 1)
        #expect(
            contents.corruption?.record == 2 && contents.corruption?.capturedLength == 0xffff_ffff)
        let command = try OpenFlowPrintCommand.parse(["--pcap", path])
        #expect(throws: (any Error).self) { try command.run() }
    }

    @Test func aFileCutShortIsCorrupt() throws {
        let cutInRecord = try corrupted { file in file.removeLast(3) }
        let cutInHeader = try corrupted { file in file += [0, 0, 0, 0, 0] }
        let whole = try corrupted { _ in }
        defer { for path in [cutInRecord, cutInHeader, whole] { unlink(path) } }
        for path in [cutInRecord, cutInHeader] {
            let command = try OpenFlowPrintCommand.parse(["--pcap", path])
            #expect(throws: (any Error).self) { try command.run() }
        }
        try OpenFlowPrintCommand.parse(["--pcap", whole]).run()
    }
}
