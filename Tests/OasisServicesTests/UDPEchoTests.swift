// Issue 19, item 1: the UDP echo is no reflector. Which datagrams it answers, on any
// Datagram surface (the stack is tested with scapy in HostileNetworkTests).

import OasisBits
import OasisNet
import OasisServices
import OasisWire
import Testing

@Suite struct UDPEchoTests {
    func datagram(
        from source: IPv4Address = IPv4Address(192, 0, 2, 1), port: UInt16 = 40000,
        to destination: IPv4Address = IPv4Address(192, 0, 2, 2), broadcast: Bool = false
    ) -> Datagram {
        // 64 bytes hold 4: the initialiser cannot fail.
        let payload = try! Packet(buffer: Buffer(byteCount: 64), offset: 0, count: 4)
        return Datagram(
            source: DatagramEndpoint(address: source, port: port),
            destination: DatagramEndpoint(address: destination, port: 7), payload: payload,
            isBroadcast: broadcast)
    }

    @Test func answersOrdinaryPorts() {
        for port: UInt16 in [1024, 2048, 2050, 40000, 65535] {
            let answered = UDPEcho.answers(datagram(port: port))
            #expect(answered, "port \(port)")
        }
    }

    /// Below 1024 (echo, chargen, DNS, NTP, SNMP… would loop with us) and NFS's 2049,
    /// as the BSDs' inetd refuse them.
    @Test func refusesWellKnownAndReservedPorts() {
        for port: UInt16 in [0, 1, 7, 13, 19, 37, 53, 123, 161, 520, 1023, 2049] {
            let answered = UDPEcho.answers(datagram(port: port))
            #expect(!answered, "port \(port)")
        }
    }

    @Test func refusesBroadcastMulticastAndImpossibleSources() {
        let refused = [
            UDPEcho.answers(datagram(broadcast: true)),
            UDPEcho.answers(datagram(to: .broadcast)),
            UDPEcho.answers(datagram(to: IPv4Address(224, 0, 0, 1))),
            UDPEcho.answers(datagram(from: IPv4Address(0, 1, 2, 3))),
            UDPEcho.answers(datagram(from: IPv4Address(239, 1, 1, 1))),
            UDPEcho.answers(datagram(from: IPv4Address(240, 0, 0, 1))),
            UDPEcho.answers(datagram(from: .broadcast)),
        ]
        #expect(refused == [false, false, false, false, false, false, false])
        let loopback = IPv4Address(127, 0, 0, 1)
        let answered = UDPEcho.answers(datagram(from: loopback, to: loopback))
        #expect(answered)
    }
}
