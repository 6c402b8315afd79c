// `oasis stack --backend memory`: two Oasis stacks on the two ends of an in-memory
// link; one serves UDP echo, the other sends it datagrams of many sizes (some large
// enough to be fragmented) and checks every one comes back intact.

import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisWire

enum MemoryDemo {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    static func run(configuration: IPv4StackConfiguration, loop: EventLoop, echoPort: UInt16)
        throws
    {
        let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
        let server = IPv4Stack(device: serverEnd, configuration: configuration, on: loop)
        let clientNetwork = IPv4Network(
            address: configuration.network.peerAddress,
            prefixLength: configuration.network.prefixLength)!
        let client = IPv4Stack(
            device: clientEnd, configuration: IPv4StackConfiguration(network: clientNetwork),
            on: loop)
        try server.start()
        try client.start()
        try UDPEcho.start(on: server, port: echoPort)

        let sizes = [1, 7, 64, 512, 1472, 1473, 4000, 8000, 20_000]
        var pending: [Int: [UInt8]] = [:]
        var returned = 0
        var mismatches = 0
        let clientPort: UInt16 = 40_000
        let (done, finished) = loop.makePromise(of: Void.self)
        try client.listen(port: clientPort) { datagram in
            let bytes = datagram.payload.copyBytes()
            if let expected = pending.removeValue(forKey: bytes.count), expected == bytes {
                returned += 1
            } else {
                mismatches += 1
            }
            if pending.isEmpty { finished.resolve() }
        }
        loop.enqueue {
            for size in sizes {
                let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) }
                pending[size] = payload
                try? client.send(
                    payload, to: DatagramEndpoint(address: server.address, port: echoPort),
                    from: clientPort)
            }
        }
        loop.schedule(after: .seconds(5)) { finished.fail(Failed(description: "timed out")) }
        do {
            try loop.run(until: done)
        } catch {
            throw Failed(
                description:
                    "memory echo: \(returned) of \(sizes.count) came back (\(error)); drops \(client.drops.summary) / \(server.drops.summary)"
            )
        }
        Console.log(
            "oasis: memory link: \(returned) of \(sizes.count) UDP echoes of 1 to 20000 bytes "
                + "came back intact, \(mismatches) mismatched")
        Console.log("oasis: server \(serverEnd.counters)")
        guard mismatches == 0, returned == sizes.count else {
            throw Failed(description: "memory echo: \(mismatches) mismatched")
        }
        server.stop()
        client.stop()
    }
}
