import CTap
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong entering or leaving a network namespace.
public enum NetworkNamespaceError: Error, Equatable, CustomStringConvertible {
    /// The namespace file (`/run/netns/NAME`) or the thread's own could not be opened.
    case openFailed(path: String, Errno)
    /// setns(2) refused (EPERM without CAP_SYS_ADMIN, EINVAL for a non-netns file).
    case enterFailed(path: String, Errno)

    public var description: String {
        switch self {
        case .openFailed(let path, let errno): return "cannot open \(path): \(errno)"
        case .enterFailed(let path, let errno): return "setns(\(path), CLONE_NEWNET): \(errno)"
        }
    }
}

/// Runs code with the calling thread inside another network namespace.
///
/// Linux keeps the network namespace per thread: setns(2) with CLONE_NEWNET moves only
/// the calling thread. Descriptors keep the namespace they were created in, so a
/// ``TapInterface`` or ``PcapHandle`` opened inside `body` keeps working in that
/// namespace after the thread has returned to its own, from any thread. Child
/// processes started inside `body` start in the namespace too.
public enum NetworkNamespace {
    /// The path of a namespace created by `ip netns add NAME`.
    public static func path(named name: String) -> String { "/run/netns/" + name }

    /// Enters the namespace at `path`, runs `body`, and returns the thread to the
    /// namespace it was in, also when `body` throws. `body` is synchronous on purpose:
    /// an `await` inside it could resume on another thread, or let another task run on
    /// this one while it is inside the namespace.
    public static func withEntered<Result>(path: String, _ body: () throws -> Result) throws
        -> Result
    {
        let ownPath = "/proc/thread-self/ns/net"
        let own = Glibc.open(ownPath, O_RDONLY | O_CLOEXEC)
        guard own >= 0 else { throw NetworkNamespaceError.openFailed(path: ownPath, lastErrno) }
        defer { _ = Glibc.close(own) }
        let target = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw NetworkNamespaceError.openFailed(path: path, lastErrno) }
        defer { _ = Glibc.close(target) }

        let entered = oasis_netns_enter(target)
        guard entered == 0 else {
            throw NetworkNamespaceError.enterFailed(path: path, Errno(rawValue: -entered))
        }
        defer {
            // Going back to a namespace this thread was already in cannot be refused
            // for lack of privilege: the setns above just succeeded with the same
            // capabilities. If it still failed, the thread would run later work in the
            // wrong namespace, which is worse than stopping.
            let restored = oasis_netns_enter(own)
            precondition(restored == 0, "cannot return thread to its network namespace")
        }
        return try body()
    }

    private static var lastErrno: Errno { Errno(rawValue: oasis_tap_errno()) }
}
