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

@Suite(.serialized) struct KernelTCPPeerTests {
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
                whole = (period * (want // len(period) + 1))[:len(buf)]
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
