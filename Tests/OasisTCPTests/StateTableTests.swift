// The state machine against RFC 9293 §3.10.7 (SEGMENT ARRIVES) with RFC 5961's
// changes, as a table: every state, reached by a real exchange on the controlled wire,
// meets each kind of segment; the table gives the state after and what is sent back.

import OasisTCP
import OasisWire
import Testing

/// A segment the peer sends, relative to the connection it arrives at.
enum Arrival: String, CaseIterable, CustomStringConvertible {
    case synInWindow, rstExact, rstInWindow, rstOutsideWindow, ackOfUnsentData, fin, data
    var description: String { rawValue }
}

/// What the connection sends back at once.
enum Answer: Equatable, CustomStringConvertible {
    case nothing
    case ack  // an ACK (a challenge ACK or a duplicate ACK: no data, at SND.NXT)
    case challengeWanted  // asks its owner for a challenge ACK (rate limited there)
    case reset
    var description: String {
        switch self {
        case .nothing: "nothing"
        case .ack: "ACK"
        case .challengeWanted: "challenge ACK"
        case .reset: "RST"
        }
    }
}

/// A connection driven to `state` by a real exchange with its peer; `client` says
/// which side of the pair is in it.
func connection(in state: TCPState) throws -> TCPControlBlock {
    var pair = try Pair()
    switch state {
    case .synSent:
        try pair.pump()
        return pair.client
    case .synReceived:
        try pair.pump()
        let syn = pair.toServer[0]
        let server = TCPControlBlock(
            answering: syn.header, localPort: 80, iss: SequenceNumber(5000), mss: 1460,
            configuration: .init(), now: pair.now)
        var answered = server
        _ = answered.nextSegment(now: pair.now)
        return answered
    case .established:
        try pair.handshake()
        return pair.client
    case .finWait1:
        try pair.handshake()
        pair.client.shutdownWrite()
        _ = pair.client.nextSegment(now: pair.now)
        return pair.client
    case .finWait2:
        try pair.handshake()
        pair.client.shutdownWrite()
        try pair.run()
        return pair.client
    case .closeWait:
        try pair.handshake()
        pair.client.shutdownWrite()
        try pair.run()
        return pair.server
    case .lastAck:
        try pair.handshake()
        pair.client.shutdownWrite()
        try pair.run()
        pair.server.shutdownWrite()
        _ = pair.server.nextSegment(now: pair.now)
        return pair.server
    case .closing:
        try pair.handshake()
        pair.client.shutdownWrite()
        pair.server.shutdownWrite()
        _ = pair.client.nextSegment(now: pair.now)  // the client's FIN, not delivered
        let maybeServerFin = pair.server.nextSegment(now: pair.now)
        let serverFin = try #require(maybeServerFin)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        // The server's FIN reaches the client before the ACK of the client's FIN.
        pair.client.receive(serverFin.header, payload: none, now: pair.now)
        return pair.client
    case .timeWait:
        try pair.handshake()
        pair.client.shutdownWrite()
        try pair.run()
        pair.server.shutdownWrite()
        try pair.run()
        return pair.client
    case .closed, .listen:
        preconditionFailure("not a connection state")
    }
}

/// The segment of kind `arrival` for `tcb`, from its peer.
func segment(_ arrival: Arrival, for tcb: borrowing TCPControlBlock) -> (TCPRepr, [UInt8]) {
    let next = tcb.receiveNext.rawValue
    // Acknowledging nothing new, so that an outstanding FIN stays outstanding.
    let acked = tcb.sendUnacknowledged.rawValue
    var header = TCPRepr(
        sourcePort: tcb.remotePort, destinationPort: tcb.localPort, sequenceNumber: next,
        acknowledgmentNumber: acked, flags: .ack, window: 65535)
    var payload: [UInt8] = []
    switch arrival {
    case .synInWindow:
        header.flags = .syn
        header.sequenceNumber = next &+ 1000
        header.acknowledgmentNumber = 0
    case .rstExact:
        header.flags = .rst
    case .rstInWindow:
        header.flags = .rst
        header.sequenceNumber = next &+ 1000
    case .rstOutsideWindow:
        header.flags = .rst
        header.sequenceNumber = next &+ 100_000_000
    case .ackOfUnsentData:
        header.acknowledgmentNumber = tcb.sendNext.rawValue &+ 100_000
    case .fin:
        header.flags = [.fin, .ack]
    case .data:
        header.flags = [.psh, .ack]
        payload = [1, 2, 3, 4]
    }
    return (header, payload)
}

struct Row: CustomStringConvertible {
    let state: TCPState
    let arrival: Arrival
    let after: TCPState
    let answer: Answer
    var description: String { "\(state) + \(arrival) -> \(after), \(answer)" }
}

/// RFC 9293 §3.10.7.4 with RFC 5961 §3.2 (RST), §4.2 (SYN) and §5.2 (ACK): the
/// synchronized states.
let synchronizedTable: [Row] = {
    var rows: [Row] = []
    let states: [TCPState] = [
        .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck, .timeWait,
    ]
    for state in states {
        // An exact reset closes every synchronized state; an inexact one in the
        // window asks for a challenge ACK; one outside the window is dropped.
        rows.append(Row(state: state, arrival: .rstExact, after: .closed, answer: .nothing))
        rows.append(
            Row(state: state, arrival: .rstInWindow, after: state, answer: .challengeWanted))
        rows.append(Row(state: state, arrival: .rstOutsideWindow, after: state, answer: .nothing))
        // A SYN, whatever its sequence number: a challenge ACK.
        rows.append(
            Row(state: state, arrival: .synInWindow, after: state, answer: .challengeWanted))
        // An ACK of data never sent: an ACK back, the segment dropped.
        rows.append(Row(state: state, arrival: .ackOfUnsentData, after: state, answer: .ack))
    }
    // FIN (eighth step): where each state goes, and it is acknowledged.
    rows.append(Row(state: .established, arrival: .fin, after: .closeWait, answer: .ack))
    rows.append(Row(state: .finWait1, arrival: .fin, after: .closing, answer: .ack))
    rows.append(Row(state: .finWait2, arrival: .fin, after: .timeWait, answer: .ack))
    // In CLOSE-WAIT, CLOSING, LAST-ACK and TIME-WAIT the FIN at RCV.NXT is beyond the
    // peer's first one (a FIN after a FIN): it is outside what can come, and answered
    // with an ACK saying where we are.
    rows.append(Row(state: .closeWait, arrival: .fin, after: .closeWait, answer: .ack))
    rows.append(Row(state: .closing, arrival: .fin, after: .closing, answer: .ack))
    rows.append(Row(state: .lastAck, arrival: .fin, after: .lastAck, answer: .ack))
    rows.append(Row(state: .timeWait, arrival: .fin, after: .timeWait, answer: .ack))
    // Data (seventh step): taken in the states that still receive (acknowledged after
    // the delay); after the peer's FIN it cannot come, and is ignored.
    for state: TCPState in [
        .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck, .timeWait,
    ] {
        rows.append(Row(state: state, arrival: .data, after: state, answer: .nothing))
    }
    return rows
}()

@Suite struct StateTableTests {
    @Test(arguments: synchronizedTable)
    func synchronizedStates(_ row: Row) throws {
        var tcb = try connection(in: row.state)
        #expect(tcb.state == row.state, "set-up reached \(tcb.state)")
        // What the set-up left to send (an ACK owed) goes first.
        while tcb.nextSegment(now: 2_000_000_000) != nil {}
        let bufferedBefore = tcb.receiveBuffer.count
        let (header, payload) = segment(row.arrival, for: tcb)
        payload.withUnsafeBytes { tcb.receive(header, payload: $0, now: 2_000_000_000) }
        #expect(tcb.state == row.after)
        var answers: [TCPOutgoingSegment] = []
        while let out = tcb.nextSegment(now: 2_000_000_000) { answers.append(out) }
        let nonData = answers.filter { $0.payloadLength == 0 }
        switch row.answer {
        case .nothing:
            // A delayed ACK may be armed for in-order data, but nothing goes at once.
            #expect(nonData.isEmpty || row.arrival == .rstExact, "\(answers)")
            let wants = tcb.wantsChallengeAck
            #expect(!wants)
        case .ack:
            #expect(
                nonData.contains { $0.header.flags == .ack || $0.header.flags == [.ack, .fin] })
            #expect(!nonData.contains { $0.header.flags.contains(.rst) })
        case .challengeWanted:
            let wants = tcb.wantsChallengeAck
            #expect(wants)
            #expect(nonData.isEmpty, "nothing before the owner grants it: \(answers)")
            tcb.grantChallengeAck()
            let granted = tcb.nextSegment(now: 2_000_000_000)
            #expect(granted?.header.flags == .ack)
            #expect(granted?.header.acknowledgmentNumber == tcb.receiveNext.rawValue)
        case .reset:
            #expect(nonData.contains { $0.header.flags.contains(.rst) })
        }
        if row.arrival == .data {
            let taken = tcb.receiveBuffer.count - bufferedBefore
            let receives =
                row.after == .established || row.after == .finWait1 || row.after == .finWait2
            #expect(taken == (receives ? 4 : 0))
        }
        if row.arrival == .rstExact { #expect(tcb.closeReason == .reset || row.state == .timeWait) }
    }

    /// SYN-SENT (§3.10.7.3): the four ways a segment is taken there.
    @Test func synSent() throws {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        func fresh() throws -> TCPControlBlock { try connection(in: .synSent) }
        // A reset without an ACK: ignored.
        var tcb = try fresh()
        tcb.receive(
            TCPRepr(
                sourcePort: 80, destinationPort: 40000, sequenceNumber: 1, acknowledgmentNumber: 0,
                flags: .rst, window: 0), payload: none, now: 0)
        #expect(tcb.state == .synSent)
        // A reset acknowledging something else: ignored (RFC 5961 §3.2 in SYN-SENT).
        tcb.receive(
            TCPRepr(
                sourcePort: 80, destinationPort: 40000, sequenceNumber: 1, acknowledgmentNumber: 77,
                flags: [.rst, .ack], window: 0), payload: none, now: 0)
        #expect(tcb.state == .synSent)
        // A SYN alone: simultaneous open, SYN-RECEIVED, our SYN again with an ACK.
        tcb.receive(
            TCPRepr(
                sourcePort: 80, destinationPort: 40000, sequenceNumber: 9000,
                acknowledgmentNumber: 0,
                flags: .syn, window: 1000), payload: none, now: 0)
        #expect(tcb.state == .synReceived)
        let synAck = tcb.nextSegment(now: 0)
        #expect(
            synAck?.header.flags == [.syn, .ack] && synAck?.header.acknowledgmentNumber == 9001)
        // A SYN-ACK acknowledging our SYN: ESTABLISHED, an ACK back.
        tcb = try fresh()
        tcb.receive(
            TCPRepr(
                sourcePort: 80, destinationPort: 40000, sequenceNumber: 9000,
                acknowledgmentNumber: 1001, flags: [.syn, .ack], window: 1000), payload: none,
            now: 0)
        #expect(tcb.state == .established && tcb.events.contains(.established))
        let ack = tcb.nextSegment(now: 0)
        #expect(ack?.header.flags == .ack && ack?.header.acknowledgmentNumber == 9001)
    }

    /// SYN-RECEIVED: the ACK completes the handshake, an unacceptable ACK is answered
    /// with a reset at its acknowledgment number, the SYN again means our SYN-ACK was
    /// lost, an exact reset ends the attempt.
    @Test func synReceived() throws {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        var tcb = try connection(in: .synReceived)
        let next = tcb.receiveNext.rawValue
        tcb.receive(
            TCPRepr(
                sourcePort: 40000, destinationPort: 80, sequenceNumber: next,
                acknowledgmentNumber: 7777, flags: .ack, window: 1000), payload: none, now: 0)
        #expect(tcb.state == .synReceived)
        let reset = tcb.nextSegment(now: 0)
        #expect(reset?.header.flags == .rst && reset?.header.sequenceNumber == 7777)
        tcb.receive(
            TCPRepr(
                sourcePort: 40000, destinationPort: 80, sequenceNumber: next &- 1,
                acknowledgmentNumber: 0, flags: .syn, window: 1000), payload: none, now: 0)
        let again = tcb.nextSegment(now: 0)
        #expect(again?.header.flags == [.syn, .ack])
        tcb.receive(
            TCPRepr(
                sourcePort: 40000, destinationPort: 80, sequenceNumber: next,
                acknowledgmentNumber: 5001, flags: .ack, window: 1000), payload: none, now: 0)
        #expect(tcb.state == .established)
        var other = try connection(in: .synReceived)
        other.receive(
            TCPRepr(
                sourcePort: 40000, destinationPort: 80, sequenceNumber: next,
                acknowledgmentNumber: 0, flags: .rst, window: 0), payload: none, now: 0)
        #expect(other.state == .closed)
    }

    /// Never a reset for a reset (RFC 9293 §3.10.7.1 and §3.10.7.4): in no state does
    /// a reset, exact or not, draw one.
    @Test func neverAResetForAReset() throws {
        for state: TCPState in [
            .synSent, .synReceived, .established, .finWait1, .finWait2, .closeWait, .closing,
            .lastAck, .timeWait,
        ] {
            for arrival: Arrival in [.rstExact, .rstInWindow, .rstOutsideWindow] {
                var tcb = try connection(in: state)
                let (header, _) = segment(arrival, for: tcb)
                tcb.receive(header, payload: UnsafeRawBufferPointer(start: nil, count: 0), now: 0)
                while let out = tcb.nextSegment(now: 0) {
                    #expect(!out.header.flags.contains(.rst), "\(state) + \(arrival)")
                }
            }
        }
    }
}
