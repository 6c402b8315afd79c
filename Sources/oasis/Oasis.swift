// The `oasis` command: the tutorial's programs and the network services, each a
// subcommand running on one cooperative loop.

import ArgumentParser
import OasisLoop

@main
struct Oasis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oasis",
        abstract: "A library-OS network toolkit: a TCP/IP stack, DNS and OpenFlow in one program.",
        subcommands: [
            HelloCommand.self, SleepCommand.self, HeadsOrTailsCommand.self, EchoCommand.self,
            StackCommand.self, DNSCommand.self, OpenFlowCommand.self, BlockCommand.self,
        ])
}

struct HelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hello", abstract: "Print Hello World through the console.")

    func run() throws {
        try runOnLoop { await Hello.main() }
    }
}

struct SleepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sleep", abstract: "Sleep 1 s, then 2 s, then say so.")

    func run() throws {
        try runOnLoop { try await Sleep.main() }
    }
}

struct HeadsOrTailsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heads-or-tails",
        abstract: "Two threads sleeping 1 s and 2 s at once; about 2 s in all.")

    func run() throws {
        try runOnLoop { try await HeadsOrTails.main() }
    }
}

struct EchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo", abstract: "Echo ten lines of the tutorial's dummy input generator.")

    @Option(help: "How many inputs to echo before stopping.")
    var inputs = 10

    func run() throws {
        try runOnLoop { [inputs] in try await Echo.main(inputs: inputs) }
    }
}
