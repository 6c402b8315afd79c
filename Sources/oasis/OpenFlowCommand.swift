// `oasis openflow print`: our `ovs-ofctl ofp-print`. `oasis openflow controller`: the
// NOX-style controller with its applications.

import ArgumentParser
import Glibc
import OasisBits
import OasisController
import OasisDevices
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisWire

struct OpenFlowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openflow", abstract: "OpenFlow 1.0 tools.",
        subcommands: [
            OpenFlowPrintCommand.self, OpenFlowSwitchCommand.self, OpenFlowControllerCommand.self,
        ])
}

struct OpenFlowPrintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print",
        abstract: "Decode OpenFlow 1.0 messages given as hex, or every one in a pcap file.",
        discussion: """
            oasis openflow print 010000080000002a
            oasis openflow print --pcap capture.pcap [--port 6633]
            """)

    @Argument(help: "Messages as hex (spaces and colons allowed), one per argument.")
    var hex: [String] = []

    @Option(help: "Print every OpenFlow message in this pcap file (TCP reassembled).")
    var pcap: String?

    @Option(help: "The TCP port the OpenFlow connection uses in the capture.")
    var port: UInt16 = 6633

    func run() throws {
        var failures = 0
        for text in hex {
            guard let bytes = Self.bytes(fromHex: text) else {
                print("not hex: \(text)")
                failures += 1
                continue
            }
            do {
                print(OpenFlowPrinter.describe(try Message.decode(Bits(bytes))))
            } catch {
                print("undecodable (\(error.errorKind)): \(error)")
                failures += 1
            }
        }
        if let pcap {
            guard let file = Self.read(pcap) else { throw ValidationError("cannot read \(pcap)") }
            guard let contents = OpenFlowPcap.read(Bits(file), port: port) else {
                throw ValidationError("\(pcap) is not a pcap file")
            }
            for extracted in contents.messages {
                let direction = extracted.toPort ? "to :\(port)" : "from :\(port)"
                switch extracted.message {
                case .success(let message):
                    print("\(direction) \(OpenFlowPrinter.describe(message))")
                case .failure(let error):
                    print("\(direction) undecodable (\(error.errorKind)): \(error)")
                    failures += 1
                }
            }
            if let corruption = contents.corruption {
                print("\(pcap): corrupt pcap file: \(corruption)")
                failures += 1
            }
        }
        if hex.isEmpty && pcap == nil {
            throw ValidationError("give messages as hex, or --pcap FILE")
        }
        if failures > 0 { throw ExitCode(1) }
    }

    static func bytes(fromHex text: String) -> [UInt8]? {
        let digits = text.filter { !" :\n\t".contains($0) }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }
}

/// The applications `oasis openflow controller` can run.
enum ControllerApp: String, ExpressibleByArgument, CaseIterable {
    case hub, learning, firewall
}

struct OpenFlowControllerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run an OpenFlow 1.0 controller (hub, learning switch, firewall).",
        discussion: """
            Switches connect to --listen (repeatable; 0.0.0.0:6633 by default). Joins, \
            leaves and errors are logged; statistics are printed on exit (SIGINT, SIGTERM \
            or --seconds). With --backend socket (the default) the controller runs on \
            kernel sockets; with tap, pcap or xdp on the Oasis stack's TCP at --ip (give \
            only ports to --listen then). The firewall reads --rules (see the \
            OasisController README for the syntax) and forwards what it allows as the \
            learning switch does.
            """)

    @Option(
        help: ArgumentHelp(
            "Address and port to listen on (repeatable).", valueName: "address:port"))
    var listen: [String] = []

    @Option(help: "The application: hub, learning, firewall.")
    var app: ControllerApp = .learning

    @Option(help: "The firewall's rules file.")
    var rules: String?

    @Option(help: "Idle timeout of the flows the learning switch installs, in seconds.")
    var idleTimeout: UInt16 = 10

    @Option(help: "Seconds without a message before an echo request.")
    var echoInterval = 5.0

    @Option(help: "Seconds without a message (or with output blocked) before a switch is dropped.")
    var deadTimeout = 15.0

    @Option(help: "Where packets go: socket, tap, pcap, xdp.")
    var backend: Backend = .socket

    @OptionGroup var stackOptions: StackOptions
    @OptionGroup var loopOptions: LoopOptions

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    @Flag(help: "Log every PACKET_IN (slow; for debugging).")
    var verbose = false

    func validate() throws {
        if app == .firewall && rules == nil {
            throw ValidationError("--app firewall needs --rules FILE")
        }
        if app != .firewall && rules != nil {
            throw ValidationError("--rules is for --app firewall")
        }
        for text in listen { _ = try Self.endpoint(text) }
    }

    func run() throws {
        var endpoints = try listen.map(Self.endpoint)
        if endpoints.isEmpty { endpoints = [(.any, 6633)] }
        let address = endpoints[0].0
        guard endpoints.allSatisfy({ $0.0 == address }) else {
            throw ValidationError("--listen: every endpoint must have the same address")
        }
        var limits = ChannelLimits()
        limits.echoInterval = try milliseconds(echoInterval, option: "--echo-interval")
        limits.deadTimeout = try milliseconds(deadTimeout, option: "--dead-timeout")
        let application = try makeApplication()
        let loop = try loopOptions.makeLoop()
        let stopper = SignalStopper(loop: loop)
        let setup = ControllerSetup(
            ports: endpoints.map(\.1), limits: limits, application: application,
            verbose: verbose, seconds: seconds, appName: app.rawValue)
        switch backend {
        case .socket:
            let streams = SocketStreams(address: address, on: loop)
            try setup.run(on: streams, loop: loop, where: "kernel sockets at \(address)")
            streams.close()
        case .tap, .pcap, .xdp:
            if address != .any, address != (try stackOptions.network()).address {
                throw ValidationError(
                    "--listen: the Oasis stack listens at --ip; give 0.0.0.0:PORT or --ip")
            }
            switch backend {
            case .tap: try stackOptions.runOnTap(setup, loop: loop)
            case .xdp: try stackOptions.runOnXdp(setup, loop: loop)
            default: try stackOptions.runOnPcap(setup, loop: loop)
            }
        case .memory, .xen:
            throw BackendNotBuilt(backend: backend, command: "openflow controller")
        }
        _ = stopper
    }

    private func makeApplication() throws -> any OpenFlowApplication {
        switch app {
        case .hub: return Hub()
        case .learning: return LearningSwitch(idleTimeout: idleTimeout)
        case .firewall:
            guard let rules, let bytes = OpenFlowPrintCommand.read(rules) else {
                throw ValidationError("cannot read \(rules ?? "")")
            }
            do {
                return try Firewall(
                    rulesText: String(decoding: bytes, as: UTF8.self),
                    forwarding: LearningSwitch(idleTimeout: idleTimeout), idleTimeout: idleTimeout)
            } catch {
                throw ValidationError("\(rules): \(error)")
            }
        }
    }

    static func endpoint(_ text: String) throws -> (IPv4Address, UInt16) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard let portText = parts.last, parts.count <= 2, let port = UInt16(portText) else {
            throw ValidationError("--listen must be ADDRESS:PORT or PORT")
        }
        guard parts.count == 2 else { return (.any, port) }
        guard let address = IPv4Address(parts[0]) else {
            throw ValidationError("--listen: '\(parts[0])' is not an IPv4 address")
        }
        return (address, port)
    }
}

/// What the controller command runs, on sockets or on a stack.
struct ControllerSetup: StackApplication {
    var ports: [UInt16]
    var limits: ChannelLimits
    var application: any OpenFlowApplication
    var verbose: Bool
    var seconds: Double?
    var appName: String

    func run<Service: StreamService>(on service: Service, loop: EventLoop, where place: String)
        throws
    {
        let controller = try OpenFlowController(
            service: service, ports: ports, limits: limits,
            logger: { Console.log("oasis: openflow: \($0)") })
        controller.add(application)
        controller.subscribe { event in
            switch event {
            case .error(let datapath, let xid, let error):
                Console.log("oasis: openflow: \(datapath) error \(error.kind) for xid \(xid)")
            case .portStatus(let datapath, let status):
                Console.log(
                    "oasis: openflow: \(datapath) port \(status.port.portNumber) "
                        + "(\(status.port.name)) \(Self.describe(status))")
            case .packetIn(let datapath, let packetIn) where verbose:
                Console.log(
                    "oasis: openflow: \(datapath) packet-in port \(packetIn.packetIn.inPort) "
                        + OpenFlowPrinter.describe(match: packetIn.flow))
            default: break
            }
        }
        let listening = controller.endpoints.map { "\($0.port)" }.joined(separator: ", ")
        Console.log("oasis: openflow controller (\(appName)) on \(place), port \(listening)")
        try runUntilStopped(loop, seconds: seconds)
        Console.log("oasis: openflow: \(controller.statistics)")
        Console.log("oasis: openflow: \(Self.summary(of: application))")
        controller.close()
    }

    func run<Device: NetworkDevice>(
        on stack: IPv4Stack<Device>, loop: EventLoop, namespace: OwnNamespace?
    ) throws {
        try stack.start()
        try run(
            on: stack, loop: loop,
            where: "the Oasis stack at \(stack.configuration.network) on \(stack.device.name)")
        Console.log("oasis: device \(stack.device.counters)")
        Console.log("oasis: stack drops \(stack.drops.summary)")
        stack.stop()
    }

    static func describe(_ status: PortStatus) -> String {
        let reason =
            switch status.reason {
            case .add: "added"
            case .delete: "deleted"
            default: "modified"
            }
        let down = status.port.config.contains(.portDown) ? ", administratively down" : ""
        let link = status.port.state.contains(.linkDown) ? ", link down" : ", link up"
        return reason + down + link
    }

    static func summary(of application: any OpenFlowApplication) -> String {
        switch application {
        case let hub as Hub: "hub: \(hub.flooded) flooded, \(hub.failures) failures"
        case let learning as LearningSwitch:
            "learning: \(learning.flowsInstalled) flows installed, \(learning.flooded) flooded, "
                + "\(learning.dropped) dropped, \(learning.flowsRemoved) flows removed, "
                + "\(learning.notLearnt) sources not learnt (table full)"
        case let firewall as Firewall:
            "firewall: \(firewall.allowed) allowed, \(firewall.denied) denied; "
                + summary(of: firewall.forwarding)
        default: "\(application)"
        }
    }
}
