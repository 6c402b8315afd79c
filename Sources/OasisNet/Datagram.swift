// The `Datagram` surface: what UDP-like applications (the DNS server, echo) program
// against. Two implementations: the Oasis stack (`IPv4Stack`) and kernel sockets
// (`SocketDatagrams`), so one application runs on either — the tutorial's
// unix-direct and unix-socket.

import OasisBits

/// An IPv4 address and a port.
public struct DatagramEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16

    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { "\(address):\(port)" }
}

/// One datagram received: who sent it, where to, and its payload — a view into the
/// buffer it arrived in (for the Oasis stack, the device's receive buffer: no copy).
public struct Datagram {
    public var source: DatagramEndpoint
    public var destination: DatagramEndpoint
    public var payload: Bits

    public init(source: DatagramEndpoint, destination: DatagramEndpoint, payload: Bits) {
        self.source = source
        self.destination = destination
        self.payload = payload
    }
}

/// Why a datagram operation failed.
public enum DatagramError: Error, Equatable, CustomStringConvertible {
    /// Another listener holds the port.
    case portInUse(UInt16)
    /// The payload does not fit in one IPv4 datagram (65 507 bytes of UDP payload).
    case payloadTooLarge(Int)
    /// No buffer was free to build the datagram in.
    case noBuffers
    /// The destination is not reachable: no route, or ARP gave up on the next hop.
    case unreachable(IPv4Address)
    /// A kernel socket call failed (`errno`).
    case system(operation: String, errno: Int32)
    /// The device refused the frame.
    case device(String)

    public var description: String {
        switch self {
        case .portInUse(let port): return "UDP port \(port) is in use"
        case .payloadTooLarge(let size): return "a \(size)-byte payload does not fit a UDP datagram"
        case .noBuffers: return "no free buffer to send from"
        case .unreachable(let address): return "\(address) is unreachable"
        case .system(let operation, let code): return "\(operation) failed: errno \(code)"
        case .device(let message): return "device: \(message)"
        }
    }
}

/// The largest UDP payload in one IPv4 datagram.
public let maximumUDPPayload = 65_535 - 20 - 8

/// A UDP-like service: listen on ports, receive datagrams through a callback on the
/// loop, send datagrams. Implemented by the Oasis stack and by kernel sockets.
///
/// ```swift
/// try udp.listen(port: 7) { datagram in
///     try? udp.send(datagram.payload, to: datagram.source, from: 7)   // echo
/// }
/// ```
public protocol DatagramService: AnyObject {
    /// Delivers every datagram arriving for `port` to `handler`, on the loop.
    func listen(port: UInt16, _ handler: @escaping (Datagram) -> Void) throws(DatagramError)
    /// Stops delivering datagrams for `port`.
    func stopListening(port: UInt16)
    /// Sends `payload` to `destination` from the local `port`. The payload may be a
    /// view of a received datagram: the stack then builds the reply's headers in
    /// front of it, in the same buffer, without copying.
    func send(_ payload: Bits, to destination: DatagramEndpoint, from port: UInt16)
        throws(DatagramError)
}

extension DatagramService {
    /// Sends bytes (copied into a buffer first).
    public func send(_ bytes: [UInt8], to destination: DatagramEndpoint, from port: UInt16)
        throws(DatagramError)
    {
        try send(Bits(bytes, headroom: 128), to: destination, from: port)
    }
}
