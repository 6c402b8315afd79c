import SystemPackage

/// What went wrong inside the loop itself: a failed system call, or an API used
/// out of its context. Promise failures are the application's own errors and are
/// never wrapped in this type.
public enum LoopError: Error, Hashable, Sendable {
    /// `epoll_create1` failed while building a loop.
    case epollCreate(Errno)
    /// `eventfd` failed while building a loop's wake-up channel.
    case eventfdCreate(Errno)
    /// `epoll_ctl` failed for the descriptor.
    case epollControl(fd: CInt, Errno)
    /// `epoll_wait` failed (other than `EINTR`, which is retried).
    case epollWait(Errno)
    /// A persistent handler is already registered for the descriptor.
    case alreadyRegistered(fd: CInt)
    /// No persistent handler is registered for the descriptor.
    case notRegistered(fd: CInt)
    /// An operation that needs `EventLoop.current` ran on a thread with no running loop.
    case noCurrentLoop
    /// ``EventLoop/stop()`` ended ``EventLoop/run(until:)`` before its promise settled.
    case stoppedBeforeSettled
}

/// The failure of a promise that was cancelled with ``Promise/cancel()`` (or lost a
/// ``EventLoop/pick(_:)``). Async code cancelled through Swift's `Task` sees Swift's own
/// `CancellationError` instead, as `Task.sleep` does.
public struct Cancelled: Error, Hashable, Sendable {
    /// Creates the cancellation error.
    public init() {}
}
