// The UDP echo service (RFC 862), written once against the Datagram surface: it runs
// on the Oasis stack and on kernel sockets unchanged.

import OasisNet

public enum UDPEcho {
    /// Echoes every datagram arriving on `port` back to its sender. On the Oasis
    /// stack the reply is built in the request's own buffer.
    public static func start(on udp: some DatagramService, port: UInt16) throws {
        try udp.listen(port: port) { [unowned udp] datagram in
            try? udp.send(datagram.payload, to: datagram.source, from: port)
        }
    }
}
