// Issue 19, item 4: `oasis dns` over TCP under a slow-connection attack, as the probe
// ran it: hundreds of connections dribbling a query a byte at a time and thousands of
// idle ones, reconnected as the server closes them, from many loopback addresses,
// while a fresh client from another address asks a query now and then. Every fresh
// query must be answered promptly. NSD, where installed, faces the same attack beside
// us, and what it did is printed.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The attack and the probes, in Python: `port`, seconds. Prints the probes' outcome:
/// `answered A of P, slowest S ms`, and what the attack held.
let slowConnectionAttack = """
    import socket, struct, sys, time, resource, errno
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    SLOW, IDLE = 200, 2000

    def query(ident):
        name = b''.join(bytes([len(p)]) + p for p in b'www.example.test'.split(b'.')) + b'\\0'
        message = struct.pack('!HHHHHH', ident, 0, 1, 0, 0, 0) + name + struct.pack('!HH', 1, 1)
        return struct.pack('!H', len(message)) + message

    def open_from(source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((source, 0))
        s.connect_ex(('127.0.0.1', port))
        return s

    def closed(s):
        try:
            return s.recv(1, socket.MSG_DONTWAIT) == b''
        except BlockingIOError:
            return False
        except OSError as error:
            return error.errno not in (errno.EAGAIN, errno.ENOTCONN)

    # The slow ones come from 10 addresses, the idle ones from 40: per-address limits
    # alone do not stop them.
    slow_sources = ['127.0.1.%d' % (1 + i % 10) for i in range(SLOW)]
    idle_sources = ['127.0.2.%d' % (1 + i % 40) for i in range(IDLE)]
    slow = [[open_from(source), 0] for source in slow_sources]
    idle = [open_from(source) for source in idle_sources]
    dribble = query(4242)[:-1]
    reconnects = 0
    probes, answered, slowest = 0, 0, 0.0
    start = time.time()
    next_byte = start
    next_probe = start + 1.0
    while time.time() - start < seconds:
        now = time.time()
        if now >= next_byte:
            # One byte of a query on each slow connection (never its last), every second;
            # a closed one is opened again, as an attacker would.
            for entry in slow:
                if closed(entry[0]):
                    entry[0].close()
                    entry[0], entry[1] = open_from(slow_sources[0]), 0
                    reconnects += 1
                    continue
                try:
                    entry[0].send(dribble[entry[1] % len(dribble):][:1])
                    entry[1] += 1
                except OSError:
                    pass
            for index, s in enumerate(idle):
                if closed(s):
                    s.close()
                    idle[index] = open_from(idle_sources[index])
                    reconnects += 1
            next_byte = now + 1.0
        if now >= next_probe:
            probes += 1
            began = time.time()
            try:
                client = socket.create_connection(('127.0.0.1', port), timeout=3,
                                                  source_address=('127.0.0.1', 0))
                client.sendall(query(probes))
                got = b''
                while len(got) < 2 or len(got) < 2 + struct.unpack('!H', got[:2])[0]:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if len(got) >= 4 and struct.unpack('!H', got[2:4])[0] == probes:
                    answered += 1
                    slowest = max(slowest, time.time() - began)
                client.close()
            except OSError:
                slowest = max(slowest, time.time() - began)
            next_probe = time.time() + 0.5
        time.sleep(0.02)
    print('answered %d of %d, slowest %d ms, reconnects %d'
          % (answered, probes, slowest * 1000, reconnects))
    """

/// Runs the attack for `seconds` against the server on 127.0.0.1:`port`; the
/// probes' (answered, asked, slowest ms) and the line printed.
func runSlowConnectionAttack(port: UInt16, seconds: Int) throws -> (Int, Int, Int, String) {
    let result = try run(["python3", "-c", slowConnectionAttack, "\(port)", "\(seconds)"])
    let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
    let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
    guard result.status == 0, numbers.count >= 3 else {
        Issue.record("the attack failed: \(result.output) \(result.errorOutput)")
        return (0, 1, 0, line)
    }
    return (numbers[0], numbers[1], numbers[2], line)
}

// In DNSServerTests' serialized suite: it shares its ports.
extension DNSServerTests {
    /// 200 connections dribbling a byte a second and 2 000 idle ones, from 50
    /// addresses, reconnecting as they are closed, for 8 s: every fresh query (two a
    /// second, from 127.0.0.1) is answered, within 2.5 s. Before, every slot was held
    /// and the fresh queries waited in the backlog until they timed out.
    @Test func freshQueriesAreAnsweredDuringASlowConnectionAttack() throws {
        guard getuid() == 0 else { try skip("slow-connection attack", "needs root (rlimits)") }
        try withDNSOnSockets("freshQueriesAreAnsweredDuringASlowConnectionAttack", offset: 1) {
            port, folder in
            let (answered, asked, slowest, line) = try runSlowConnectionAttack(
                port: port, seconds: 8)
            print("slow-connection attack on oasis dns: \(line)")
            #expect(asked >= 10 && answered == asked, "\(line)")
            // Well under the probes' own timeout: the full suite's load once took one to
            // 1 042 ms; held in the backlog, they took the whole timeout.
            #expect(slowest < 2500, "\(line)")
            // NSD beside us, the same attack (printed, not judged).
            guard isInstalled("nsd") else {
                print("slow-connection attack: nsd is not installed; no comparison")
                return
            }
            let nsdPort = testPort(3)
            let nsd = try NSDProcess(
                zones: [
                    ("example.test.", "example.test.zone"), ("other.test.", "other.test.zone"),
                ],
                folder: folder, port: nsdPort)
            defer { nsd.stop() }
            guard nsd.waitUntilReady(probe: "example.test") else {
                print("slow-connection attack: NSD did not start; no comparison")
                return
            }
            let (_, _, _, nsdLine) = try runSlowConnectionAttack(port: nsdPort, seconds: 8)
            print("slow-connection attack on NSD: \(nsdLine)")
        }
    }
}

extension DNSServerTests {
    /// Issue 19, item 4: a query must arrive whole within the message timeout, however
    /// often its bytes come: a client sending a byte every 0.1 s is closed after 0.5 s
    /// though the idle timeout is 30 s.
    @Test func aQueryMustArriveWithinTheMessageTimeout() throws {
        try withDNSOnSockets(
            "aQueryMustArriveWithinTheMessageTimeout", offset: 3,
            extraArguments: ["--tcp-idle-timeout", "30", "--tcp-message-timeout", "0.5"]
        ) { port, _ in
            let valid = TCPClient.framed(dnsQuery("www.example.test", type: 1, id: 11))
            guard let slow = TCPClient(port: port) else {
                Issue.record("no connection")
                return
            }
            let started = ContinuousClock.now
            var closedAfter: Duration? = nil
            for byte in valid.dropLast() where ContinuousClock.now - started < .seconds(5) {
                _ = slow.send([byte])
                usleep(100_000)
                var probe: UInt8 = 0
                let got = recv(slow.fd, &probe, 1, Int32(MSG_DONTWAIT))
                if got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    closedAfter = ContinuousClock.now - started
                    break
                }
            }
            #expect(
                closedAfter != nil && closedAfter! < .seconds(2),
                "\(String(describing: closedAfter))")
            // A query sent whole on another connection is answered.
            let next = TCPClient(port: port)
            #expect(next?.send(valid) == true)
            #expect(next?.readMessage().flatMap(AnswerHeader.init)?.id == 11)
        }
    }

    /// Issue 19, item 4: one source address holds at most its share of the slots; its
    /// further connections are refused while another address is served.
    @Test func oneSourceAddressHoldsAtMostItsShare() throws {
        try withDNSOnSockets(
            "oneSourceAddressHoldsAtMostItsShare", offset: 1,
            extraArguments: ["--tcp-connections", "8", "--tcp-connections-per-source", "2"]
        ) { port, _ in
            let script = """
                import socket, struct, sys, time
                port = int(sys.argv[1])
                name = b''.join(bytes([len(p)]) + p for p in b'www.example.test'.split(b'.')) + b'\\0'
                message = struct.pack('!HHHHHH', 5, 0, 1, 0, 0, 0) + name + struct.pack('!HH', 1, 1)
                query = struct.pack('!H', len(message)) + message
                def ask(source, keep):
                    try:
                        # A refused connection may be reset before connect returns.
                        s = socket.create_connection(('127.0.0.1', port), timeout=2,
                                                     source_address=(source, 0))
                        keep.append(s)
                        s.sendall(query)
                        return len(s.recv(4096)) > 2
                    except OSError:
                        return False
                held = []
                crowd = [ask('127.0.3.1', held) for _ in range(4)]
                other = ask('127.0.3.2', held)
                print('crowd', crowd, 'other', other)
                """
            let result = try run(["python3", "-c", script, "\(port)"])
            #expect(
                result.output.contains("crowd [True, True, False, False] other True"),
                "\(result.output) \(result.errorOutput)")
        }
    }
}
