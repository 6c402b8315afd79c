import CXen
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A connection to xenstore (libxenstore's `xs_open`): the tree of configuration
/// that frontends and backends use to find each other.
///
/// Paths are absolute (`/local/domain/0/name`) or relative to the domain's home
/// (`device/vif/0/state`). Every call takes an optional ``Transaction``; without one
/// it acts on its own.
///
/// Ownership: call ``close()``; `deinit` closes a connection still open, as a safety
/// net only. Not `Sendable`.
public final class XenStore {
    /// A xenstore transaction id (`xs_transaction_t`).
    public struct Transaction: Hashable, Sendable {
        public let rawValue: UInt32
        /// No transaction (XBT_NULL).
        public static let none = Transaction(rawValue: 0)
    }

    /// A fired watch: the path that changed and the token given to ``watch(_:token:)``.
    public struct WatchEvent: Hashable, Sendable {
        public let path: String
        public let token: String
    }

    /// The device node xs_open falls back to inside a guest.
    static let device = "/dev/xen/xenbus"

    private var handle: OpaquePointer?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { xs_close(handle) }
    }

    /// Connects to xenstored (its socket in dom0, else `/dev/xen/xenbus`).
    public static func open(readOnly: Bool = false) throws(XenError) -> XenStore {
        let flags: UInt = readOnly ? UInt(XS_OPEN_READONLY) : 0
        guard let handle = xs_open(flags) else {
            throw XenError.openFailure(device: device, errno: XenError.lastErrno)
        }
        return XenStore(handle: handle)
    }

    /// The value at `path`, or nil when the node does not exist.
    public func read(_ path: String, in transaction: Transaction = .none) throws(XenError)
        -> String?
    {
        let store = try openHandle()
        var length: UInt32 = 0
        guard let value = xs_read(store, transaction.rawValue, path, &length) else {
            let errno = XenError.lastErrno
            if errno == .noSuchFileOrDirectory { return nil }
            throw .operationFailed(operation: "xs_read \(path)", errno)
        }
        defer { free(value) }
        let bytes = UnsafeRawBufferPointer(start: value, count: Int(length))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `value` at `path`, creating the node and its parents.
    public func write(_ value: String, to path: String, in transaction: Transaction = .none)
        throws(XenError)
    {
        let store = try openHandle()
        var bytes = Array(value.utf8)
        let written = bytes.withUnsafeMutableBytes {
            xs_write(store, transaction.rawValue, path, $0.baseAddress, UInt32($0.count))
        }
        guard written else {
            throw .operationFailed(operation: "xs_write \(path)", XenError.lastErrno)
        }
    }

    /// Removes `path` and everything below it.
    public func remove(_ path: String, in transaction: Transaction = .none) throws(XenError) {
        guard xs_rm(try openHandle(), transaction.rawValue, path) else {
            throw .operationFailed(operation: "xs_rm \(path)", XenError.lastErrno)
        }
    }

    /// The names of the children of `path`.
    public func directory(_ path: String, in transaction: Transaction = .none) throws(XenError)
        -> [String]
    {
        let store = try openHandle()
        var count: UInt32 = 0
        guard let entries = xs_directory(store, transaction.rawValue, path, &count) else {
            throw .operationFailed(operation: "xs_directory \(path)", XenError.lastErrno)
        }
        // One allocation holds the pointer array and the strings.
        defer { free(entries) }
        return (0..<Int(count)).compactMap { entries[$0].map { String(cString: $0) } }
    }

    /// Asks xenstored to report changes at or below `path`. Events arrive on
    /// ``watchFileDescriptor``; read them with ``nextWatchEvent()``. xenstored fires
    /// each new watch once straight away.
    public func watch(_ path: String, token: String) throws(XenError) {
        guard xs_watch(try openHandle(), path, token) else {
            throw .operationFailed(operation: "xs_watch \(path)", XenError.lastErrno)
        }
    }

    /// Cancels a watch set with the same path and token.
    public func unwatch(_ path: String, token: String) throws(XenError) {
        guard xs_unwatch(try openHandle(), path, token) else {
            throw .operationFailed(operation: "xs_unwatch \(path)", XenError.lastErrno)
        }
    }

    /// A descriptor that becomes readable when a watch event is waiting (xs_fileno).
    /// Owned by the connection: do not close it.
    public var watchFileDescriptor: FileDescriptor {
        get throws(XenError) {
            let descriptor = xs_fileno(try openHandle())
            guard descriptor >= 0 else {
                throw .operationFailed(operation: "xs_fileno", XenError.lastErrno)
            }
            return FileDescriptor(rawValue: descriptor)
        }
    }

    /// The next fired watch, or nil when none is waiting (xs_check_watch, which does
    /// not block).
    public func nextWatchEvent() throws(XenError) -> WatchEvent? {
        guard let fields = xs_check_watch(try openHandle()) else {
            let errno = XenError.lastErrno
            if errno == .wouldBlock { return nil }
            throw .operationFailed(operation: "xs_check_watch", errno)
        }
        defer { free(fields) }
        guard let path = fields[Int(XS_WATCH_PATH.rawValue)],
            let token = fields[Int(XS_WATCH_TOKEN.rawValue)]
        else { throw .malformedWatchEvent }
        return WatchEvent(path: String(cString: path), token: String(cString: token))
    }

    /// Starts a transaction: reads and writes made in it apply together at
    /// ``endTransaction(_:abort:)``, or not at all.
    public func startTransaction() throws(XenError) -> Transaction {
        let id = xs_transaction_start(try openHandle())
        guard id != 0 else {
            throw .operationFailed(operation: "xs_transaction_start", XenError.lastErrno)
        }
        return Transaction(rawValue: id)
    }

    /// Commits (or with `abort`, discards) a transaction. Returns false when another
    /// writer raced it (EAGAIN): start again from ``startTransaction()``.
    public func endTransaction(_ transaction: Transaction, abort: Bool = false) throws(XenError)
        -> Bool
    {
        if xs_transaction_end(try openHandle(), transaction.rawValue, abort) { return true }
        let errno = XenError.lastErrno
        if errno == .resourceTemporarilyUnavailable { return false }
        throw .operationFailed(operation: "xs_transaction_end", errno)
    }

    /// Closes the connection. Closing twice does nothing.
    public func close() {
        if let handle { xs_close(handle) }
        handle = nil
    }

    private func openHandle() throws(XenError) -> OpaquePointer {
        guard let handle else { throw .closed("xenstore connection") }
        return handle
    }
}
