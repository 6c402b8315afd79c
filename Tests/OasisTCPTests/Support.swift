import OasisBits
import OasisTCP
import OasisWire
import Testing

let clientAddress = IPv4Address(192, 0, 2, 1)
let serverAddress = IPv4Address(192, 0, 2, 2)

/// A segment as it went on the wire: header parsed back from its bytes, and its data.
struct WireSegment: CustomStringConvertible {
    var header: TCPRepr
    var payload: [UInt8]

    var description: String {
        "\(header.flags) seq \(header.sequenceNumber) ack \(header.acknowledgmentNumber) "
            + "win \(header.window) len \(payload.count)"
    }
}

/// Emits a control block's segment into bytes (through the wire module, checksum and
/// all) and parses it back, as the peer would see it.
func wire(
    _ segment: TCPOutgoingSegment, from tcb: borrowing TCPControlBlock, source: IPv4Address,
    destination: IPv4Address
) throws -> WireSegment {
    var packet = Packet(copying: [UInt8](repeating: 0, count: segment.payloadLength), headroom: 128)
    if segment.payloadLength > 0 {
        packet.withUnsafeMutableBytes { bytes in
            tcb.sendBuffer.copy(
                at: segment.payloadOffset, length: segment.payloadLength, to: bytes.baseAddress!)
        }
    }
    try segment.header.emit(prependingTo: &packet, source: source, destination: destination)
    let bytes = packet.copyBytes()
    let received = Packet(copying: bytes)
    let parsed = try TCPRepr.parse(received.bytes, source: source, destination: destination)
    let headerLength = Int(bytes[12] >> 4) * 4
    return WireSegment(header: parsed, payload: Array(bytes[headerLength...]))
}

/// What a device's TCP segmentation (Linux's `tcp_gso_segment`) makes of `segment`:
/// pieces of `size` data bytes, sequence numbers counting on, the same options on
/// each, FIN and PSH on the last only. `size` 0: the segment as it is.
func cut(_ segment: WireSegment, at size: Int) -> [WireSegment] {
    guard size > 0, segment.payload.count > size else { return [segment] }
    var pieces: [WireSegment] = []
    var offset = 0
    while offset < segment.payload.count {
        let end = min(offset + size, segment.payload.count)
        var header = segment.header
        header.sequenceNumber = segment.header.sequenceNumber &+ UInt32(offset)
        if end < segment.payload.count {
            header.flags.remove(.fin)
            header.flags.remove(.psh)
        }
        pieces.append(WireSegment(header: header, payload: Array(segment.payload[offset..<end])))
        offset = end
    }
    return pieces
}

/// Two control blocks joined by a wire the test controls: what each sends is queued;
/// the test delivers, drops or reorders, on a clock it moves.
struct Pair: ~Copyable {
    var client: TCPControlBlock
    var server: TCPControlBlock
    var now: Int64 = 1_000_000_000
    /// Segments in flight each way.
    var toServer: [WireSegment] = []
    var toClient: [WireSegment] = []
    /// Every segment sent, each way, for the test to look at.
    var sentByClient: [WireSegment] = []
    var sentByServer: [WireSegment] = []

    /// A client in SYN-SENT; the server answers the first SYN it gets.
    init(
        client clientConfiguration: TCPConfiguration = .init(),
        server serverConfiguration: TCPConfiguration = .init(),
        clientISS: UInt32 = 1000, serverISS: UInt32 = 5000, mss: Int = 1460
    ) throws {
        client = TCPControlBlock(
            connectingFrom: 40000, to: 80, iss: SequenceNumber(clientISS), mss: mss,
            configuration: clientConfiguration, now: 1_000_000_000)
        // A placeholder until the SYN arrives (replaced in `handshake`).
        let syn = TCPRepr(
            sourcePort: 40000, destinationPort: 80, sequenceNumber: clientISS,
            acknowledgmentNumber: 0, flags: .syn, window: 65535)
        server = TCPControlBlock(
            answering: syn, localPort: 80, iss: SequenceNumber(serverISS), mss: mss,
            configuration: serverConfiguration, now: 1_000_000_000)
        self.serverISS = serverISS
        self.serverConfiguration = serverConfiguration
        self.mss = mss
    }

    let serverISS: UInt32
    let serverConfiguration: TCPConfiguration
    let mss: Int

    /// Segments handed out for the device to cut (TSO), each way, before cutting.
    var largeByClient: [WireSegment] = []
    var largeByServer: [WireSegment] = []

    /// Collects what each side wants to send now. A segment to be cut at the MSS (a
    /// control block with ``TCPControlBlock/segmentationLimit``) goes on the wire as
    /// the segments a device cuts it into.
    mutating func pump() throws {
        while let segment = client.nextSegment(now: now) {
            let sent = try wire(
                segment, from: client, source: clientAddress, destination: serverAddress)
            if segment.segmentSize > 0 { largeByClient.append(sent) }
            for piece in cut(sent, at: segment.segmentSize) {
                toServer.append(piece)
                sentByClient.append(piece)
            }
        }
        while let segment = server.nextSegment(now: now) {
            let sent = try wire(
                segment, from: server, source: serverAddress, destination: clientAddress)
            if segment.segmentSize > 0 { largeByServer.append(sent) }
            for piece in cut(sent, at: segment.segmentSize) {
                toClient.append(piece)
                sentByServer.append(piece)
            }
        }
    }

    /// Delivers everything in flight both ways (dropping those `drop` picks), and what
    /// that makes them send, until the wire is quiet.
    mutating func run(rounds: Int = 64, drop: (WireSegment, Bool) -> Bool = { _, _ in false })
        throws
    {
        for _ in 0..<rounds {
            try pump()
            if toServer.isEmpty && toClient.isEmpty { return }
            let outbound = toServer
            toServer = []
            for segment in outbound where !drop(segment, true) {
                segment.payload.withUnsafeBytes {
                    server.receive(segment.header, payload: $0, now: now)
                }
            }
            let inbound = toClient
            toClient = []
            for segment in inbound where !drop(segment, false) {
                segment.payload.withUnsafeBytes {
                    client.receive(segment.header, payload: $0, now: now)
                }
            }
        }
    }

    /// The three-way handshake: the server's control block is made from the SYN.
    mutating func handshake() throws {
        try pump()
        guard let syn = toServer.first else {
            Issue.record("no SYN")
            return
        }
        toServer.removeFirst()
        server = TCPControlBlock(
            answering: syn.header, localPort: 80, iss: SequenceNumber(serverISS), mss: mss,
            configuration: serverConfiguration, now: now)
        // What the placeholder answered is not on the wire.
        toClient = []
        sentByServer = []
        try run()
    }

    /// Moves the clock to `time` and runs both sides' timers due by then.
    mutating func advance(by nanoseconds: Int64) throws {
        now += nanoseconds
        client.timerFired(now: now)
        server.timerFired(now: now)
        try pump()
    }

    /// Moves time forward in steps, firing timers and delivering, up to `total`.
    mutating func elapse(
        _ total: Int64, step: Int64 = 10_000_000,
        drop: (WireSegment, Bool) -> Bool = { _, _ in false }
    ) throws {
        var left = total
        while left > 0 {
            let slice = min(step, left)
            try advance(by: slice)
            try run(drop: drop)
            left -= slice
        }
    }

    /// The client writes `bytes` (as much as fits).
    mutating func clientWrites(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { client.write($0) }
    }

    /// The server's application reads everything in order.
    mutating func serverReads() -> [UInt8] {
        let bytes = Array(server.receiveBuffer.bytes)
        server.consume(bytes.count)
        return bytes
    }

    mutating func clientReads() -> [UInt8] {
        let bytes = Array(client.receiveBuffer.bytes)
        client.consume(bytes.count)
        return bytes
    }
}

/// Deterministic bytes for transfers.
func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ $0 >> 8) }
}
