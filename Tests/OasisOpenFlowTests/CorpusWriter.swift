import Foundation
import Testing

@testable import OasisOpenFlow

/// Writes every sample message to Fuzz/FuzzOpenFlow/corpus when OASIS_WRITE_CORPUS is
/// set (the seeds of the fuzz target); otherwise does nothing.
@Test func writeFuzzCorpus() throws {
    guard let folder = ProcessInfo.processInfo.environment["OASIS_WRITE_CORPUS"] else { return }
    for (index, message) in sampleMessages.enumerated() {
        let bytes = try message.encoded().copyBytes()
        let name = String(format: "%02d-%@", index, String(describing: message.type))
        try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent(name))
    }
    let stream = try sampleMessages.flatMap { try $0.encoded().copyBytes() }
    try Data(stream).write(to: URL(fileURLWithPath: folder).appendingPathComponent("stream-all"))
    try Data(sampleFrame).write(
        to: URL(fileURLWithPath: folder).appendingPathComponent("frame-tcp"))
}
