// DNS over TCP (RFC 1035 §4.2.2, RFC 7766), written once against the Stream surface:
// it runs on kernel sockets (`SocketStreams`) today and will run on the Oasis stack's
// TCP unchanged. Each message is prefixed by its 2-byte length; a client may send many
// queries on one connection without waiting (pipelining), and gets the answers in
// order. Everything is bounded: connections (a full table makes room by evicting
// the oldest idle connection, or one of the source holding the most), connections per
// source address, bytes held per connection (a client that does not read its answers
// stops being read), the time one message may take to arrive, idle time.

import OasisDNS
import OasisLoop
import OasisNet
import OasisWire

/// The bounds of the TCP server.
///
/// A full table does not keep new clients waiting (clients holding slots would starve
/// everyone else, as 2 000 idle connections did): a new connection evicts the idle
/// connection that made progress longest ago (no partial query, no answer waiting),
/// else the oldest of the source address holding the most slots, if it holds more than
/// the newcomer's would; else the newcomer is refused (reset).
public struct DNSOverTCPLimits {
    /// Connections served at once.
    public var connections = 128
    /// Connections one source address may hold at once: beyond it, its new ones are
    /// refused (reset). A quarter of ``connections`` by default.
    public var connectionsPerSource = 32
    /// A connection with no progress this long is closed. Progress is a whole query
    /// received or an answer taken by the client: bytes dribbled in one at a time are
    /// not (they would hold a connection forever, as a slow-loris client does).
    public var idleTimeout: Duration = .seconds(10)
    /// The time one message may take to arrive, from its first byte to its last: a
    /// client sending a byte now and then is closed after this, however often it
    /// sends (RFC 7766 §6.2.3 asks servers to protect themselves so).
    public var messageTimeout: Duration = .seconds(3)
    /// Answers queued for a client that does not read them (the connection's send
    /// buffer); past it, the connection's queries are not answered, then not read,
    /// until the client catches up.
    public var pendingOutput = 128 * 1024
    /// Bytes of zone transfer one connection may write per turn of the loop: then the
    /// transfer waits for the next turn, so that other clients' queries and other
    /// transfers are served in between (a reader fast enough never fills its send
    /// buffer, and would otherwise have the loop to itself until the zone is out).
    /// One 16 KiB transfer message by default, as NSD interleaves them.
    public var transferBytesPerTurn = 16 * 1024

    public init() {}
}

/// An authoritative DNS server over any ``StreamService``:
///
/// ```swift
/// let tcp = try DNSOverTCP(engine: engine, service: SocketStreams(on: loop), port: 53)
/// ```
public final class DNSOverTCP<Service: StreamService> {
    /// The zones answered from; replaced by a reload (queries already answered keep
    /// their answers).
    public var engine: AuthoritativeEngine
    /// The clients that may transfer zones (AXFR, and IXFR answered by a whole zone);
    /// the others are REFUSED, as by an engine that serves no transfers.
    public var allowTransfer = TransferAllowList()
    /// TCP queries by type, answers by rcode, truncated answers (none: TCP is whole).
    @exclusivity(unchecked) public private(set) var counters = QueryCounters()
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
    /// Closed because a message took longer than ``DNSOverTCPLimits/messageTimeout``.
    public private(set) var connectionsClosedSlow: UInt64 = 0
    /// Evicted to make room for a new connection.
    public private(set) var connectionsEvicted: UInt64 = 0
    /// Refused (reset at once): their source held its share, or every slot was busy.
    public private(set) var connectionsRefused: UInt64 = 0
    public private(set) var connectionsFailed: UInt64 = 0
    /// Zone transfers begun for allowed clients, and those whose last message the
    /// connection took.
    public private(set) var transfersStarted: UInt64 = 0
    public private(set) var transfersCompleted: UInt64 = 0
    /// Connections held per source address.
    private var perSource: [IPv4Address: Int] = [:]

    /// The largest message with its length prefix: the receive buffer holds one whole.
    private static var largestMessage: Int { 2 + 65535 }

    /// One client: its connection, and the part of an answer its send buffer did not
    /// take (while that waits, no further query is answered, so answers stay in order).
    private final class Client {
        let connection: Service.Connection
        let source: IPv4Address
        var unsent: [UInt8] = []
        /// A zone transfer under way: its next messages are written as the client
        /// reads, before any further query is answered.
        var transfer: ZoneTransfer?
        var lastProgress: Duration
        /// Bytes queued for the client at the last sweep: fewer now means it read.
        var queuedAtSweep = 0
        /// When the first byte of the message arriving now came; nil between messages
        /// (and while whole queries wait for the client to read its answers).
        var messageStarted: Duration?
        /// Bytes received and not yet answered.
        var inputHeld = 0
        /// Set once the server has closed or reset it (and taken it out of the table).
        var dropped = false
        /// A transfer that used its turn's share waits for the loop's next turn.
        var transferQueued = false

        init(_ connection: Service.Connection, now: Duration) {
            self.connection = connection
            source = connection.remote.address
            lastProgress = now
        }

        var queued: Int { connection.sendQueued + unsent.count }
        /// Between messages, with nothing to send: what a full table evicts first.
        var isIdle: Bool { inputHeld == 0 && queued == 0 && transfer == nil }
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

    /// Connections held by one source address now.
    public func connections(from source: IPv4Address) -> Int { perSource[source] ?? 0 }

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
            + "\(connectionsClosedIdle) closed idle, \(connectionsClosedSlow) closed slow, "
            + "\(connectionsEvicted) evicted, \(connectionsRefused) refused, "
            + "\(connectionsFailed) failed; zone transfers \(transfersStarted) started, "
            + "\(transfersCompleted) completed"
    }

    // MARK: Connections

    private func accept(_ connection: Service.Connection) {
        let source = connection.remote.address
        guard makeRoom(for: source) else {
            connectionsRefused &+= 1
            connection.reset()
            return
        }
        connectionsAccepted &+= 1
        let client = Client(connection, now: service.loop.now)
        clients[ObjectIdentifier(client)] = client
        perSource[source, default: 0] += 1
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
    }

    /// Whether a connection from `source` may be served, after evicting one to make
    /// room if need be (see ``DNSOverTCPLimits``).
    private func makeRoom(for source: IPv4Address) -> Bool {
        let held = connections(from: source)
        guard held < limits.connectionsPerSource else { return false }
        guard clients.count >= limits.connections else { return true }
        var idlest: Client? = nil
        for client in clients.values where client.isIdle {
            if idlest == nil || client.lastProgress < idlest!.lastProgress { idlest = client }
        }
        if let idlest {
            evict(idlest)
            return true
        }
        // None idle: the source holding the most gives up its oldest message, if it
        // holds more than the newcomer's source would.
        var heaviest: (source: IPv4Address, count: Int)? = nil
        for (address, count) in perSource where heaviest == nil || count > heaviest!.count {
            heaviest = (address, count)
        }
        guard let heaviest, heaviest.count > held + 1 else { return false }
        var oldest: Client? = nil
        for client in clients.values where client.source == heaviest.source {
            let started = client.messageStarted ?? client.lastProgress
            if oldest == nil || started < (oldest!.messageStarted ?? oldest!.lastProgress) {
                oldest = client
            }
        }
        guard let oldest else { return false }
        evict(oldest)
        return true
    }

    /// Closes `client` to make room.
    private func evict(_ client: Client) {
        connectionsEvicted &+= 1
        drop(client)
    }

    /// Answers each complete query waiting in `input`, in order, while the answers fit
    /// in the send buffer; a partial message stays for the next bytes. Once the client
    /// has finished sending and every query is answered, closes (after the answers).
    private func answerWaiting(_ input: inout StreamInput, for client: Client) {
        guard !client.dropped else {
            input.consume(input.count)
            return
        }
        let now = service.loop.now
        var answered = false
        while client.unsent.isEmpty, client.transfer == nil, !client.dropped, input.count >= 2 {
            let length = Int(input[0]) << 8 | Int(input[1])
            guard input.count >= 2 + length else { break }
            input.withUnsafeBytes { bytes in
                answer(UnsafeRawBufferPointer(rebasing: bytes[2..<2 + length]), to: client)
            }
            input.consume(2 + length)
            client.lastProgress = now
            answered = true
        }
        client.inputHeld = input.count
        if input.isEmpty || !client.unsent.isEmpty || client.transfer != nil {
            // Between messages, or whole queries held back while the client does not
            // read (the idle timeout watches that).
            client.messageStarted = nil
        } else if answered || client.messageStarted == nil {
            client.messageStarted = now
        }
        if input.isFinished && client.unsent.isEmpty && client.transfer == nil {
            client.connection.close()
        }
    }

    /// Answers one query into the client's send buffer (what does not fit waits in
    /// `unsent`).
    private func answer(_ query: UnsafeRawBufferPointer, to client: Client) {
        statistics.queries &+= 1
        let room = UnsafeMutableRawBufferPointer(rebasing: scratch[2...])
        if !allowTransfer.isEmpty, allowTransfer.contains(client.source),
            let transfer = ZoneTransfer(engine: engine, query: query)
        {
            transfersStarted &+= 1
            client.transfer = transfer
            continueTransfer(of: client, query: query)
            return
        }
        guard let length = engine.respond(to: query, transport: .tcp, into: room) else {
            statistics.dropsUnanswerable &+= 1
            return
        }
        counters.count(query: query, answer: UnsafeRawBufferPointer(rebasing: room[..<length]))
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

    /// Writes the transfer's next messages while the send buffer takes them whole (the
    /// part of one it does not take waits in `unsent`), at most
    /// ``DNSOverTCPLimits/transferBytesPerTurn`` bytes: past that, the rest waits for
    /// the loop's next turn (after I/O has been polled and other work run). `query`:
    /// the first message is counted as the answer to it.
    private func continueTransfer(of client: Client, query: UnsafeRawBufferPointer? = nil) {
        let room = UnsafeMutableRawBufferPointer(rebasing: scratch[2...])
        var budget = max(1, limits.transferBytesPerTurn)
        while client.unsent.isEmpty, let transfer = client.transfer {
            guard budget > 0 else {
                yieldTransfer(of: client)
                return
            }
            guard let length = transfer.nextMessage(into: room) else {
                client.transfer = nil
                transfersCompleted &+= 1
                break
            }
            budget -= 2 + length
            if transfer.messages == 1, let query {
                counters.count(
                    query: query, answer: UnsafeRawBufferPointer(rebasing: room[..<length]))
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
                client.transfer = nil
                drop(client)
                return
            }
        }
    }

    /// Continues `client`'s transfer on the loop's next turn (once, however often asked).
    private func yieldTransfer(of client: Client) {
        guard !client.transferQueued else { return }
        client.transferQueued = true
        service.loop.enqueue { [weak self, weak client] in
            guard let self, let client else { return }
            client.transferQueued = false
            guard !client.dropped, client.unsent.isEmpty, client.transfer != nil else { return }
            self.continueTransfer(of: client)
            guard client.transfer == nil, client.unsent.isEmpty, !client.dropped else { return }
            client.connection.withInput { self.answerWaiting(&$0, for: client) }
        }
    }

    /// Room opened in the client's send buffer: the rest of the waiting answer goes
    /// out, then the transfer under way continues, then the queries held back
    /// meanwhile are answered.
    private func resume(_ client: Client) {
        client.lastProgress = service.loop.now  // the transport took answers: it reads
        if !client.unsent.isEmpty {
            guard let taken = try? client.connection.write(client.unsent) else { return }
            client.unsent.removeFirst(taken)
            guard client.unsent.isEmpty else { return }
        }
        if client.transfer != nil {
            // Already given its share this turn: the queued continuation goes on.
            guard !client.transferQueued else { return }
            continueTransfer(of: client)
            guard client.transfer == nil, client.unsent.isEmpty else { return }
        }
        client.connection.withInput { answerWaiting(&$0, for: client) }
    }

    private func forget(_ client: Client, _ error: StreamError?) {
        guard release(client), error != nil, !client.dropped else { return }
        connectionsFailed &+= 1
        if !client.unsent.isEmpty { statistics.dropsSendFailed &+= 1 }
    }

    /// Takes a client out of the table and its source's count; false if it was out.
    @discardableResult
    private func release(_ client: Client) -> Bool {
        guard clients.removeValue(forKey: ObjectIdentifier(client)) != nil else { return false }
        let left = (perSource[client.source] ?? 1) - 1
        perSource[client.source] = left > 0 ? left : nil
        return true
    }

    /// Closes a connection now: gracefully when nothing waits for the client, else
    /// with a reset (a client that does not read would hold a graceful close open).
    /// Its slot is free at once: the connection may report its close later, when the
    /// table has forgotten it.
    private func drop(_ client: Client) {
        client.dropped = true
        release(client)
        if client.queued == 0 {
            client.connection.close()
        } else {
            client.connection.reset()
        }
    }

    // MARK: Idle connections

    private func scheduleSweep() {
        let period = max(min(limits.idleTimeout, limits.messageTimeout) / 4, .milliseconds(50))
        sweep = service.loop.schedule(after: period) { [weak self] in
            guard let self else { return }
            let now = self.service.loop.now
            for client in Array(self.clients.values) {
                let queued = client.queued
                if queued < client.queuedAtSweep { client.lastProgress = now }  // it read
                client.queuedAtSweep = queued
                if let started = client.messageStarted,
                    now - started >= self.limits.messageTimeout
                {
                    self.connectionsClosedSlow &+= 1
                    self.drop(client)
                } else if now - client.lastProgress >= self.limits.idleTimeout {
                    self.connectionsClosedIdle &+= 1
                    self.drop(client)
                }
            }
            self.scheduleSweep()
        }
    }
}
