// Bounded waits for `oasis block`: a backend that stops answering (a stopped
// simulator, a wedged disk) must not hang a command forever.

import OasisDevices
import OasisLoop

/// Whether a bounded wait has ended (by its answer or by its timer): shared by the
/// completion and the timer, both on the loop thread.
private final class WaitState {
    var done = false
}

extension BlockDevice {
    /// Submits `request` and waits for it at most `timeout`; then fails with
    /// ``BlockError/ioError(device:detail:)`` saying so (the request stays with the
    /// device, which is closed with the command). Call it from a task on the device's
    /// loop.
    ///
    /// ```swift
    /// try await disk.perform(BlockRequest(read: 0, pages: pages, sectorSize: 512),
    ///                        within: .seconds(30))
    /// ```
    func perform(_ request: BlockRequest, within timeout: Duration) async throws(BlockError) {
        guard let loop = EventLoop.current else {
            try await perform(request)
            return
        }
        let name = self.name
        let operation = request.operation
        let outcome: Result<Void, BlockError> = await withUnsafeContinuation { continuation in
            let state = WaitState()
            let timer = loop.schedule(after: timeout) {
                guard !state.done else { return }
                state.done = true
                continuation.resume(
                    returning: .failure(
                        .ioError(
                            device: name,
                            detail: "\(operation) not answered within \(timeout) (--timeout)")))
            }
            submit(request) { result in
                guard !state.done else { return }
                state.done = true
                _ = loop.cancelTimer(timer)
                continuation.resume(returning: result.map { _ in () })
            }
        }
        try outcome.get()
    }
}
