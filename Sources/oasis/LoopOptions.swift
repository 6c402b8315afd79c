// The loop's own options, shared by the commands that run a long-lived loop.

import ArgumentParser
import OasisLoop

/// `--busy-poll`: how long the loop polls before it sleeps (``EventLoop/busyPoll``).
struct LoopOptions: ParsableArguments {
    @Option(
        name: .customLong("busy-poll"),
        help: ArgumentHelp(
            "Microseconds the loop keeps polling its sockets and devices before it sleeps.",
            discussion:
                "0 (the default) sleeps at once. A few hundred cut each round trip's wake-up "
                + "(one request outstanding at a time; a device queue that drops frames while "
                + "the loop sleeps) for a core's idle time, as SO_BUSY_POLL does.",
            valueName: "µs"))
    var busyPollMicroseconds: Int = 0

    func validate() throws {
        guard (0...1_000_000).contains(busyPollMicroseconds) else {
            throw ValidationError("--busy-poll: give 0 to 1000000 microseconds")
        }
    }

    /// A new monotonic loop with these options applied.
    func makeLoop() throws -> EventLoop {
        let loop = try EventLoop()
        loop.busyPoll = .microseconds(busyPollMicroseconds)
        return loop
    }
}
