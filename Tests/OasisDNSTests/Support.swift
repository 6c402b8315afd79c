import Foundation
import OasisBits
import OasisTestSupport
import Testing

@testable import OasisDNS

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh temporary folder.
func temporaryFolder(_ prefix: String) -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Sends `query` over TCP (with its length prefix) and returns the answer.
func tcpExchange(_ query: [UInt8], port: UInt16) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = socketAddress("127.0.0.1", port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xff)] + query
    guard send(fd, framed, framed.count, 0) == framed.count else { return nil }
    func readExactly(_ count: Int) -> [UInt8]? {
        var result = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = result.withUnsafeMutableBytes {
                recv(fd, $0.baseAddress! + got, count - got, 0)
            }
            guard n > 0 else { return nil }
            got += n
        }
        return result
    }
    guard let prefix = readExactly(2) else { return nil }
    return readExactly(Int(prefix[0]) << 8 | Int(prefix[1]))
}

/// An empty view with room for any DNS message.
func emptyMessageBuffer() -> Bits {
    var bits = Bits([UInt8](repeating: 0, count: 65536 + 16))
    try! bits.truncate(to: 0)
    return bits
}

/// Builds a query message's bytes.
func queryBytes(
    id: UInt16 = 0x4242, name: String, type: RecordType, recordClass: RecordClass = .internet,
    recursionDesired: Bool = false, edns: EDNS? = nil
) -> [UInt8] {
    var message = Message()
    message.id = id
    message.recursionDesired = recursionDesired
    message.questions = [
        Question(name: try! DomainName(parsing: name), type: type, recordClass: recordClass)
    ]
    message.edns = edns
    var bits = emptyMessageBuffer()
    try! message.encode(into: &bits)
    return bits.copyBytes()
}

/// Our engine's answer to `query`, or nil for a drop.
func engineAnswer(_ engine: AuthoritativeEngine, _ query: [UInt8], transport: Transport)
    -> [UInt8]?
{
    var out = emptyMessageBuffer()
    guard let length = engine.respond(to: Bits(query), transport: transport, into: &out) else {
        return nil
    }
    #expect(length == out.count)
    return out.copyBytes()
}
