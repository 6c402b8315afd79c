// The small TCP services (RFC 862 echo, RFC 863 discard, RFC 864 chargen), written once
// against the Stream surface: they run on the Oasis stack's TCP and on kernel sockets.

import OasisLoop
import OasisNet

/// Echo (RFC 862), discard (RFC 863) and character generator (RFC 864) over TCP.
///
/// ```swift
/// let listeners = try TCPServices.start(on: stack)     // ports 7, 9 and 19
/// ```
public enum TCPServices {
    /// Listens on `echo`, `discard` and `chargen` (0 leaves one out); the listeners,
    /// to close.
    @discardableResult
    public static func start<Service: StreamService>(
        on service: Service, echo: UInt16 = 7, discard: UInt16 = 9, chargen: UInt16 = 19
    ) throws(StreamError) -> [Service.Listener] {
        var listeners: [Service.Listener] = []
        if echo != 0 { listeners.append(try service.listen(port: echo) { Self.echo($0) }) }
        if discard != 0 { listeners.append(try service.listen(port: discard) { Self.discard($0) }) }
        if chargen != 0 { listeners.append(try service.listen(port: chargen) { Self.chargen($0) }) }
        return listeners
    }

    /// Sends back what arrives; what the send buffer cannot take waits in the input
    /// (backpressure reaches the peer). Closes once the peer has finished and every
    /// byte went back.
    public static func echo<Connection: StreamConnection>(_ connection: Connection) {
        func pump(_ input: inout StreamInput) {
            let taken = input.withUnsafeBytes { (try? connection.write($0)) ?? 0 }
            input.consume(taken)
            if input.isFinished && input.isEmpty { connection.close() }
        }
        connection.onReceive(pump)
        connection.onWritable { [weak connection] in connection?.withInput(pump) }
    }

    /// Reads and drops everything; closes when the peer has finished.
    public static func discard<Connection: StreamConnection>(_ connection: Connection) {
        connection.onReceive { [weak connection] input in
            input.consume(input.count)
            if input.isFinished { connection?.close() }
        }
    }

    /// Sends the RFC 864 character pattern (72-character lines, each shifted by one)
    /// for as long as the peer reads; input is read and dropped, and the end of it
    /// closes the connection.
    public static func chargen<Connection: StreamConnection>(_ connection: Connection) {
        let block = chargenBlock
        var offset = 0
        func fill() {
            while true {
                let taken: Int = block.withUnsafeBytes { bytes in
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                    return (try? connection.write(rest)) ?? 0
                }
                guard taken > 0 else { return }
                offset = (offset + taken) % (block.count / 2)
            }
        }
        connection.onWritable(fill)
        connection.onReceive { [weak connection] input in
            input.consume(input.count)
            if input.isFinished { connection?.close() }
        }
        fill()
    }

    /// 95 lines of the RFC 864 pattern, twice over, so that any line can start a
    /// write of up to one period's bytes.
    static let chargenBlock: [UInt8] = {
        let characters = (32..<127).map { UInt8($0) }  // the 95 printable ASCII characters
        var period: [UInt8] = []
        for line in 0..<characters.count {
            for column in 0..<72 {
                period.append(characters[(line + column) % characters.count])
            }
            period += [13, 10]
        }
        return period + period
    }()
}
