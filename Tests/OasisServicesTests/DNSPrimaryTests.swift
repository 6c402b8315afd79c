// A primary's settings and its NOTIFY (RFC 1996): the allow list and the NOTIFY
// targets parsed from the command line's text, and DNSNotifier against a secondary
// played by a kernel UDP socket (its retries, an answer ending them, giving up).

import OasisDNS
import OasisLoop
import OasisNet
import OasisServices
import OasisTestSupport
import OasisWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct TransferAllowListTests {
    @Test func addressesAndNetworksMatchWhatTheyCover() throws {
        let list = try TransferAllowList(parsing: ["127.0.0.0/8, 192.0.2.7", "198.51.100.0/24"])
        #expect(list.contains(IPv4Address(127, 0, 0, 1)))
        #expect(list.contains(IPv4Address(127, 255, 0, 9)))
        #expect(list.contains(IPv4Address(192, 0, 2, 7)))
        #expect(!list.contains(IPv4Address(192, 0, 2, 8)))
        #expect(list.contains(IPv4Address(198, 51, 100, 200)))
        #expect(!list.contains(IPv4Address(10, 0, 0, 1)))
        #expect(!list.isEmpty)
        #expect(try TransferAllowList(parsing: []).isEmpty)
        #expect(try TransferAllowList(parsing: ["0.0.0.0/0"]).contains(IPv4Address(10, 1, 2, 3)))
    }

    @Test func ipv6EntriesAreKeptButMatchNothing() throws {
        let list = try TransferAllowList(parsing: ["::1,2001:db8::/32", "127.0.0.1"])
        #expect(list.ignoredIPv6 == ["::1", "2001:db8::/32"])
        #expect(list.networks.count == 1)
    }

    @Test func malformedEntriesAreTypedErrors() {
        for text in [
            "", "127.0.0.1,", "1.2.3.4/33", "1.2.3", "256.0.0.1", "010.0.0.1", "example.com",
            "::g", "2001:db8::/129", "1.2.3.4/", "1.2.3.4/08",
        ] {
            #expect(throws: DNSPrimaryConfigurationError.self) {
                try TransferAllowList(parsing: [text])
            }
        }
    }

    @Test func notifyTargetsTakeAPortOr53() throws {
        let targets = try notifyTargets(parsing: ["127.0.0.1:5301,192.0.2.8", "10.0.0.1:53"])
        #expect(
            targets == [
                DatagramEndpoint(address: IPv4Address(127, 0, 0, 1), port: 5301),
                DatagramEndpoint(address: IPv4Address(192, 0, 2, 8), port: 53),
                DatagramEndpoint(address: IPv4Address(10, 0, 0, 1), port: 53),
            ])
        for text in [
            "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "::1", "host:53", "1.2.3.4:+5",
        ] {
            #expect(throws: DNSPrimaryConfigurationError.badNotifyTarget(text)) {
                try notifyTargets(parsing: [text])
            }
        }
    }

    @Test func notifyTargetsAreLimited() throws {
        let many = (1...65).map { "127.0.0.1:\(10_000 + $0)" }
        #expect(try notifyTargets(parsing: Array(many[..<64])).count == 64)
        #expect(throws: DNSPrimaryConfigurationError.tooManyNotifyTargets(65)) {
            try notifyTargets(parsing: [
                many[..<30].joined(separator: ","), many[30...].joined(separator: ","),
            ])
        }
    }
}

/// A kernel UDP socket on 127.0.0.1 and its port: the secondary.
private func secondarySocket() throws -> (CInt, UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var address = socketAddress("127.0.0.1", 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard fd >= 0, bound else { throw DatagramError.system(operation: "bind", errno: errno) }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// The next datagram on `fd` within `milliseconds`, and where it came from.
private func receive(_ fd: CInt, milliseconds: Int32) -> ([UInt8], sockaddr_in)? {
    guard waitReadable(fd, milliseconds: milliseconds) else { return nil }
    var buffer = [UInt8](repeating: 0, count: 2048)
    var source = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let count = withUnsafeMutablePointer(to: &source) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            recvfrom(fd, &buffer, buffer.count, 0, $0, &length)
        }
    }
    return count > 0 ? (Array(buffer[..<count]), source) : nil
}

@Suite(.serialized) struct DNSNotifierTests {
    @Test func notifyIsRetriedUntilTheSecondaryAnswers() throws {
        let loop = try EventLoop()
        let (secondary, port) = try secondarySocket()
        defer { Glibc.close(secondary) }
        let sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        defer { sockets.close() }
        let notifier = try DNSNotifier(
            service: sockets, loop: loop,
            targets: [DatagramEndpoint(address: IPv4Address(127, 0, 0, 1), port: port)],
            attempts: 5, interval: .milliseconds(100))
        defer { notifier.close() }
        let zone = try DomainName(parsing: "Example.test.")
        notifier.notify(zone)
        let (first, _) = try #require(receive(secondary, milliseconds: 1000))
        // QR 0, opcode 4, AA; one question: the zone's SOA, class IN.
        #expect(first[2] == 0x24 && first[3] == 0)
        #expect(Array(first[4..<12]) == [0, 1, 0, 0, 0, 0, 0, 0])
        #expect(Array(first[12...]) == zone.wire + [0, 6, 0, 1])
        // Not answered: sent again after the interval, with the same ID.
        _ = try loop.run(until: loop.sleep(.milliseconds(150)))
        let (second, source) = try #require(receive(secondary, milliseconds: 1000))
        #expect(second == first)
        var answer = second
        answer[2] |= 0x80
        var target = source
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(
                    secondary, answer, answer.count, 0, $0,
                    socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        _ = try loop.run(until: loop.sleep(.milliseconds(500)))
        #expect(receive(secondary, milliseconds: 0) == nil, "sent again after the answer")
        #expect(notifier.statistics.sent == 2)
        #expect(notifier.statistics.answered == 1)
        #expect(notifier.statistics.failed == 0)
    }

    @Test func anUnansweredNotifyIsGivenUpAfterItsTries() throws {
        let loop = try EventLoop()
        let (secondary, port) = try secondarySocket()
        defer { Glibc.close(secondary) }
        let sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        defer { sockets.close() }
        let notifier = try DNSNotifier(
            service: sockets, loop: loop,
            targets: [DatagramEndpoint(address: IPv4Address(127, 0, 0, 1), port: port)],
            attempts: 3, interval: .milliseconds(50))
        defer { notifier.close() }
        // An answer from elsewhere (another port) with the right ID is ignored.
        let (stranger, _) = try secondarySocket()
        defer { Glibc.close(stranger) }
        let zone = try DomainName(parsing: "example.test.")
        notifier.notify(zone)
        let (first, source) = try #require(receive(secondary, milliseconds: 1000))
        var answer = first
        answer[2] |= 0x80
        var target = source
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(
                    stranger, answer, answer.count, 0, $0,
                    socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        _ = try loop.run(until: loop.sleep(.milliseconds(400)))
        var received = 1
        while receive(secondary, milliseconds: 0) != nil { received += 1 }
        #expect(received == 3)
        #expect(notifier.statistics.sent == 3)
        #expect(notifier.statistics.answered == 0)
        #expect(notifier.statistics.failed == 1)
    }

    /// A clock bound, generous for a debug build on a busy machine: what it catches is
    /// work quadratic in zones × secondaries (minutes), not a few percent.
    static func elapsed(_ body: () throws -> Void) rethrows -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        try body()
        return clock.now - start
    }

    @Test func manyZonesTimesSecondariesStartPromptly() throws {
        let loop = try EventLoop()
        var secondaries: [CInt] = []
        defer { for fd in secondaries { Glibc.close(fd) } }
        var targets: [DatagramEndpoint] = []
        for _ in 0..<3 {
            let (fd, port) = try secondarySocket()
            secondaries.append(fd)
            targets.append(DatagramEndpoint(address: IPv4Address(127, 0, 0, 1), port: port))
        }
        let sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        defer { sockets.close() }
        let notifier = try DNSNotifier(
            service: sockets, loop: loop, targets: targets, attempts: 2, interval: .seconds(60))
        defer { notifier.close() }
        let zones = try (0..<3000).map { try DomainName(parsing: "z\($0).test.") }
        let time = DNSNotifierTests.elapsed {
            for zone in zones { notifier.notify(zone) }
            // Again: each supersedes its own, found by (zone, target), not by a scan.
            for zone in zones { notifier.notify(zone) }
        }
        #expect(time < .seconds(10), "6000 × 3 notifications took \(time)")
        #expect(notifier.pendingCount == 9000)
        #expect(notifier.statistics.sent == 18_000)
        #expect(notifier.statistics.dropped == 0)
    }

    @Test func pendingNotificationsAreBoundedAndIDsAlwaysFound() throws {
        let loop = try EventLoop()
        let sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        defer { sockets.close() }
        // More targets than message IDs (closed loopback ports: nobody answers), with
        // at most 1000 pending: the oldest give way, and every ID search ends.
        var targets: [DatagramEndpoint] = []
        for index in 0..<65_537 {
            let host = UInt8(1 + index / 60_000)
            let port = UInt16(1000 + index % 60_000)
            targets.append(DatagramEndpoint(address: IPv4Address(127, 0, 0, host), port: port))
        }
        let notifier = try DNSNotifier(
            service: sockets, loop: loop, targets: targets, attempts: 1, interval: .seconds(60),
            maximumPending: 1000)
        defer { notifier.close() }
        let time = try DNSNotifierTests.elapsed {
            notifier.notify(try DomainName(parsing: "z.test."))
        }
        #expect(time < .seconds(30), "took \(time)")
        #expect(notifier.pendingCount == 1000)
        #expect(notifier.statistics.sent == 65_537)
        #expect(notifier.statistics.dropped == 65_537 - 1000)
    }

    @Test func aSecondaryUnreachableFromOurAddressIsGivenUpAtOnce() throws {
        let loop = try EventLoop()
        let sockets = SocketDatagrams(address: IPv4Address(127, 0, 0, 1), on: loop)
        defer { sockets.close() }
        // From 127.0.0.1 nothing off the host can be reached (EINVAL, or ENETUNREACH).
        let notifier = try DNSNotifier(
            service: sockets, loop: loop,
            targets: [DatagramEndpoint(address: IPv4Address(192, 0, 2, 1), port: 53)],
            attempts: 5, interval: .milliseconds(10))
        defer { notifier.close() }
        notifier.notify(try DomainName(parsing: "example.test."))
        _ = try loop.run(until: loop.sleep(.milliseconds(100)))
        #expect(notifier.statistics.sent == 0)
        #expect(notifier.statistics.dropped == 1)
        #expect(notifier.pendingCount == 0)
    }
}
