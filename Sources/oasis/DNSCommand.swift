// `oasis dns`: the authoritative DNS server. Zones are read from master files and
// compiled into the engine once; the server answers over UDP on kernel sockets (with
// TCP beside it) or on the Oasis stack over a TAP, libpcap or AF_XDP (UDP).

import ArgumentParser
import Glibc
import OasisDNS
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisWire
import Synchronization

struct DNSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns",
        abstract: "Serve zones as an authoritative DNS server.",
        discussion: """
            Each --zone is a master file (RFC 1035), as NSD and BIND read them. Its origin \
            is ORIGIN when given as ORIGIN=FILE, else the file's leading $ORIGIN, else the \
            owner of its first record when absolute, else the file's name without .zone. \
            A zone that does not load is reported as file:line: problem, and nothing is \
            served. With --backend socket (the default) the server answers UDP and TCP on \
            kernel sockets at --listen. With --backend tap, pcap or xdp it answers UDP on \
            the Oasis stack at --ip (port from --listen, 53 by default), on a TAP in a \
            namespace of its own (or --tap NAME), through libpcap on --pcap IFACE, or \
            through AF_XDP on --xdp IFACE (the stack then owns that interface's queue). \
            --workers N runs N loops, each on a thread of its own, sharing the compiled \
            zones and nothing else on the per-query path: on kernel sockets each serves \
            its own SO_REUSEPORT sockets (default: one per core), the kernel spreading \
            queries over them by flow; on AF_XDP each owns one receive queue of the \
            interface with its own stack (default: one per core, at most one per queue), \
            the NIC's RSS (or a multi-queue veth) spreading the flows; on a TAP each owns \
            one queue of a multi-queue TAP (default: 1). Statistics are printed on exit \
            (SIGINT, SIGTERM or --seconds) and on SIGUSR1, per worker. SIGHUP reloads \
            the zones. Zone transfers (AXFR over TCP; IXFR answered with the whole zone) \
            are served to the clients --allow-transfer lists; each --notify secondary is \
            sent NOTIFY (RFC 1996) for every zone at start and whenever a reload changes \
            a zone's serial.
            """,
        subcommands: [DNSCheckZoneCommand.self])

    @Option(
        help: ArgumentHelp(
            "A zone to serve (repeatable).", valueName: "[origin=]file"))
    var zone: [String] = []

    @Option(
        help: ArgumentHelp(
            "Also serve the zones stored on this disk by `oasis block put-zones` "
                + "(memory:SIZE, file:PATH, xen:VBD), read through the block device before serving.",
            valueName: "disk"))
    var zoneDisk: String?

    @Option(help: "Where packets go: socket, tap, pcap, xdp.")
    var backend: Backend = .socket

    @Option(
        help: ArgumentHelp(
            "Address and port to answer on (socket: 127.0.0.1:53; tap/pcap: the port only).",
            valueName: "address:port"))
    var listen: String?

    @OptionGroup var stackOptions: StackOptions
    @OptionGroup var loopOptions: LoopOptions

    @Option(help: "The largest UDP answer to an EDNS client.")
    var maximumUDPPayload = Transport.defaultPayloadSize

    @Option(
        help: ArgumentHelp(
            "UDP answers kept by the query that asked (a packet cache; 0: none).",
            valueName: "slots"))
    var answerCache = 1024

    @Option(
        help: ArgumentHelp(
            "Answer CH TXT version.bind and version.server with this text (default: REFUSED, "
                + "as NSD with hide-version).", valueName: "text"))
    var serverVersion: String?

    @Option(
        help: ArgumentHelp(
            "Answer CH TXT id.server and hostname.bind with this text (default: REFUSED, "
                + "as NSD with hide-identity).", valueName: "text"))
    var serverIdentity: String?

    @Option(help: "TCP: connections served at once.")
    var tcpConnections = 128

    @Option(help: "TCP: seconds without progress before a connection is closed.")
    var tcpIdleTimeout = 10.0

    @Option(help: "TCP: seconds one query may take to arrive, from its first byte to its last.")
    var tcpMessageTimeout = 3.0

    @Option(help: "TCP: connections one source address may hold at once.")
    var tcpConnectionsPerSource = 32

    @Option(
        help: ArgumentHelp(
            "Loops serving queries, each on its own thread: SO_REUSEPORT sockets (socket; "
                + "default: one per core), a receive queue (xdp; default: one per core and "
                + "queue), a queue of a multi-queue TAP (tap; default: 1).", valueName: "n"))
    var workers: Int?

    @Option(
        help: ArgumentHelp(
            "Clients allowed to transfer the zones over TCP (AXFR; IXFR is answered with "
                + "the whole zone): addresses and networks, comma-separated, repeatable "
                + "(default: nobody, transfers REFUSED).",
            valueName: "address[/length],..."))
    var allowTransfer: [String] = []

    @Option(
        help: ArgumentHelp(
            "A secondary to send NOTIFY to (UDP) when the zones load and when a reload "
                + "changes a zone's serial; repeatable or comma-separated (port 53 when "
                + "not given).", valueName: "address[:port]"))
    var notify: [String] = []

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    func validate() throws {
        if maximumUDPPayload < 512 || maximumUDPPayload > 4096 {
            throw ValidationError("--maximum-udp-payload must be within 512...4096")
        }
        if tcpConnections < 1 { throw ValidationError("--tcp-connections must be positive") }
        if let workers {
            guard (1...256).contains(workers) else {
                throw ValidationError("--workers must be within 1...256")
            }
            if workers > 1 && backend == .pcap {
                throw ValidationError(
                    "--workers above 1 is not for --backend pcap (libpcap reads the interface "
                        + "as one queue): use --backend xdp or tap")
            }
        }
        if tcpConnectionsPerSource < 1 {
            throw ValidationError("--tcp-connections-per-source must be positive")
        }
        if answerCache < 0 || answerCache > 1 << 20 {
            throw ValidationError("--answer-cache must be within 0...1048576")
        }
        if backend == .socket {
            let stackOnly: [(String, Bool)] = [
                ("--tap", stackOptions.tap != nil), ("--pcap", stackOptions.pcap != nil),
                ("--mac", stackOptions.mac != nil), ("--capture", stackOptions.capture != nil),
                ("--vnet-header", stackOptions.vnetHeader), ("--xdp", stackOptions.xdp != nil),
                ("--xdp-generic", stackOptions.xdpGeneric),
                ("--impair", stackOptions.impair != nil),
            ]
            if stackOptions.usesDHCP {
                throw ValidationError(
                    "--ip dhcp is for the Oasis stack (--backend tap, pcap or xdp)")
            }
            for (name, given) in stackOnly where given {
                throw ValidationError("\(name) is for the Oasis stack (--backend tap, pcap or xdp)")
            }
        }
    }

    func run() throws {
        // Here, not in validate(): that runs for `oasis dns check-zone` too.
        if zone.isEmpty && zoneDisk == nil {
            throw ValidationError("give at least one --zone FILE or a --zone-disk")
        }
        // Before any thread starts: SIGHUP is for the reloader's thread alone.
        ZoneReloader.blockSignal()
        let (address, port) = try listenEndpoint()
        let allowed: TransferAllowList
        let secondaries: [DatagramEndpoint]
        do {
            allowed = try TransferAllowList(parsing: allowTransfer)
        } catch { throw ValidationError("--allow-transfer: \(error)") }
        do {
            secondaries = try notifyTargets(parsing: notify)
        } catch { throw ValidationError("--notify: \(error)") }
        if !allowed.ignoredIPv6.isEmpty {
            Console.log(
                "oasis: --allow-transfer: \(allowed.ignoredIPv6.joined(separator: ", ")) is never "
                    + "matched: the server answers on IPv4 only")
        }
        let engine: AuthoritativeEngine
        do {
            engine = try DNSCommand.loadZones(zone, disk: zoneDisk).answering(
                as: ServerIdentity(version: serverVersion, identity: serverIdentity))
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
        let names = engine.statistics
        let reloader = ZoneReloader(
            specifications: zone, disk: zoneDisk,
            identity: ServerIdentity(version: serverVersion, identity: serverIdentity))
        let loop = try loopOptions.makeLoop()
        let stopper = SignalStopper(loop: loop)
        let loaded =
            "\(zone.count) zone\(zone.count == 1 ? "" : "s")"
            + (zoneDisk.map { " and the zones on \($0)" } ?? "") + ", \(names.names) names, "
            + "\(names.rrsets) RRsets"

        var limits = DNSOverTCPLimits()
        limits.connections = tcpConnections
        limits.idleTimeout = try milliseconds(tcpIdleTimeout, option: "--tcp-idle-timeout")
        limits.messageTimeout = try milliseconds(
            tcpMessageTimeout, option: "--tcp-message-timeout")
        limits.connectionsPerSource = tcpConnectionsPerSource
        switch backend {
        case .socket:
            let count = workers ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            if count > 1 && port == 0 {
                throw ValidationError("--workers above 1 needs a port to share (not 0)")
            }
            let bound = address ?? IPv4Address(127, 0, 0, 1)
            let settings = SocketWorkerSettings(
                engine: engine, address: bound, port: port, limits: limits,
                maximumUDPPayload: maximumUDPPayload, answerCache: answerCache,
                reusePort: count > 1, loopOptions: loopOptions)
            let pool = SocketWorkers(count: count, settings: settings, main: loop)
            try pool.start()
            pool.main.tcp?.allowTransfer = allowed
            // NOTIFY from a port of its own on the main loop (the secondaries' answers
            // come back to it, not to the server's port).
            let notifier =
                secondaries.isEmpty
                ? nil
                : try DNSNotifier(
                    service: SocketDatagrams(address: bound, on: loop), loop: loop,
                    targets: secondaries)
            pool.notifier = notifier
            let statistics = StatisticsOnSignal()
            for worker in pool.all {
                reloader.add(on: worker.loop) { engine in
                    worker.service?.replace(engine: engine)
                    worker.tcp?.engine = engine
                }
                statistics.add(on: worker.loop) { worker.report(of: count) }
            }
            if let notifier {
                reloader.add(on: loop) { engine in notifier.engineChanged(to: engine) }
                statistics.add(on: loop) {
                    Console.log("oasis: dns \(notifier.statistics.summary)")
                }
                notifier.engineChanged(to: engine)
            }
            reloader.start()
            statistics.start()
            Console.log(
                "oasis: dns on kernel sockets at \(bound):\(port) (UDP and TCP), \(loaded)"
                    + (count > 1 ? ", \(count) workers" : ""))
            stopper.also { pool.stopAll() }
            if let seconds {
                loop.schedule(after: try milliseconds(seconds, option: "--seconds")) {
                    pool.stopAll()
                }
            }
            try pool.runMain()
            pool.report()
        case .tap, .pcap, .xdp:
            if let address, address != .any, address != (try stackOptions.network()).address {
                throw ValidationError(
                    "--listen: the Oasis stack answers at --ip; give only a port (or 0.0.0.0:PORT)")
            }
            // NOTIFY's answers come back to one worker's port, on whichever queue their
            // flow lands: with --notify the stack runs one worker.
            let count = try stackOptions.workerCount(
                requested: workers, backend: backend,
                splittable: stackOptions.allowsWorkers && secondaries.isEmpty)
            let settings = DNSOnStack.Settings(
                engine: engine, maximumUDPPayload: maximumUDPPayload, answerCache: answerCache,
                limits: limits, port: port, seconds: seconds, loaded: loaded, reloader: reloader,
                allowTransfer: allowed, secondaries: secondaries, workers: count)
            let make: @Sendable (Int) -> DNSOnStack = { DNSOnStack(settings: settings, worker: $0) }
            switch backend {
            case .tap where count > 1:
                try stackOptions.runWorkersOnTap(
                    count: count, main: loop, loopOptions: loopOptions, stopper: stopper, make: make
                )
            case .xdp where count > 1:
                try stackOptions.runWorkersOnXdp(
                    count: count, main: loop, loopOptions: loopOptions, stopper: stopper, make: make
                )
            case .tap: try stackOptions.runOnTap(make(0), loop: loop)
            case .xdp: try stackOptions.runOnXdp(make(0), loop: loop)
            default: try stackOptions.runOnPcap(make(0), loop: loop)
            }
            if count > 1 {
                Console.log("oasis: dns queries \(settings.total.summary)")
            }
        case .memory, .xen:
            throw BackendNotBuilt(backend: backend, command: "dns")
        }
        _ = stopper
    }

    /// --listen as an address (nil when only a port is given) and a port.
    private func listenEndpoint() throws -> (IPv4Address?, UInt16) {
        guard let listen else { return (nil, 53) }
        let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
        let portText = parts.count == 1 ? parts[0] : parts[parts.count - 1]
        guard parts.count <= 2, let port = UInt16(portText) else {
            throw ValidationError("--listen must be ADDRESS:PORT or PORT")
        }
        guard parts.count == 2 else { return (nil, port) }
        guard let address = IPv4Address(parts[0]) else {
            throw ValidationError("--listen: '\(parts[0])' is not an IPv4 address")
        }
        return (address, port)
    }

    struct ZoneLoadFailure: Error {
        var message: String
    }

    /// Reads every zone and compiles the engine, record by record (``ZoneCompiler``):
    /// no zone's records are held as values.
    static func loadZones(_ specifications: [String], disk: String? = nil) throws(ZoneLoadFailure)
        -> AuthoritativeEngine
    {
        // The compiler's working memory is gone when `compile` returns: trim after.
        let engine = try compile(specifications, disk: disk)
        releaseFreedMemory()
        return engine
    }

    static func compile(_ specifications: [String], disk: String? = nil) throws(ZoneLoadFailure)
        -> AuthoritativeEngine
    {
        var compiler = ZoneCompiler()
        if let disk {
            for (originText, text) in try readZoneDisk(disk) {
                let source = "\(disk):\(originText)"
                guard let origin = try? DomainName(parsing: originText) else {
                    throw ZoneLoadFailure(message: "\(source): '\(originText)' is not a zone name")
                }
                do throws(ZoneFileError) {
                    // From a disk, $INCLUDE is not followed: the zone is what the disk holds.
                    let records = try ZoneFileParser.parse(
                        text: String(decoding: text, as: UTF8.self), fileName: source,
                        origin: origin,
                        allowIncludes: false)
                    try compiler.add(Zone(origin: origin, records: records, source: source))
                } catch {
                    throw ZoneLoadFailure(
                        message: "\(describe(error))\nzone \(originText) from \(disk) has 1 errors")
                }
            }
        }
        for specification in specifications {
            let (originText, path) = splitZoneSpecification(specification)
            let text = originText ?? guessOrigin(path: path)
            guard let origin = try? DomainName(parsing: text.hasSuffix(".") ? text : text + ".")
            else {
                throw ZoneLoadFailure(message: "\(path): '\(text)' is not a zone name")
            }
            do {
                try compiler.add(file: path, origin: origin)
            } catch {
                throw ZoneLoadFailure(
                    message: "\(describe(error))\nzone \(origin) file \(path) has 1 errors")
            }
        }
        return compiler.finish()
    }

    /// `file:line: problem`, as nsd-checkzone prints it (`file: problem` for the zone
    /// as a whole).
    static func describe(_ error: ZoneFileError) -> String {
        let text = error.description
        guard error.line == 0 else { return "error: " + text }
        let prefix = "\(error.file):0: "
        return "error: \(error.file): " + text.dropFirst(text.hasPrefix(prefix) ? prefix.count : 0)
    }

    static func splitZoneSpecification(_ text: String) -> (origin: String?, path: String) {
        guard let equals = text.firstIndex(of: "="), !text[..<equals].contains("/") else {
            return (nil, text)
        }
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }

    /// The file's leading `$ORIGIN`, else its first owner when absolute, else its name.
    static func guessOrigin(path: String) -> String {
        var name = String(path.split(separator: "/").last ?? Substring(path))
        for suffix in [".zone", ".db"] where name.hasSuffix(suffix) {
            name.removeLast(suffix.count)
        }
        guard let file = fopen(path, "r") else { return name }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        for _ in 0..<100 {
            guard getline(&line, &capacity, file) >= 0, let line else { break }
            let text = String(cString: line)
            let content =
                text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
                .first ?? ""
            let words = content.split(whereSeparator: {
                $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r"
            })
            guard let first = words.first else { continue }
            if first.uppercased() == "$ORIGIN" {
                return words.count > 1 ? String(words[1]) : name
            }
            if first.hasPrefix("$") { continue }
            if content.first == " " || content.first == "\t" { break }
            return first.hasSuffix(".") ? String(first) : name
        }
        return name
    }
}

/// The DNS service on an Oasis stack (UDP, and TCP beside it): one per worker, each
/// with its own stack, service (answer cache, counters) and TCP listener, sharing the
/// settings (the compiled engine is immutable).
struct DNSOnStack: StackApplication {
    /// What every worker is built from.
    final class Settings: @unchecked Sendable {
        // @unchecked: the engine and the options are only read; `total` is a Mutex.
        let engine: AuthoritativeEngine
        let maximumUDPPayload: Int
        let answerCache: Int
        let limits: DNSOverTCPLimits
        let port: UInt16
        let seconds: Double?
        let loaded: String
        let reloader: ZoneReloader
        let allowTransfer: TransferAllowList
        /// Sent NOTIFY by the first worker (only one runs when there are any).
        let secondaries: [DatagramEndpoint]
        let workers: Int
        /// SIGUSR1: every worker's statistics.
        let statistics = StatisticsOnSignal()
        /// The workers' queries by type and rcode, added up as each stops.
        let total = QueryTotals()

        init(
            engine: AuthoritativeEngine, maximumUDPPayload: Int, answerCache: Int,
            limits: DNSOverTCPLimits, port: UInt16, seconds: Double?, loaded: String,
            reloader: ZoneReloader, allowTransfer: TransferAllowList,
            secondaries: [DatagramEndpoint], workers: Int
        ) {
            self.engine = engine
            self.maximumUDPPayload = maximumUDPPayload
            self.answerCache = answerCache
            self.limits = limits
            self.port = port
            self.seconds = seconds
            self.loaded = loaded
            self.reloader = reloader
            self.allowTransfer = allowTransfer
            self.secondaries = secondaries
            self.workers = workers
        }
    }

    let settings: Settings
    /// This worker's index, 0 for the first (or only) one.
    let worker: Int

    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        let port = settings.port
        let service = DNSService(
            engine: settings.engine, maximumUDPPayload: settings.maximumUDPPayload,
            answerCache: settings.answerCache)
        let label = settings.workers > 1 ? "dns worker \(worker)" : "dns"
        try stack.start()
        try service.serveUDP(on: stack, port: port)
        let tcp = try DNSOverTCP(
            engine: service.engine, service: stack, port: port, limits: settings.limits)
        tcp.allowTransfer = settings.allowTransfer
        // NOTIFY from a port of its own, where the secondaries' answers come back (the
        // stack binds the port given: one from the dynamic range, RFC 6335 §6).
        let notifier =
            settings.secondaries.isEmpty || worker != 0
            ? nil
            : try DNSNotifier(
                service: stack, loop: loop, targets: settings.secondaries,
                port: UInt16.random(in: 49152...65535))
        settings.reloader.add(on: loop) { [service] engine in
            service.replace(engine: engine)
            tcp.engine = engine
            notifier?.engineChanged(to: engine)
        }
        settings.reloader.start()
        notifier?.engineChanged(to: service.engine)
        settings.statistics.add(on: loop) { [service] in
            Console.log("oasis: \(label) udp: \(service.udpSummary); \(service.counters.summary)")
            Console.log("oasis: \(label) tcp: \(tcp.summary); \(tcp.counters.summary)")
            if let notifier { Console.log("oasis: dns \(notifier.statistics.summary)") }
        }
        settings.statistics.start()
        if worker == 0 {
            Console.log(
                "oasis: dns on the Oasis stack at \(stack.configuration.network) port \(port) on "
                    + "\(stack.device.name) (\(stack.device.macAddress)), \(settings.loaded)"
                    + (settings.workers > 1 ? ", \(settings.workers) workers" : ""))
        }
        if let namespace {
            Console.log(
                "oasis: ask it with: ip netns exec \(namespace.name) dig @\(stack.address) "
                    + "-p \(port) NAME")
        }
        try runUntilStopped(loop, seconds: settings.seconds)
        Console.log("oasis: \(label) udp: \(service.udpSummary); \(service.counters.summary)")
        Console.log("oasis: \(label) tcp: \(tcp.summary); \(tcp.counters.summary)")
        if let notifier {
            Console.log("oasis: dns \(notifier.statistics.summary)")
            notifier.close()
        }
        settings.total.add(service.counters)
        settings.total.add(tcp.counters)
        tcp.close()
        let device = settings.workers > 1 ? "worker \(worker) device" : "device"
        Console.log("oasis: \(device) \(stack.device.counters)")
        Console.log(
            "oasis: \(settings.workers > 1 ? "worker \(worker) " : "")stack drops "
                + stack.drops.summary)
        stack.stop()
    }
}

/// Query counters added up across workers as each stops (off the per-query path).
final class QueryTotals: @unchecked Sendable {
    // @unchecked: `counters` is touched only under `lock`.
    private let lock = Mutex<Void>(())
    private var counters = QueryCounters()

    func add(_ more: QueryCounters) {
        lock.withLock { _ in counters.add(more) }
    }

    var summary: String { lock.withLock { _ in counters.summary } }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`, looked up at
/// run time: the Glibc module does not declare it), so that the resident size after
/// loading is the engine's, not the parser's garbage.
func releaseFreedMemory() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

/// Writes a line to standard error.
func printError(_ message: String) {
    var text = message + "\n"
    text.withUTF8 { bytes in _ = Glibc.write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

/// What every kernel-socket worker is built from: the shared, immutable engine and the
/// options; each worker makes its own sockets, answer cache and TCP service from it.
struct SocketWorkerSettings: @unchecked Sendable {
    // @unchecked: `LoopOptions` is a plain value the workers only read.
    let engine: AuthoritativeEngine
    let address: IPv4Address
    let port: UInt16
    let limits: DNSOverTCPLimits
    let maximumUDPPayload: Int
    let answerCache: Int
    let reusePort: Bool
    let loopOptions: LoopOptions
}

/// `oasis dns --workers N` on kernel sockets: worker 0 on the calling thread's loop,
/// the others each on a thread and loop of their own, with nothing shared on the
/// per-query path (the engine is immutable). Stopping any stops all.
final class SocketWorkers: @unchecked Sendable {
    // @unchecked: `loops` is behind its lock; each `Worker` is touched by its own
    // thread until that thread has been joined.
    final class Worker: @unchecked Sendable {
        let index: Int
        let loop: EventLoop
        var service: DNSService?
        var sockets: SocketDatagrams?
        var streams: SocketStreams?
        var tcp: DNSOverTCP<SocketStreams>?
        var failure: (any Error)?
        init(index: Int, loop: EventLoop) {
            self.index = index
            self.loop = loop
        }

        /// Opens this worker's sockets; on its loop's thread.
        func open(_ settings: SocketWorkerSettings) throws {
            let service = DNSService(
                engine: settings.engine, maximumUDPPayload: settings.maximumUDPPayload,
                answerCache: settings.answerCache)
            // A receive buffer of 1 MiB, like NSD's: a burst of queries waits in it
            // instead of being dropped by the kernel.
            let sockets = SocketDatagrams(
                address: settings.address, on: loop, receiveBufferBytes: 1 << 20)
            sockets.reusePort = settings.reusePort
            try service.serveUDP(on: sockets, port: settings.port)
            self.service = service
            self.sockets = sockets
            // TCP on the first worker only: its limits (connections, per source, the
            // eviction order) stay the whole server's, and TCP is the rare transport.
            guard index == 0 else { return }
            let streams = SocketStreams(address: settings.address, on: loop)
            self.streams = streams
            tcp = try DNSOverTCP(
                engine: settings.engine, service: streams, port: settings.port,
                limits: settings.limits)
        }

        /// Prints this worker's statistics (on its loop's thread, or once it stopped).
        func report(of count: Int) {
            let label = count > 1 ? "dns worker \(index)" : "dns"
            if let service, let sockets {
                Console.log(
                    "oasis: \(label) udp: \(service.udpSummary); "
                        + "datagrams too long for a buffer, dropped: \(sockets.oversizeDrops); "
                        + "read with no buffer free, dropped: \(sockets.noBufferDrops); "
                        + service.counters.summary)
            }
            if let tcp {
                Console.log("oasis: \(label) tcp: \(tcp.summary); \(tcp.counters.summary)")
            }
        }

        func close() {
            tcp?.close()
            streams?.close()
            sockets?.close()
        }
    }

    let count: Int
    let settings: SocketWorkerSettings
    let main: Worker
    /// NOTIFY to secondaries, on the main loop (reported with the statistics).
    var notifier: DNSNotifier<SocketDatagrams>?
    private let others = Mutex<[Worker]>([])
    private var threads: [pthread_t] = []

    init(count: Int, settings: SocketWorkerSettings, main: EventLoop) {
        self.count = count
        self.settings = settings
        self.main = Worker(index: 0, loop: main)
    }

    /// Opens worker 0's sockets here, then starts the others, each opening its own on
    /// its thread; returns once all have (or throws the first failure).
    func start() throws {
        if settings.reusePort {
            // SO_REUSEPORT would let these sockets join another process's on the port:
            // first make sure nobody holds it (a socket without the option cannot bind
            // a port in use).
            try SocketDatagrams.ensurePortFree(address: settings.address, port: settings.port)
        }
        try main.open(settings)
        for index in 1..<count {
            let ready = StartState()
            let started = startThread { [self] in
                let worker: Worker
                do {
                    let loop = try settings.loopOptions.makeLoop()
                    worker = Worker(index: index, loop: loop)
                    try worker.open(settings)
                } catch {
                    ready.state.withLock { $0 = (true, error) }
                    return
                }
                others.withLock { $0.append(worker) }
                ready.state.withLock { $0.done = true }
                do {
                    try worker.loop.run()
                } catch {
                    worker.failure = error
                }
                worker.close()
            }
            guard let thread = started else {
                throw ValidationError("--workers: could not start a thread")
            }
            threads.append(thread)
            while true {
                let state = ready.state.withLock { $0 }
                if let error = state.error {
                    stopAll()
                    throw error
                }
                if state.done { break }
                usleep(1000)
            }
        }
    }

    /// Every worker, the first one first (after ``start()``).
    var all: [Worker] { [main] + others.withLock { $0 }.sorted { $0.index < $1.index } }

    /// Stops every worker's loop (from any thread).
    func stopAll() {
        main.loop.stop()
        for worker in others.withLock({ $0 }) { worker.loop.stop() }
    }

    /// Runs worker 0 on this thread until stopped, then waits for the others.
    func runMain() throws {
        defer {
            stopAll()
            for thread in threads { pthread_join(thread, nil) }
            threads = []
        }
        try main.loop.run()
    }

    /// Each worker's statistics and the whole server's queries by type and rcode,
    /// after all have stopped.
    func report() {
        var total = QueryCounters()
        for worker in all {
            worker.report(of: count)
            if let service = worker.service { total.add(service.counters) }
            if let tcp = worker.tcp { total.add(tcp.counters) }
            if let failure = worker.failure {
                Console.log("oasis: dns worker \(worker.index) failed: \(failure)")
            }
        }
        Console.log("oasis: dns queries \(total.summary)")
        if let notifier {
            Console.log("oasis: dns \(notifier.statistics.summary)")
            notifier.close()
        }
        main.close()
    }
}

/// A worker thread's start: done, or the error that stopped it.
final class StartState: Sendable {
    let state = Mutex<(done: Bool, error: (any Error)?)>((false, nil))
}

/// A closure for a new POSIX thread.
final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Zones reloaded on SIGHUP, as NSD and Knot reload them: read and compiled again on a
/// thread of their own (the loops keep answering meanwhile), then each serving loop
/// answers from the new engine from its next turn, its answer cache emptied. A zone
/// that fails to load leaves the old zones serving, and the log says why.
final class ZoneReloader: Sendable {
    struct Target: Sendable {
        let apply: LoopBound<(AuthoritativeEngine) -> Void>
    }
    private let targets = Mutex<[Target]>([])
    private let started = Atomic<Bool>(false)
    let specifications: [String]
    let disk: String?
    let identity: ServerIdentity

    init(specifications: [String], disk: String? = nil, identity: ServerIdentity) {
        self.specifications = specifications
        self.disk = disk
        self.identity = identity
    }

    /// Blocks SIGHUP and SIGUSR1 in the calling thread and every thread it starts
    /// afterwards, so that only the threads that `sigwait` for them take them (their
    /// default action ends the process).
    static func blockSignal() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGHUP)
        sigaddset(&signals, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
    }

    /// Has `apply` run on `loop` with each reloaded engine.
    func add(on loop: EventLoop, _ apply: @escaping (AuthoritativeEngine) -> Void) {
        targets.withLock { $0.append(Target(apply: LoopBound(apply, on: loop))) }
    }

    /// Starts the thread that waits for SIGHUP (once).
    func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        startSignalThread(SIGHUP) { [self] in reload() }
    }

    /// Reads and compiles the zones again; on success hands the new engine to every
    /// loop, else logs why and leaves them as they are.
    func reload() {
        Console.log("oasis: SIGHUP: reloading \(specifications.count) zone file(s)")
        let engine: AuthoritativeEngine
        do {
            engine = try DNSCommand.loadZones(specifications, disk: disk).answering(as: identity)
        } catch {
            Console.log("oasis: reload failed, the old zones are still served: \(error.message)")
            return
        }
        let names = engine.statistics
        // Each loop takes the new engine between two of its turns; the log line comes
        // once every loop has (within a second: a loop that does not turn is stuck).
        let applied = Atomic<Int>(0)
        let all = targets.withLock { $0 }
        for target in all {
            let apply = target.apply
            apply.loop.execute {
                apply.value(engine)
                applied.add(1, ordering: .releasing)
            }
        }
        let deadline = ContinuousClock.now + .seconds(1)
        while applied.load(ordering: .acquiring) < all.count && ContinuousClock.now < deadline {
            usleep(200)
        }
        Console.log(
            "oasis: reloaded: \(names.names) names, \(names.rrsets) RRsets, on "
                + "\(applied.load(ordering: .acquiring)) of \(all.count) loops")
    }
}

/// `oasis dns check-zone ZONE FILE`, as `nsd-checkzone ZONE FILE`: the zone read and
/// compiled as the server would, "zone ZONE is ok" and status 0, or the error as
/// `error: file:line: problem` and status 1.
struct DNSCheckZoneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-zone",
        abstract: "Check a zone file as the server would load it (as nsd-checkzone does).",
        discussion: """
            Prints "zone ZONE is ok" and exits 0, or prints the error as file:line: problem \
            and exits 1. Unlike nsd-checkzone, it stops at the first error.
            """)

    @Argument(help: "The zone's name (its origin).")
    var zoneName: String

    @Argument(help: "The zone file.")
    var file: String

    func run() throws {
        let name = zoneName.hasSuffix(".") ? String(zoneName.dropLast()) : zoneName
        do {
            _ = try DNSCommand.compile(["\(name)=\(file)"])
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
        print("zone \(name) is ok")
    }
}

/// Starts a detached thread that runs `action` each time `signal` arrives (blocked in
/// every other thread: see ``ZoneReloader/blockSignal()``).
func startSignalThread(_ signal: Int32, _ action: @escaping @Sendable () -> Void) {
    startThread(detached: true) {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, signal)
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { return }
            action()
        }
    }
}

/// Runs `body` on a new POSIX thread; returns it (to join) unless `detached`, or nil
/// when no thread could be made.
@discardableResult
func startThread(detached: Bool = false, _ body: @escaping @Sendable () -> Void) -> pthread_t? {
    let context = Unmanaged.passRetained(ThreadBody(body))
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context.toOpaque())
    guard status == 0 else {
        context.release()
        return nil
    }
    if detached { pthread_detach(thread) }
    return thread
}

/// SIGUSR1: each serving loop prints its statistics, as they stand, without stopping
/// (NSD and Knot print theirs on request too).
final class StatisticsOnSignal: Sendable {
    private let actions = Mutex<[LoopBound<() -> Void>]>([])
    private let started = Atomic<Bool>(false)

    /// Has `report` run on `loop` at each SIGUSR1.
    func add(on loop: EventLoop, _ report: @escaping () -> Void) {
        actions.withLock { $0.append(LoopBound(report, on: loop)) }
    }

    /// Starts the thread that waits for SIGUSR1 (once, however often it is called).
    func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        startSignalThread(SIGUSR1) { [self] in
            for action in actions.withLock({ $0 }) {
                action.loop.execute { action.value() }
            }
        }
    }
}
