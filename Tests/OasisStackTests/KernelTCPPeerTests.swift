// The Oasis stack's TCP against the Linux kernel's: `oasis stack` on a TAP in a
// namespace the test creates serves echo (7), discard (9) and chargen (19), and the
// kernel's own sockets (Python inside the namespace) connect, transfer, half-close
// and reset.

import Foundation
import OasisTestSupport
import Testing

/// Runs `script` (Python 3, the kernel's TCP sockets) in the namespace; expects exit 0
/// and `marker` in what it prints.
func expectKernelTCP(
    _ namespace: TestNamespace, _ script: String, printing marker: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let result = try python(namespace, script)
    #expect(
        result.status == 0, "\(result.output) \(result.errorOutput)", sourceLocation: sourceLocation
    )
    #expect(
        result.output.contains(marker), "\(result.output) \(result.errorOutput)",
        sourceLocation: sourceLocation)
}

/// Drops 5 % of the TCP frames each way on the kernel's side of the TAP and
/// duplicates 1 % of those the kernel sends (nftables in the netdev family: this
/// kernel has no netem).
func impairKernelSide(_ namespace: TestNamespace, lossPercent: Int = 5, duplicatePercent: Int = 1)
    throws
{
    let rules = """
        table netdev impair {
          chain in {
            type filter hook ingress device "tap0" priority 0;
            ip protocol tcp numgen random mod 100 < \(lossPercent) drop
          }
          chain out {
            type filter hook egress device "tap0" priority 0;
            ip protocol tcp numgen random mod 100 < \(lossPercent) drop
            ip protocol tcp numgen random mod 100 < \(duplicatePercent) dup to "tap0"
          }
        }
        """
    let path = "/tmp/oasis-impair-\(getpid()).nft"
    try rules.write(toFile: path, atomically: true, encoding: .utf8)
    defer { unlink(path) }
    try namespace.runChecked(["nft", "-f", path])
}

@Suite(.serialized) struct KernelTCPPeerTests {
    /// Under 5 % loss each way and 1 % duplication on the kernel's side: 256 MiB to
    /// discard, 32 MiB from chargen checked against the pattern, 16 MiB echoed and
    /// compared by SHA-256.
    @Test func transfersSurviveLossAndDuplication() throws {
        var log = ""
        try withStackOnTap("transfersSurviveLossAndDuplication", log: &log) { namespace in
            try impairKernelSide(namespace)
            try expectKernelTCP(
                namespace,
                """
                import socket, os, hashlib, threading
                s = socket.create_connection(('192.0.2.2', 9), timeout=30)
                block = os.urandom(1 << 20)
                for _ in range(256):
                    s.sendall(block)
                s.shutdown(socket.SHUT_WR)
                print('discard end', s.recv(10) == b'')
                chars = bytes(range(32, 127))
                period = b''.join(
                    bytes(chars[(line + c) % 95] for c in range(72)) + b'\\r\\n' for line in range(95))
                s = socket.create_connection(('192.0.2.2', 19), timeout=30)
                buf = bytearray()
                while len(buf) < 32 << 20:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    buf += chunk
                s.close()
                whole = (period * (len(buf) // len(period) + 1))[:len(buf)]
                print('chargen', len(buf) >= 32 << 20, bytes(buf) == whole)
                data = os.urandom(16 << 20)
                s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                def send():
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                h = hashlib.sha256()
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                sender.join()
                print('echo', h.hexdigest() == hashlib.sha256(data).hexdigest())
                """, printing: "discard end True\nchargen True True\necho True")
        }
        // Chargen ends by the kernel's reset (it closes with data unread); none timed
        // out (the echo may still wait for its last ACK when the stack is stopped).
        // The stack repaired losses: retransmissions are not zero.
        #expect(log.contains("1 by reset, 0 timed out"), "\(log)")
        #expect(!log.contains("retransmissions 0 "), "\(log)")
    }

    /// tshark reads a capture of a transfer under loss and duplication: no malformed
    /// segment, no checksum error, in either direction.
    @Test func aLossyTransferCapturedIsWellFormedForTshark() throws {
        guard isInstalled("tshark") else { try skip("lossy capture", "tshark is not installed") }
        let path = "/tmp/oasis-lossy-\(getpid()).pcap"
        defer { unlink(path) }
        try withStackOnTap(
            "aLossyTransferCapturedIsWellFormedForTshark", extraArguments: ["--capture", path]
        ) { namespace in
            try impairKernelSide(namespace)
            try expectKernelTCP(
                namespace,
                """
                import socket, os, threading
                data = os.urandom(4 << 20)
                s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
                got = b''
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += chunk
                print('echo', got == data)
                """, printing: "echo True")
        }
        let segments = try run([
            "tshark", "-r", path, "-Y", "tcp", "-T", "fields", "-e", "frame.number",
        ])
        let count = segments.output.split(separator: "\n").count
        #expect(count > 2000, "\(count) TCP frames captured")
        // The kernel's checksum now and then comes out as 0xFFFF, one's complement's other
        // zero: equal by the arithmetic, and tshark calls it an error (RFC 1624). Our own
        // segments are held to that too; the kernel's are not.
        let bad = try run([
            "tshark", "-r", path, "-o", "tcp.check_checksum:TRUE", "-Y",
            "_ws.malformed || _ws.expert.severity == error"
                + " || (tcp.checksum.status == 0 && !(ip.src == 192.0.2.1 && tcp.checksum.ffff))",
        ])
        #expect(bad.output.isEmpty, "\(bad.output.prefix(2000))")
        let retransmitted = try run([
            "tshark", "-r", path, "-Y",
            "tcp.analysis.retransmission || tcp.analysis.fast_retransmission",
            "-T", "fields", "-e", "frame.number",
        ])
        #expect(!retransmitted.output.isEmpty, "the capture shows the repairs")
    }

    /// 1 GiB of random bytes through the echo service while they are being sent (both
    /// directions at once, backpressure both ways), compared by SHA-256; then the
    /// kernel half-closes and the echo, having sent everything back, closes too.
    @Test func echoAGibibyteAndHalfClose() throws {
        var log = ""
        try withStackOnTap("echoAGibibyteAndHalfClose", log: &log) { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket, os, hashlib, threading
                block = os.urandom(16 << 20)
                blocks = 64
                sent = hashlib.sha256()
                s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                def send():
                    for i in range(blocks):
                        # Each block rotated differently: no two alike.
                        chunk = block[i * 4096:] + block[:i * 4096]
                        sent.update(chunk)
                        s.sendall(chunk)
                    s.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                h = hashlib.sha256()
                got = 0
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
                    got += len(chunk)
                sender.join()
                print('got', got, 'same', h.hexdigest() == sent.hexdigest())
                """, printing: "got 1073741824 same True")
        }
        #expect(log.contains("closed 1 normally"), "\(log)")
    }

    /// The character generator's stream is RFC 864's pattern, line after line.
    @Test func chargenStreamsThePattern() throws {
        var log = ""
        try withStackOnTap("chargenStreamsThePattern", log: &log) { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket
                chars = bytes(range(32, 127))
                period = b''.join(
                    bytes(chars[(line + c) % 95] for c in range(72)) + b'\\r\\n' for line in range(95))
                s = socket.create_connection(('192.0.2.2', 19), timeout=30)
                want = 16 << 20
                buf = bytearray()
                while len(buf) < want:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    buf += chunk
                s.close()
                whole = (period * (len(buf) // len(period) + 1))[:len(buf)]
                print('read', len(buf) >= want, 'pattern', bytes(buf) == whole)
                """, printing: "read True pattern True")
        }
    }

    /// Discard takes 128 MiB and, once the kernel has finished, closes its side: the
    /// kernel reads the end of the stream.
    @Test func discardTakesEverythingThenCloses() throws {
        try withStackOnTap("discardTakesEverythingThenCloses") { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket
                s = socket.create_connection(('192.0.2.2', 9), timeout=30)
                block = b'\\xa5' * (1 << 20)
                for _ in range(128):
                    s.sendall(block)
                s.shutdown(socket.SHUT_WR)
                print('end', s.recv(10) == b'')
                """, printing: "end True")
        }
    }

    /// A port nobody listens on answers a SYN with a reset: the kernel's connect is
    /// refused. A reset from the kernel (SO_LINGER 0) ends an established connection
    /// on our side, and the service still takes new ones.
    @Test func resetsBothWays() throws {
        var log = ""
        try withStackOnTap("resetsBothWays", log: &log) { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket, struct, time
                try:
                    socket.create_connection(('192.0.2.2', 81), timeout=5)
                    print('connected?')
                except ConnectionRefusedError:
                    print('refused')
                s = socket.create_connection(('192.0.2.2', 7), timeout=5)
                s.sendall(b'hello')
                assert s.recv(5) == b'hello'
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                s.close()
                time.sleep(0.2)
                t = socket.create_connection(('192.0.2.2', 7), timeout=5)
                t.sendall(b'again')
                print('after reset', t.recv(5))
                t.close()
                """, printing: "refused\nafter reset b'again'")
        }
        #expect(log.contains("1 by reset"), "\(log)")
    }

    /// A thousand connections open at once, each echoing its own bytes, then all closed.
    @Test func aThousandConcurrentConnections() throws {
        var log = ""
        try withStackOnTap("aThousandConcurrentConnections", log: &log) { namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket, resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
                conns = []
                for i in range(1000):
                    conns.append(socket.create_connection(('192.0.2.2', 7), timeout=10))
                for i, s in enumerate(conns):
                    s.sendall(b'%06d' % i)
                bad = 0
                for i, s in enumerate(conns):
                    got = b''
                    while len(got) < 6:
                        chunk = s.recv(6 - len(got))
                        if not chunk:
                            break
                        got += chunk
                    bad += got != b'%06d' % i
                for s in conns:
                    s.close()
                print('open', len(conns), 'bad', bad)
                """, printing: "open 1000 bad 0")
        }
        #expect(log.contains("opened 0 active, 1000 passive"), "\(log)")
    }
}
