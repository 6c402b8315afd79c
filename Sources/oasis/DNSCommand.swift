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
            Statistics are printed on exit (SIGINT, SIGTERM or --seconds).
            """)

    @Option(
        help: ArgumentHelp(
            "A zone to serve (repeatable).", valueName: "[origin=]file"))
    var zone: [String] = []

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

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    func validate() throws {
        if zone.isEmpty { throw ValidationError("give at least one --zone FILE") }
        if maximumUDPPayload < 512 || maximumUDPPayload > 4096 {
            throw ValidationError("--maximum-udp-payload must be within 512...4096")
        }
        if tcpConnections < 1 { throw ValidationError("--tcp-connections must be positive") }
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
            for (name, given) in stackOnly where given {
                throw ValidationError("\(name) is for the Oasis stack (--backend tap, pcap or xdp)")
            }
        }
    }

    func run() throws {
        let (address, port) = try listenEndpoint()
        let engine: AuthoritativeEngine
        do {
            engine = try DNSCommand.loadZones(zone).answering(
                as: ServerIdentity(version: serverVersion, identity: serverIdentity))
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
        let names = engine.statistics
        let loop = try loopOptions.makeLoop()
        let stopper = SignalStopper(loop: loop)
        let service = DNSService(
            engine: engine, maximumUDPPayload: maximumUDPPayload, answerCache: answerCache)
        let loaded =
            "\(zone.count) zone\(zone.count == 1 ? "" : "s"), \(names.names) names, "
            + "\(names.rrsets) RRsets"

        var limits = DNSOverTCPLimits()
        limits.connections = tcpConnections
        limits.idleTimeout = try milliseconds(tcpIdleTimeout, option: "--tcp-idle-timeout")
        limits.messageTimeout = try milliseconds(
            tcpMessageTimeout, option: "--tcp-message-timeout")
        limits.connectionsPerSource = tcpConnectionsPerSource
        switch backend {
        case .socket:
            // A receive buffer of 1 MiB, like NSD's: a burst of queries waits in it
            // instead of being dropped by the kernel.
            let sockets = SocketDatagrams(
                address: address ?? IPv4Address(127, 0, 0, 1), on: loop,
                receiveBufferBytes: 1 << 20)
            try service.serveUDP(on: sockets, port: port)
            let streams = SocketStreams(address: sockets.address, on: loop)
            let tcp = try DNSOverTCP(engine: engine, service: streams, port: port, limits: limits)
            Console.log(
                "oasis: dns on kernel sockets at \(sockets.address):\(port) (UDP and TCP), \(loaded)"
            )
            try runUntilStopped(loop, seconds: seconds)
            Console.log(
                "oasis: dns udp: \(service.udpSummary); "
                    + "datagrams too long for a buffer, dropped: \(sockets.oversizeDrops); "
                    + "read with no buffer free, dropped: \(sockets.noBufferDrops)")
            Console.log("oasis: dns tcp: \(tcp.summary)")
            tcp.close()
            streams.close()
            sockets.close()
        case .tap, .pcap, .xdp:
            if let address, address != .any, address != (try stackOptions.network()).address {
                throw ValidationError(
                    "--listen: the Oasis stack answers at --ip; give only a port (or 0.0.0.0:PORT)")
            }
            let application = DNSOnStack(
                service: service, limits: limits, port: port, seconds: seconds, loaded: loaded)
            switch backend {
            case .tap: try stackOptions.runOnTap(application, loop: loop)
            case .xdp: try stackOptions.runOnXdp(application, loop: loop)
            default: try stackOptions.runOnPcap(application, loop: loop)
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
    static func loadZones(_ specifications: [String]) throws(ZoneLoadFailure) -> AuthoritativeEngine
    {
        // The compiler's working memory is gone when `compile` returns: trim after.
        let engine = try compile(specifications)
        releaseFreedMemory()
        return engine
    }

    static func compile(_ specifications: [String]) throws(ZoneLoadFailure) -> AuthoritativeEngine {
        var compiler = ZoneCompiler()
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

/// The DNS service on an Oasis stack (UDP).
struct DNSOnStack: StackApplication {
    var service: DNSService
    var limits: DNSOverTCPLimits
    var port: UInt16
    var seconds: Double?
    var loaded: String

    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        try stack.start()
        try service.serveUDP(on: stack, port: port)
        let tcp = try DNSOverTCP(engine: service.engine, service: stack, port: port, limits: limits)
        Console.log(
            "oasis: dns on the Oasis stack at \(stack.configuration.network) port \(port) on "
                + "\(stack.device.name) (\(stack.device.macAddress)), \(loaded)")
        if let namespace {
            Console.log(
                "oasis: ask it with: ip netns exec \(namespace.name) dig @\(stack.address) "
                    + "-p \(port) NAME")
        }
        try runUntilStopped(loop, seconds: seconds)
        Console.log("oasis: dns udp: \(service.udpSummary)")
        Console.log("oasis: dns tcp: \(tcp.summary)")
        tcp.close()
        Console.log("oasis: device \(stack.device.counters)")
        Console.log("oasis: stack drops \(stack.drops.summary)")
        stack.stop()
    }
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
