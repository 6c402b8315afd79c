// The `--backend` option shared by every command that drives a device or sockets.

import ArgumentParser

/// Where a command's packets go.
enum Backend: String, ExpressibleByArgument, CaseIterable {
    /// Kernel sockets: the application runs on the host's own stack.
    case socket
    /// A Linux TAP device driven directly by the Oasis stack.
    case tap
    /// A libpcap live handle on an interface.
    case pcap
    /// An AF_XDP socket on one queue of an interface, driven by the Oasis stack.
    case xdp
    /// A Xen netfront talking to netback through grants and event channels.
    case xen
    /// An in-memory connected pair, for tests and benchmarks.
    case memory
}

/// A backend this build of a command does not drive yet.
struct BackendNotBuilt: Error, CustomStringConvertible {
    var backend: Backend
    var command: String
    var description: String {
        "the \(backend.rawValue) backend is not built yet for `oasis \(command)`"
    }
}
