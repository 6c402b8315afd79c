// Runs a command's async body on a fresh cooperative loop on this thread.

import OasisLoop

/// Runs `body` on a new ``EventLoop`` owned by the calling thread until it finishes;
/// everything it awaits — sleeps, devices, sockets, child tasks — runs on that loop.
func runOnLoop<Value: Sendable>(
    clock: LoopClock = .monotonic, _ body: sending @escaping () async throws -> Value
) throws -> Value {
    let loop = try EventLoop(clock: clock)
    return try loop.run(body)
}
