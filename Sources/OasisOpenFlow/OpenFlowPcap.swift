// OpenFlow messages in pcap files: writing them as TCP segments (for Wireshark/tshark)
// and extracting them from a capture's TCP payloads.

import OasisBits

/// The classic pcap file header (24 bytes), little-endian as written on x86.
enum PcapFileHeader: HeaderLayout {
    static let magic = Field<UInt32>.at(byte: 0, byteOrder: .littleEndian)
    static let versionMajor = Field<UInt16>.at(byte: 4, byteOrder: .littleEndian)
    static let versionMinor = Field<UInt16>.at(byte: 6, byteOrder: .littleEndian)
    static let snapLength = Field<UInt32>.at(byte: 16, byteOrder: .littleEndian)
    static let linkType = Field<UInt32>.at(byte: 20, byteOrder: .littleEndian)
    static let size = 24
}

/// A pcap record header (16 bytes).
enum PcapRecordHeader: HeaderLayout {
    static let seconds = Field<UInt32>.at(byte: 0, byteOrder: .littleEndian)
    static let microseconds = Field<UInt32>.at(byte: 4, byteOrder: .littleEndian)
    static let capturedLength = Field<UInt32>.at(byte: 8, byteOrder: .littleEndian)
    static let originalLength = Field<UInt32>.at(byte: 12, byteOrder: .littleEndian)
    static let size = 16
}

/// Ethernet + IPv4 (no options) + TCP (no options): 54 bytes in front of a payload.
enum TCPFrameLayout: HeaderLayout {
    static let destination = Field<UInt64>.at(byte: 0, bits: 48)
    static let source = Field<UInt64>.at(byte: 6, bits: 48)
    static let etherType = Field<UInt16>.at(byte: 12)
    static let versionIHL = Field<UInt8>.at(byte: 14)
    static let totalLength = Field<UInt16>.at(byte: 16)
    static let flagsFragment = Field<UInt16>.at(byte: 20)
    static let ttl = Field<UInt8>.at(byte: 22)
    static let ipProtocol = Field<UInt8>.at(byte: 23)
    static let ipChecksum = Field<UInt16>.at(byte: 24)
    static let ipSource = Field<UInt32>.at(byte: 26)
    static let ipDestination = Field<UInt32>.at(byte: 30)
    static let sourcePort = Field<UInt16>.at(byte: 34)
    static let destinationPort = Field<UInt16>.at(byte: 36)
    static let sequence = Field<UInt32>.at(byte: 38)
    static let acknowledgement = Field<UInt32>.at(byte: 42)
    static let dataOffset = Field<UInt8>.at(byte: 46)
    static let tcpFlags = Field<UInt8>.at(byte: 47)
    static let window = Field<UInt16>.at(byte: 48)
    static let tcpChecksum = Field<UInt16>.at(byte: 50)
    static let size = 54
}

/// Reading and writing OpenFlow messages in classic pcap files.
public enum OpenFlowPcap {
    /// A pcap file (Ethernet link type) with one TCP segment per message, from
    /// 10.0.0.1:`clientPort` to 10.0.0.2:`port`, with correct IPv4 and TCP lengths and
    /// checksums and consecutive sequence numbers, as Wireshark expects of a stream.
    public static func write(
        _ messages: [Message], port: UInt16 = 6633, clientPort: UInt16 = 40000
    ) throws(OpenFlowError) -> [UInt8] {
        var file = emptyView(Buffer(byteCount: 24))
        do {
            var header = try file.appendHeader(PcapFileHeader.self)
            header[PcapFileHeader.magic] = 0xa1b2_c3d4
            header[PcapFileHeader.versionMajor] = 2
            header[PcapFileHeader.versionMinor] = 4
            header[PcapFileHeader.snapLength] = 262_144
            header[PcapFileHeader.linkType] = 1
        } catch { throw .noRoom(error) }
        var bytes = file.copyBytes()
        var sequence: UInt32 = 1
        for (index, message) in messages.enumerated() {
            let payload = try message.encoded()
            var frame = emptyView(Buffer(byteCount: 16 + TCPFrameLayout.size + payload.count))
            do {
                var record = try frame.appendHeader(PcapRecordHeader.self)
                let length = UInt32(TCPFrameLayout.size + payload.count)
                record[PcapRecordHeader.seconds] = 1_700_000_000
                record[PcapRecordHeader.microseconds] = UInt32(index)
                record[PcapRecordHeader.capturedLength] = length
                record[PcapRecordHeader.originalLength] = length
                var tcp = try frame.appendHeader(TCPFrameLayout.self)
                tcp[TCPFrameLayout.destination] = 0x0200_0000_0002
                tcp[TCPFrameLayout.source] = 0x0200_0000_0001
                tcp[TCPFrameLayout.etherType] = 0x0800
                tcp[TCPFrameLayout.versionIHL] = 0x45
                tcp[TCPFrameLayout.totalLength] = UInt16(truncatingIfNeeded: 40 + payload.count)
                tcp[TCPFrameLayout.flagsFragment] = 0x4000
                tcp[TCPFrameLayout.ttl] = 64
                tcp[TCPFrameLayout.ipProtocol] = 6
                tcp[TCPFrameLayout.ipSource] = 0x0a00_0001
                tcp[TCPFrameLayout.ipDestination] = 0x0a00_0002
                tcp[TCPFrameLayout.sourcePort] = clientPort
                tcp[TCPFrameLayout.destinationPort] = port
                tcp[TCPFrameLayout.sequence] = sequence
                tcp[TCPFrameLayout.acknowledgement] = 1
                tcp[TCPFrameLayout.dataOffset] = 5 << 4
                tcp[TCPFrameLayout.tcpFlags] = 0x18  // PSH, ACK
                tcp[TCPFrameLayout.window] = 65535
                try frame.append(contentsOf: payload)
                tcp[TCPFrameLayout.ipChecksum] = InternetChecksum.checksum(
                    of: try frame.slice(from: 16 + 14, length: 20))
                var sum = InternetChecksum()
                sum.addPseudoHeader(
                    source: 0x0a00_0001, destination: 0x0a00_0002, protocol: 6,
                    length: UInt16(truncatingIfNeeded: 20 + payload.count))
                sum.add(try frame.shifted(by: 16 + 34))
                tcp[TCPFrameLayout.tcpChecksum] = sum.checksum
            } catch { throw .noRoom(error) }
            sequence &+= UInt32(payload.count)
            bytes += frame.copyBytes()
        }
        return bytes
    }

    /// What ``messages(in:port:)`` found in one TCP payload stream.
    public struct Extracted: Equatable {
        /// Whether the segment was sent to `port` (to the switch or controller that
        /// listens there) rather than from it.
        public var toPort: Bool
        /// The message, or the error that decoding it gave.
        public var message: Result<Message, OpenFlowError>
    }

    /// Where a pcap file stops making sense: a record that claims more bytes than the
    /// file has left (a caplen of 0xffffffff, a file cut short), or a record header cut
    /// short. What came before it was read.
    public struct Corruption: Error, Equatable, CustomStringConvertible {
        /// The record, counting from 1.
        public var record: Int
        /// Where its header starts in the file.
        public var offset: Int
        /// The captured length its header claims; nil if the header itself is cut.
        public var capturedLength: UInt32?
        /// The bytes the file has from the record's header on.
        public var bytesLeft: Int

        public var description: String {
            if let capturedLength {
                return "record \(record) at byte \(offset) claims \(capturedLength) captured "
                    + "bytes, but the file has \(bytesLeft - PcapRecordHeader.size) left"
            }
            return "record \(record) at byte \(offset) has a header cut short "
                + "(\(bytesLeft) of \(PcapRecordHeader.size) bytes)"
        }
    }

    /// What ``read(_:port:maximumConnections:)`` found in a pcap file.
    public struct Contents: Equatable {
        /// The messages, in capture order.
        public var messages: [Extracted]
        /// Where the file is corrupt, if it is; the messages are those before it.
        public var corruption: Corruption?
    }

    /// The OpenFlow messages in the TCP payloads to or from `port` of a classic pcap
    /// file (Ethernet, Linux cooked v1/v2 or raw IPv4 link types), framed per direction
    /// of each connection. Segments are taken in capture order (no reordering or
    /// retransmission handling). Returns `nil` if the bytes are not a pcap file; a file
    /// that is, but breaks off or lies about a record's length, is read up to that
    /// record and the corruption said.
    ///
    /// ```swift
    /// guard let contents = OpenFlowPcap.read(Bits(file)) else { fail("not a pcap file") }
    /// for extracted in contents.messages { print(extracted.message) }
    /// if let corruption = contents.corruption { fail("corrupt: \(corruption)") }
    /// ```
    public static func read(
        _ file: Bits, port: UInt16 = 6633, maximumConnections: Int = defaultMaximumConnections
    ) -> Contents? {
        guard let header = try? file.header(PcapFileHeader.self) else { return nil }
        let magic = header[PcapFileHeader.magic]
        guard magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d else { return nil }
        let linkType = header[PcapFileHeader.linkType]
        var framers: [UInt64: MessageFramer] = [:]
        var found: [Extracted] = []
        var rest = (try? file.shifted(by: 24)) ?? file
        var offset = 24
        var index = 0
        while !rest.isEmpty {
            index += 1
            guard let record = try? rest.header(PcapRecordHeader.self) else {
                return Contents(
                    messages: found,
                    corruption: Corruption(
                        record: index, offset: offset, capturedLength: nil, bytesLeft: rest.count))
            }
            let claimed = record[PcapRecordHeader.capturedLength]
            let length = Int(claimed)
            guard let packet = try? record.payload.prefix(length),
                let next = try? rest.shifted(by: 16 + length)
            else {
                return Contents(
                    messages: found,
                    corruption: Corruption(
                        record: index, offset: offset, capturedLength: claimed,
                        bytesLeft: rest.count))
            }
            rest = next
            offset += 16 + length
            guard let (key, toPort, payload) = tcpPayload(packet, linkType: linkType, port: port),
                !payload.isEmpty
            else { continue }
            // Each connection's framer buffers up to two messages: a capture with many
            // connections must not reserve memory without bound.
            if framers[key] == nil && framers.count >= maximumConnections {
                found.append(
                    Extracted(
                        toPort: toPort,
                        message: .failure(
                            .badLength(
                                type: 0, length: 0, expected: "a connection within the limit"))))
                continue
            }
            var framer = framers[key] ?? MessageFramer()
            var remaining = payload
            while !remaining.isEmpty {
                let taken = framer.append(remaining)
                remaining = (try? remaining.shifted(by: taken)) ?? remaining
                do {
                    while let bits = try framer.next() {
                        let message = Result { () throws(OpenFlowError) in try Message.decode(bits)
                        }
                        found.append(Extracted(toPort: toPort, message: message))
                    }
                } catch {
                    found.append(Extracted(toPort: toPort, message: .failure(error)))
                    framer = MessageFramer()
                    break
                }
                if taken == 0 { break }
            }
            framers[key] = framer
        }
        return Contents(messages: found, corruption: nil)
    }

    /// The most TCP connections ``read(_:port:maximumConnections:)`` follows at once.
    public static let defaultMaximumConnections = 64

    /// The OpenFlow messages of ``read(_:port:maximumConnections:)``, without saying
    /// whether the file broke off; `nil` if the bytes are not a pcap file.
    public static func messages(
        in file: Bits, port: UInt16 = 6633, maximumConnections: Int = defaultMaximumConnections
    ) -> [Extracted]? {
        read(file, port: port, maximumConnections: maximumConnections)?.messages
    }

    /// The connection key, direction and TCP payload of a captured packet, if it is
    /// IPv4 TCP to or from `port`.
    static func tcpPayload(_ packet: Bits, linkType: UInt32, port: UInt16) -> (UInt64, Bool, Bits)?
    {
        var etherType: UInt16
        var offset: Int
        switch linkType {
        case 1:
            guard let type = try? packet.read(UInt16.self, at: 12) else { return nil }
            (etherType, offset) = (type, 14)
            if etherType == 0x8100, let inner = try? packet.read(UInt16.self, at: 16) {
                (etherType, offset) = (inner, 18)
            }
        case 113:
            guard let type = try? packet.read(UInt16.self, at: 14) else { return nil }
            (etherType, offset) = (type, 16)
        case 276:
            guard let type = try? packet.read(UInt16.self, at: 0) else { return nil }
            (etherType, offset) = (type, 20)
        case 101, 228:
            (etherType, offset) = (0x0800, 0)
        default: return nil
        }
        guard etherType == 0x0800, let ip = try? packet.shifted(by: offset),
            let versionIHL = try? ip.read(UInt8.self, at: 0), versionIHL >> 4 == 4,
            let proto = try? ip.read(UInt8.self, at: 9), proto == 6,
            let totalLength = try? ip.read(UInt16.self, at: 2),
            let source = try? ip.read(UInt32.self, at: 12),
            let destination = try? ip.read(UInt32.self, at: 16)
        else { return nil }
        let ipHeader = Int(versionIHL & 0x0f) * 4
        guard let datagram = try? ip.prefix(min(ip.count, Int(totalLength))),
            let tcp = try? datagram.shifted(by: ipHeader),
            let sourcePort = try? tcp.read(UInt16.self, at: 0),
            let destinationPort = try? tcp.read(UInt16.self, at: 2),
            let dataOffset = try? tcp.read(UInt8.self, at: 12),
            sourcePort == port || destinationPort == port,
            let payload = try? tcp.shifted(by: Int(dataOffset >> 4) * 4)
        else { return nil }
        let key =
            UInt64(source ^ destination.rotated) << 32 | UInt64(sourcePort) << 16
            | UInt64(destinationPort)
        return (key, destinationPort == port, payload)
    }
}

extension UInt32 {
    fileprivate var rotated: UInt32 { self << 16 | self >> 16 }
}
