import Foundation
import OasisBits
import Testing

@testable import OasisOpenFlow

/// The fuzz target's seeds (Fuzz/FuzzOpenFlow/corpus): with OASIS_WRITE_CORPUS=FOLDER
/// this writes every sample message there; otherwise it checks that every committed
/// seed named after a message type still decodes to a message of that type.
@Test func fuzzCorpusSeeds() throws {
    if let folder = ProcessInfo.processInfo.environment["OASIS_WRITE_CORPUS"] {
        for (index, message) in sampleMessages.enumerated() {
            let bytes = try message.encoded().copyBytes()
            let name = String(format: "%02d-%@", index, String(describing: message.type))
            try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent(name))
        }
        let stream = try sampleMessages.flatMap { try $0.encoded().copyBytes() }
        try Data(stream).write(
            to: URL(fileURLWithPath: folder).appendingPathComponent("stream-all"))
        try Data(sampleFrame).write(
            to: URL(fileURLWithPath: folder).appendingPathComponent("frame-tcp"))
        return
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
    let folder = root.appendingPathComponent("Fuzz/FuzzOpenFlow/corpus")
    let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    let seeds = names.filter { $0.first?.isNumber == true }
    #expect(seeds.count == sampleMessages.count)
    for name in seeds {
        let bytes = try [UInt8](Data(contentsOf: folder.appendingPathComponent(name)))
        let message = try Message.decode(Bits(bytes))
        #expect(name.hasSuffix("-\(message.type)"))
    }
}
