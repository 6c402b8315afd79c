// `oasis stack --iperf3` (an iperf3 server on port 5201 beside the other services) and
// `oasis stack --iperf3-client ADDRESS` (one iperf3 test against a server, then exit),
// on the Oasis stack or, with --backend socket, on kernel sockets.

import ArgumentParser
import OasisLoop
import OasisNet
import OasisServices
import OasisWire

/// The iperf3 options of `oasis stack`.
struct IPerf3Options: ParsableArguments {
    @Flag(name: .customLong("iperf3"), help: "Serve iperf3 (TCP) on port 5201.")
    var serve = false

    @Option(
        name: .customLong("iperf3-client"),
        help: ArgumentHelp(
            "Run one iperf3 test against the server at this address, then exit.",
            valueName: "address"))
    var client: String?

    @Option(name: .customLong("iperf3-port"), help: "The iperf3 server's port.")
    var port: UInt16 = IPerf3.defaultPort

    @Option(name: .customLong("iperf3-time"), help: "iperf3 client: seconds to run.")
    var time = 10

    @Flag(name: .customLong("iperf3-reverse"), help: "iperf3 client: the server sends.")
    var reverse = false

    @Option(name: .customLong("iperf3-parallel"), help: "iperf3 client: parallel streams.")
    var parallel = 1

    @Option(name: .customLong("iperf3-length"), help: "iperf3 client: bytes per write.")
    var length = IPerf3.defaultBlockLength

    func validate() throws {
        if let client, IPv4Address(client) == nil {
            throw ValidationError("--iperf3-client must be an IPv4 address")
        }
        do {
            try parameters.validate()
        } catch {
            throw ValidationError("iperf3 client: \(error)")
        }
    }

    var parameters: IPerf3Parameters {
        var parameters = IPerf3Parameters()
        parameters.duration = time
        parameters.reverse = reverse
        parameters.parallel = parallel
        parameters.blockLength = length
        return parameters
    }

    /// Starts the server on `service` when --iperf3 was given; its tests are logged.
    func startServer<Service: StreamService>(on service: Service) throws -> IPerf3Server<Service>? {
        guard serve else { return nil }
        let server = try IPerf3Server(service: service, port: port)
        server.onTestEnd = { summary in Console.log("oasis: \(summary)") }
        return server
    }

    /// Runs the loop until the test asked for with --iperf3-client is over and prints
    /// its summary; throws (after saying why) when it failed.
    func runClient<Service: StreamService>(on service: Service, loop: EventLoop) throws {
        guard let client, let address = IPv4Address(client) else { return }
        let server = StreamEndpoint(address: address, port: port)
        Console.log("oasis: iperf3 test against \(server) for \(time) s")
        do {
            let report = try loop.run(
                until: IPerf3Client.run(on: service, to: server, parameters: parameters))
            for line in report.lines { Console.log(line) }
        } catch {
            Console.log("oasis: iperf3 test against \(server) failed: \(error)")
            throw ExitCode.failure
        }
    }
}
