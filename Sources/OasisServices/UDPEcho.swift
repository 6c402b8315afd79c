// The UDP echo service (RFC 862), written once against the Datagram surface: it runs
// on the Oasis stack and on kernel sockets unchanged.

import OasisBits
import OasisLoop
import OasisNet

public enum UDPEcho {
    /// Echoes every datagram arriving on `port` back to its sender. On the Oasis
    /// stack the reply is built in the request's own buffer. Inlinable, so that the
    /// send path is specialised with the service it runs on (no witness table).
    @inlinable
    public static func start(on udp: some DatagramService, port: UInt16) throws {
        // The service owns the listener, which holds it unretained: no reference count
        // per batch (DESIGN.md, "Callbacks on the data path").
        let service = Unretained(udp)
        try udp.listen(port: port) { (batch: inout DatagramBatch) in
            service.call { udp in
                for index in batch.indices {
                    guard let datagram = batch.take(at: index) else { continue }
                    let source = datagram.source
                    try? udp.send(datagram.payload, to: source, from: port)
                }
            }
        }
    }
}
