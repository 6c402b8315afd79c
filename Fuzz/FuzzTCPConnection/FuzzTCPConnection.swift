// Fuzz target: a TCP connection given arbitrary segment sequences. The input is read
// as a script: each step is a segment from the peer (flags, sequence and
// acknowledgment numbers relative to the connection's, window, options, data), an
// application action, or time passing. The connection must not trap, its buffers
// stay within their limits, and every segment it sends is well formed.

import FuzzSupport
import OasisBits
import OasisTCP
import OasisWire

struct Script {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    mutating func byte() -> UInt8? {
        guard at < bytes.count else { return nil }
        defer { at += 1 }
        return bytes[at]
    }
    mutating func word() -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 { value = value << 8 | UInt32(byte() ?? 0) }
        return value
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTCPConnection(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var script = Script(bytes: UnsafeRawBufferPointer(start: data, count: size))
    var configuration = TCPConfiguration()
    configuration.receiveBufferSize = 4096
    configuration.sendBufferSize = 4096
    configuration.keepalive = TCPKeepalive(idle: .seconds(5), interval: .seconds(1), count: 2)
    var now: Int64 = 1_000_000_000
    let active = (script.byte() ?? 0) & 1 == 1
    var tcb: TCPControlBlock
    if active {
        tcb = TCPControlBlock(
            connectingFrom: 1000, to: 80, iss: SequenceNumber(script.word()), mss: 1460,
            configuration: configuration, now: now)
    } else {
        var syn = TCPRepr(
            sourcePort: 80, destinationPort: 1000, sequenceNumber: script.word(),
            acknowledgmentNumber: 0, flags: .syn, window: UInt16(truncatingIfNeeded: script.word()))
        let options = script.byte() ?? 0
        if options & 1 != 0 { syn.maximumSegmentSize = UInt16(truncatingIfNeeded: script.word()) }
        if options & 2 != 0 { syn.windowScale = script.byte() }
        syn.sackPermitted = options & 4 != 0
        if options & 8 != 0 { syn.timestamps = TCPTimestamps(value: script.word(), echoReply: 0) }
        tcb = TCPControlBlock(
            answering: syn, localPort: 1000, iss: SequenceNumber(script.word()), mss: 1460,
            configuration: configuration, now: now)
    }
    var peerSequence = tcb.receiveNext
    let payload = [UInt8](repeating: 0x5a, count: 3000)
    var steps = 0
    while let op = script.byte(), steps < 400 {
        steps += 1
        switch op % 8 {
        case 0, 1, 2, 3:
            // A segment from the peer, numbers near the connection's own.
            var header = TCPRepr(
                sourcePort: 80, destinationPort: 1000,
                sequenceNumber: (peerSequence
                    + Int(Int16(bitPattern: UInt16(truncatingIfNeeded: script.word())))).rawValue,
                acknowledgmentNumber: (tcb.sendUnacknowledged
                    + Int(Int16(bitPattern: UInt16(truncatingIfNeeded: script.word())))).rawValue,
                flags: TCPFlags(rawValue: script.byte() ?? 0x10),
                window: UInt16(truncatingIfNeeded: script.word()))
            let extra = script.byte() ?? 0
            if extra & 1 != 0 {
                header.timestamps = TCPTimestamps(value: script.word(), echoReply: script.word())
            }
            if extra & 2 != 0 {
                var blocks = TCPSACKBlocks()
                let left = tcb.sendUnacknowledged + Int(script.byte() ?? 0) * 64
                blocks.append(
                    TCPSACKBlock(
                        left: left.rawValue, right: (left + Int(script.byte() ?? 0) * 64).rawValue))
                header.sackBlocks = blocks
            }
            if extra & 4 != 0 { header.urgentPointer = UInt16(truncatingIfNeeded: script.word()) }
            let length = Int(script.byte() ?? 0) * 11
            payload.withUnsafeBytes {
                tcb.receive(
                    header, payload: UnsafeRawBufferPointer(rebasing: $0[0..<length]), now: now)
            }
            if (script.byte() ?? 0) & 1 == 1 { peerSequence = peerSequence + length }
            if tcb.wantsChallengeAck { tcb.grantChallengeAck() }
        case 4:
            let count = Int(script.byte() ?? 0) * 37
            _ = payload.withUnsafeBytes {
                tcb.write(UnsafeRawBufferPointer(rebasing: $0[0..<count]))
            }
        case 5:
            tcb.consume(min(Int(script.byte() ?? 0) * 29, tcb.receiveBuffer.count))
        case 6:
            switch (script.byte() ?? 0) % 4 {
            case 0: tcb.shutdownWrite()
            case 1: tcb.applicationClose(now: now)
            case 2: tcb.abort()
            default: tcb.pathMTUChanged(mss: Int(script.byte() ?? 0) * 8)
            }
        default:
            now += Int64(script.byte() ?? 0) * 50_000_000
            tcb.timerFired(now: now)
        }
        precondition(tcb.receiveBuffer.count <= tcb.receiveBuffer.limit)
        precondition(tcb.sendBuffer.count <= tcb.sendBuffer.limit)
        // What it sends: bounded in number, each with data it holds and a header that
        // emits and parses again.
        var sent = 0
        while let segment = tcb.nextSegment(now: now) {
            sent += 1
            precondition(sent < 10_000, "nextSegment does not stop")
            precondition(segment.payloadOffset >= 0)
            precondition(segment.payloadOffset + segment.payloadLength <= tcb.sendBuffer.count)
            var packet = Packet(
                copying: [UInt8](repeating: 0, count: segment.payloadLength), headroom: 128)
            tcb.sendBuffer.withBytes(at: segment.payloadOffset, length: segment.payloadLength) {
                _, _ in
            }
            let source = IPv4Address(192, 0, 2, 1)
            let destination = IPv4Address(192, 0, 2, 2)
            precondition(
                (try? segment.header.emit(
                    prependingTo: &packet, source: source, destination: destination)) != nil)
            precondition(
                (try? TCPRepr.parse(packet.bytes, source: source, destination: destination)) != nil)
        }
        tcb.events = []
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzTCPConnection)
            print("replayed \(count) input(s)")
        }
    }
#endif
