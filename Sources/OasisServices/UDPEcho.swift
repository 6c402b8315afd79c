// The UDP echo service (RFC 862), written once against the Datagram surface: it runs
// on the Oasis stack and on kernel sockets unchanged.

import OasisBits
import OasisLoop
import OasisNet
import OasisWire

public enum UDPEcho {
    /// Echoes every datagram arriving on `port` back to its sender. On the Oasis
    /// stack the reply is built in the request's own buffer. Inlinable, so that the
    /// send path is specialised with the service it runs on (no witness table).
    ///
    /// Not a reflector (``answers(_:)``): nothing is sent back to a well-known or
    /// reserved port, to an address that cannot be a unicast sender, or for a
    /// datagram sent to a broadcast or multicast address.
    @inlinable
    public static func start(on udp: some DatagramService, port: UInt16) throws {
        // The service owns the listener, which holds it unretained: no reference count
        // per batch (DESIGN.md, "Callbacks on the data path").
        let service = Unretained(udp)
        try udp.listen(port: port) { (batch: inout DatagramBatch) in
            service.call { udp in
                for index in batch.indices {
                    guard let datagram = batch.take(at: index), UDPEcho.answers(datagram)
                    else { continue }
                    let source = datagram.source
                    try? udp.send(datagram.payload, to: source, from: port)
                }
            }
        }
    }

    /// Whether a reflecting service (echo, and any that answers whatever it gets)
    /// answers `datagram`, as the BSDs' inetd decide for their built-in services:
    /// - not from a source port below 1024 nor from NFS's 2049: the well-known and
    ///   reserved ports are where other services answer anything (echo, daytime,
    ///   chargen, time, DNS, NTP, SNMP…), so a forged datagram from one to us would
    ///   start a loop that never ends; port 0 is nobody's;
    /// - not from an address that cannot send: 0/8, multicast, 240/4 and the limited
    ///   broadcast (the Oasis stack drops those, and loopback and subnet-broadcast
    ///   sources, before UDP; kernel sockets do not);
    /// - not for a datagram sent to a broadcast or multicast address: one datagram
    ///   would draw an answer from every host on the link (the Oasis stack knows the
    ///   destination; kernel sockets say only the address they listen on).
    @inlinable
    public static func answers(_ datagram: borrowing Datagram) -> Bool {
        let source = datagram.source
        let destination = datagram.destination.address
        return !isReservedPort(source.port) && canSend(source.address)
            && !datagram.isBroadcast && !destination.isMulticast && !destination.isBroadcast
    }

    /// Ports whose traffic a reflecting service never answers: below 1024 (well-known
    /// and reserved, RFC 6335 §6's System Ports, 0 included) and 2049 (NFS).
    @inlinable
    public static func isReservedPort(_ port: UInt16) -> Bool {
        port < 1024 || port == 2049
    }

    /// Whether `address` can be the source of a datagram: not in 0/8, 224/4 (multicast)
    /// or 240/4 (reserved, and the limited broadcast).
    @inlinable
    public static func canSend(_ address: IPv4Address) -> Bool {
        let first = address.rawValue >> 24
        return first != 0 && first < 224
    }
}
