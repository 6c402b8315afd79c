// The UDP echo service (RFC 862), written once against the Datagram surface: it runs
// on the Oasis stack and on kernel sockets unchanged.

import OasisBits
import OasisLoop
import OasisNet

public enum UDPEcho {
    /// Echoes every datagram arriving on `port` back to its sender. On the Oasis
    /// stack the reply is built in the request's own buffer. Inlinable, so that the
    /// send path is specialised with the service it runs on (no witness table).
    ///
    /// Not a reflector: a datagram sent to a broadcast address, or from port 0 or
    /// from a port whose service answers whatever it gets (echo, daytime, quote of
    /// the day, chargen, time: a loop between two of them would never end), is not
    /// answered, as inetd refuses them.
    @inlinable
    public static func start(on udp: some DatagramService, port: UInt16) throws {
        // The service owns the listener, which holds it unretained: no reference count
        // per batch (DESIGN.md, "Callbacks on the data path").
        let service = Unretained(udp)
        try udp.listen(port: port) { (batch: inout DatagramBatch) in
            service.call { udp in
                for index in batch.indices {
                    guard let datagram = batch.take(at: index),
                        !datagram.isBroadcast, !UDPEcho.mayLoop(datagram.source.port)
                    else { continue }
                    let source = datagram.source
                    try? udp.send(datagram.payload, to: source, from: port)
                }
            }
        }
    }

    /// Port 0, and the ports of the services that answer anything (RFC 862, 867,
    /// 865, 864, 868).
    @inlinable
    static func mayLoop(_ port: UInt16) -> Bool {
        port == 0 || port == 7 || port == 13 || port == 17 || port == 19 || port == 37
    }
}
