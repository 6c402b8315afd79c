// DNS over TCP (RFC 1035 §4.2.2, RFC 7766), written once against the Stream surface:
// it runs on kernel sockets (`SocketStreams`) today and will run on the Oasis stack's
// TCP unchanged. Each message is prefixed by its 2-byte length; a client may send many
// queries on one connection without waiting (pipelining), and gets the answers in
// order. Everything is bounded: connections (the rest wait in the listener's backlog),
// bytes held per connection (a client that does not read its answers stops being
// read), idle time.

import OasisDNS
import OasisLoop
import OasisNet

/// The bounds of the TCP server.
public struct DNSOverTCPLimits {
    /// Connections served at once; beyond it, new ones wait in the listener's backlog.
    public var connections = 128
    /// A connection with no progress this long is closed. Progress is a whole query
    /// received or an answer taken by the client: bytes dribbled in one at a time are
    /// not (they would hold a connection forever, as a slow-loris client does).
    public var idleTimeout: Duration = .seconds(10)
    /// Answers queued for a client that does not read them (the connection's send
    /// buffer); past it, the connection's queries are not answered, then not read,
    /// until the client catches up.
    public var pendingOutput = 128 * 1024

    public init() {}
}

/// An authoritative DNS server over any ``StreamService``:
///
/// ```swift
/// let tcp = try DNSOverTCP(engine: engine, service: SocketStreams(on: loop), port: 53)
/// ```
public final class DNSOverTCP<Service: StreamService> {
    public let engine: AuthoritativeEngine
    public let limits: DNSOverTCPLimits
    private let service: Service
    private var listener: Service.Listener?
    private var clients: [ObjectIdentifier: Client] = [:]
    private var sweep: TimerID?
    /// Where answers are built: a 2-byte length prefix, then up to 65535 bytes.
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 + 65535, alignment: 8)

    public private(set) var statistics = DNSStatistics()
    public private(set) var connectionsAccepted: UInt64 = 0
    public private(set) var connectionsClosedIdle: UInt64 = 0
    public private(set) var connectionsFailed: UInt64 = 0

    /// The largest message with its length prefix: the receive buffer holds one whole.
    private static var largestMessage: Int { 2 + 65535 }

    /// One client: its connection, and the part of an answer its send buffer did not
    /// take (while that waits, no further query is answered, so answers stay in order).
    private final class Client {
        let connection: Service.Connection
        var unsent: [UInt8] = []
        var lastProgress: Duration
        /// Bytes queued for the client at the last sweep: fewer now means it read.
        var queuedAtSweep = 0

        init(_ connection: Service.Connection, now: Duration) {
            self.connection = connection
            lastProgress = now
        }

        var queued: Int { connection.sendQueued + unsent.count }
    }

    /// Listens on `port` of `service` (TCP) and serves on its loop.
    public init(
        engine: AuthoritativeEngine, service: Service, port: UInt16,
        limits: DNSOverTCPLimits = DNSOverTCPLimits()
    ) throws(StreamError) {
        self.engine = engine
        self.service = service
        self.limits = limits
        listener = try service.listen(port: port, backlog: 128) { [weak self] connection in
            guard let self else { return connection.reset() }
            self.accept(connection)
        }
        scheduleSweep()
    }

    /// A server dropped without ``close()`` closes its listener and connections.
    deinit {
        close()
        scratch.deallocate()
    }

    /// Connections open now.
    public var openConnections: Int { clients.count }

    /// Closes the listener and every connection (at once: answers not yet sent are
    /// dropped).
    public func close() {
        if let sweep { _ = service.loop.cancelTimer(sweep) }
        sweep = nil
        listener?.close()
        listener = nil
        for client in Array(clients.values) { drop(client) }
    }

    public var summary: String {
        "\(statistics.summary); connections \(connectionsAccepted) accepted, "
            + "\(connectionsClosedIdle) closed idle, \(connectionsFailed) failed"
    }

    // MARK: Connections

    private func accept(_ connection: Service.Connection) {
        connectionsAccepted &+= 1
        let client = Client(connection, now: service.loop.now)
        clients[ObjectIdentifier(client)] = client
        connection.receiveCapacity = max(connection.receiveCapacity, DNSOverTCP.largestMessage)
        connection.sendCapacity = limits.pendingOutput
        // The connection holds these handlers and the server holds the client: weak
        // references keep that from being a cycle, and a connection still closing after
        // the server has gone finds nobody to call.
        connection.onReceive { [weak self, weak client] input in
            guard let self, let client else { return }
            self.answerWaiting(&input, for: client)
        }
        connection.onWritable { [weak self, weak client] in
            guard let self, let client else { return }
            self.resume(client)
        }
        connection.onClose { [weak self, weak client] error in
            guard let self, let client else { return }
            self.forget(client, error)
        }
        if clients.count >= limits.connections { listener?.isAccepting = false }
    }

    /// Answers each complete query waiting in `input`, in order, while the answers fit
    /// in the send buffer; a partial message stays for the next bytes. Once the client
    /// has finished sending and every query is answered, closes (after the answers).
    private func answerWaiting(_ input: inout StreamInput, for client: Client) {
        while client.unsent.isEmpty, input.count >= 2 {
            let length = Int(input[0]) << 8 | Int(input[1])
            guard input.count >= 2 + length else { break }
            input.withUnsafeBytes { bytes in
                answer(UnsafeRawBufferPointer(rebasing: bytes[2..<2 + length]), to: client)
            }
            input.consume(2 + length)
            client.lastProgress = service.loop.now
        }
        if input.isFinished && client.unsent.isEmpty { client.connection.close() }
    }

    /// Answers one query into the client's send buffer (what does not fit waits in
    /// `unsent`).
    private func answer(_ query: UnsafeRawBufferPointer, to client: Client) {
        statistics.queries &+= 1
        let room = UnsafeMutableRawBufferPointer(rebasing: scratch[2...])
        guard let length = engine.respond(to: query, transport: .tcp, into: room) else {
            statistics.dropsUnanswerable &+= 1
            return
        }
        scratch[0] = UInt8(length >> 8)
        scratch[1] = UInt8(length & 0xff)
        let message = UnsafeRawBufferPointer(rebasing: scratch[0..<2 + length])
        do {
            let taken = try client.connection.write(message)
            if taken < message.count { client.unsent = Array(message[taken...]) }
            statistics.responses &+= 1
        } catch {
            statistics.dropsSendFailed &+= 1
        }
    }

    /// Room opened in the client's send buffer: the rest of the waiting answer goes
    /// out, then the queries held back meanwhile are answered.
    private func resume(_ client: Client) {
        client.lastProgress = service.loop.now  // the transport took answers: it reads
        if !client.unsent.isEmpty {
            guard let taken = try? client.connection.write(client.unsent) else { return }
            client.unsent.removeFirst(taken)
            guard client.unsent.isEmpty else { return }
        }
        client.connection.withInput { answerWaiting(&$0, for: client) }
    }

    private func forget(_ client: Client, _ error: StreamError?) {
        guard clients.removeValue(forKey: ObjectIdentifier(client)) != nil else { return }
        if error != nil {
            connectionsFailed &+= 1
            if !client.unsent.isEmpty { statistics.dropsSendFailed &+= 1 }
        }
        if clients.count < limits.connections { listener?.isAccepting = true }
    }

    /// Closes a connection now: gracefully when nothing waits for the client, else
    /// with a reset (a client that does not read would hold a graceful close open).
    private func drop(_ client: Client) {
        if client.queued == 0 {
            client.connection.close()
        } else {
            client.connection.reset()
        }
    }

    // MARK: Idle connections

    private func scheduleSweep() {
        let period = max(limits.idleTimeout / 4, .milliseconds(100))
        sweep = service.loop.schedule(after: period) { [weak self] in
            guard let self else { return }
            let now = self.service.loop.now
            for client in Array(self.clients.values) {
                let queued = client.queued
                if queued < client.queuedAtSweep { client.lastProgress = now }  // it read
                client.queuedAtSweep = queued
                if now - client.lastProgress >= self.limits.idleTimeout {
                    self.connectionsClosedIdle &+= 1
                    self.drop(client)
                }
            }
            self.scheduleSweep()
        }
    }
}
