// `oasis openflow print`: our `ovs-ofctl ofp-print`.

import ArgumentParser
import Glibc
import OasisBits
import OasisOpenFlow

struct OpenFlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openflow", abstract: "OpenFlow 1.0 tools.",
        subcommands: [OpenFlowPrintCommand.self, OpenFlowSwitchCommand.self])
}

struct OpenFlowPrintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print",
        abstract: "Decode OpenFlow 1.0 messages given as hex, or every one in a pcap file.",
        discussion: """
            oasis openflow print 010000080000002a
            oasis openflow print --pcap capture.pcap [--port 6633]
            """)

    @Argument(help: "Messages as hex (spaces and colons allowed), one per argument.")
    var hex: [String] = []

    @Option(help: "Print every OpenFlow message in this pcap file (TCP reassembled).")
    var pcap: String?

    @Option(help: "The TCP port the OpenFlow connection uses in the capture.")
    var port: UInt16 = 6633

    func run() throws {
        var failures = 0
        for text in hex {
            guard let bytes = Self.bytes(fromHex: text) else {
                print("not hex: \(text)")
                failures += 1
                continue
            }
            do {
                print(OpenFlowPrinter.describe(try Message.decode(Bits(bytes))))
            } catch {
                print("undecodable (\(error.errorKind)): \(error)")
                failures += 1
            }
        }
        if let pcap {
            guard let file = Self.read(pcap) else { throw ValidationError("cannot read \(pcap)") }
            guard let contents = OpenFlowPcap.read(Bits(file), port: port) else {
                throw ValidationError("\(pcap) is not a pcap file")
            }
            for extracted in contents.messages {
                let direction = extracted.toPort ? "to :\(port)" : "from :\(port)"
                switch extracted.message {
                case .success(let message):
                    print("\(direction) \(OpenFlowPrinter.describe(message))")
                case .failure(let error):
                    print("\(direction) undecodable (\(error.errorKind)): \(error)")
                    failures += 1
                }
            }
            if let corruption = contents.corruption {
                print("\(pcap): corrupt pcap file: \(corruption)")
                failures += 1
            }
        }
        if hex.isEmpty && pcap == nil {
            throw ValidationError("give messages as hex, or --pcap FILE")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let digits = text.filter { !" :\n\t".contains($0) }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }
}
