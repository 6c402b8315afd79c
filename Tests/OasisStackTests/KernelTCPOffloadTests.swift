// TCP segmentation and receive offloads against the Linux kernel: `oasis stack
// --offload` on a TAP hands the kernel 64 KiB segments for it to cut (TSO) and takes
// the kernel's own large segments whole (the TAP's TSO, GRO), and the transfers come
// out byte for byte as without.

import Foundation
import OasisTestSupport
import Testing

/// Python that captures TCP frames on `interface` (tcpdump, 96 bytes of each) while
/// `body` runs, then reads the pcap's original lengths by source address:
/// `sizes['192.0.2.2']` are the frames the stack wrote, `sizes['192.0.2.1']` the
/// kernel's.
func capturing(_ body: String, packets: Int = 3000, interface: String = "tap0") -> String {
    """
    import socket, os, hashlib, subprocess, tempfile, time, struct, threading
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, 'capture.pcap')
    cap = subprocess.Popen(['tcpdump', '-i', '\(interface)', '-n', '-s', '96', '-c', '\(packets)',
                            '-Z', 'root', '-U', '-w', path, 'tcp'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    \(body)
    time.sleep(0.5)
    # SIGKILL: the signal mask this script inherits may block SIGTERM in tcpdump; -U
    # has written every frame by now.
    cap.kill()
    cap.wait()
    sizes = {'192.0.2.1': [], '192.0.2.2': []}
    with open(path, 'rb') as f:
        data = f.read()
    at = 24
    while at + 16 <= len(data):
        caplen, origlen = struct.unpack('<II', data[at + 8:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        if len(frame) >= 34:
            sizes.setdefault(socket.inet_ntoa(frame[26:30]), []).append(origlen)
        at += 16 + caplen
    os.remove(path)
    os.rmdir(folder)
    def largest(address):
        return max(sizes[address], default=0)
    """
}

/// The counters `oasis` printed on exit: segmented frames sent, coalesced received.
func offloadCounts(_ log: String) -> (segmented: Int, coalesced: Int) {
    func number(after marker: String) -> Int {
        guard let range = log.range(of: marker) else { return 0 }
        return Int(log[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }
    return (number(after: "tx segmented "), number(after: "rx coalesced "))
}

@Suite(.serialized) struct KernelTCPOffloadTests {
    /// 256 MiB of random bytes through the echo service with offloads on, both ways at
    /// once, compared by SHA-256; the stack sent segments for the kernel to cut and took
    /// coalesced ones.
    @Test func echo256MiBWithOffloads() throws {
        var log = ""
        try withStackOnTap("echo256MiBWithOffloads", extraArguments: ["--offload"], log: &log) {
            namespace in
            try expectKernelTCP(
                namespace,
                """
                import socket, os, hashlib, threading
                block = os.urandom(16 << 20)
                sent = hashlib.sha256()
                s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                def send():
                    for i in range(16):
                        chunk = block[i * 4099:] + block[:i * 4099]
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
                """, printing: "got 268435456 same True")
        }
        let counts = offloadCounts(log)
        #expect(counts.segmented > 0, "\(log)")
        #expect(counts.coalesced > 0, "\(log)")
        #expect(log.contains("closed 1 normally"), "\(log)")
    }

    /// Chargen with offloads: 256 MiB of RFC 864's pattern, hashed against the pattern
    /// made here; on tap0 the kernel receives frames far larger than the MTU from the
    /// stack (64 KiB segments it never needs to cut, being their destination).
    @Test func chargen256MiBLeavesInLargeFrames() throws {
        var log = ""
        try withStackOnTap(
            "chargen256MiBLeavesInLargeFrames", extraArguments: ["--offload"], log: &log
        ) { namespace in
            try expectKernelTCP(
                namespace,
                capturing(
                    """
                    chars = bytes(range(32, 127))
                    period = b''.join(
                        bytes(chars[(line + c) % 95] for c in range(72)) + b'\\r\\n' for line in range(95))
                    want = 256 << 20
                    s = socket.create_connection(('192.0.2.2', 19), timeout=30)
                    h = hashlib.sha256()
                    got = 0
                    buf = bytearray(1 << 20)
                    view = memoryview(buf)
                    while got < want:
                        n = s.recv_into(view[:min(len(buf), want - got)])
                        if not n:
                            break
                        h.update(view[:n])
                        got += n
                    s.close()
                    expected = hashlib.sha256()
                    repeated = period * ((1 << 20) // len(period) + 2)
                    done = 0
                    while done < want:
                        offset = done % len(period)
                        piece = repeated[offset:offset + min(1 << 20, want - done)]
                        expected.update(piece)
                        done += len(piece)
                    print('read', got, 'pattern', h.hexdigest() == expected.hexdigest())
                    """)
                        + """

                        print('large frames from oasis', largest('192.0.2.2') > 30000)
                        """, printing: "read 268435456 pattern True\nlarge frames from oasis True")
        }
        #expect(log.contains("offloads:"), "\(log)")
        #expect(offloadCounts(log).segmented > 0, "\(log)")
    }

    /// Discard with offloads: 256 MiB from the kernel, whose TCP sends segments of up
    /// to 64 KiB to a TAP that offers TSO; the stack takes them whole (coalesced) and,
    /// once the kernel has finished, closes: the kernel reads the end of the stream.
    @Test func discard256MiBArrivesCoalesced() throws {
        var log = ""
        try withStackOnTap(
            "discard256MiBArrivesCoalesced", extraArguments: ["--offload"], log: &log
        ) { namespace in
            try expectKernelTCP(
                namespace,
                capturing(
                    """
                    s = socket.create_connection(('192.0.2.2', 9), timeout=30)
                    block = os.urandom(1 << 20)
                    for _ in range(256):
                        s.sendall(block)
                    s.shutdown(socket.SHUT_WR)
                    print('end', s.recv(10) == b'')
                    """)
                        + """

                        print('large frames from the kernel', largest('192.0.2.1') > 30000)
                        """, printing: "end True\nlarge frames from the kernel True")
        }
        #expect(offloadCounts(log).coalesced > 0, "\(log)")
        #expect(log.contains("closed 1 normally"), "\(log)")
    }

    /// The large frames are there, both ways, as the capture on tap0 sees them.
    @Test func captureShowsLargeFramesBothWays() throws {
        try withStackOnTap("captureShowsLargeFramesBothWays", extraArguments: ["--offload"]) {
            namespace in
            try expectKernelTCP(
                namespace,
                capturing(
                    """
                    s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                    block = os.urandom(32 << 20)
                    def send():
                        s.sendall(block)
                        s.shutdown(socket.SHUT_WR)
                    sender = threading.Thread(target=send)
                    sender.start()
                    got = 0
                    while True:
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            break
                        got += len(chunk)
                    sender.join()
                    print('echoed', got)
                    """)
                        + """

                        print('both large', largest('192.0.2.2') > 30000 and largest('192.0.2.1') > 30000)
                        print('oasis', largest('192.0.2.2'), 'kernel', largest('192.0.2.1'))
                        """, printing: "echoed 33554432\nboth large True")
        }
    }

    /// The kernel cuts what the stack hands it: routed on through a veth whose TSO and
    /// GSO are off, to a second namespace, the stack's 64 KiB segments leave as
    /// MTU-sized ones that the far side's TCP takes (checksums, sequence numbers and
    /// all): 64 MiB of chargen arrive as the pattern.
    @Test func theKernelCutsOurSegmentsWhenItForwardsThem() throws {
        var log = ""
        try withStackOnTap(
            "theKernelCutsOurSegmentsWhenItForwardsThem",
            extraArguments: ["--offload", "--gateway", "192.0.2.1"], log: &log
        ) { namespace in
            let far = try TestNamespace.create()
            defer { far.remove() }
            try far.disableIPv6()
            try namespace.runChecked([
                "ip", "link", "add", "fa", "type", "veth", "peer", "name", "fb", "netns", far.name,
            ])
            try namespace.runChecked(["ip", "addr", "add", "198.51.100.1/24", "dev", "fa"])
            try namespace.runChecked(["ip", "link", "set", "fa", "up"])
            try namespace.runChecked(["ethtool", "-K", "fa", "tso", "off", "gso", "off"])
            try namespace.runChecked(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try far.runChecked(["ip", "addr", "add", "198.51.100.2/24", "dev", "fb"])
            try far.runChecked(["ip", "link", "set", "fb", "up"])
            try far.runChecked(["ip", "link", "set", "lo", "up"])
            try far.runChecked(["ip", "route", "add", "default", "via", "198.51.100.1"])
            let before = try tapReceived(namespace)
            try expectKernelTCP(
                far,
                capturing(
                    """
                    chars = bytes(range(32, 127))
                    period = b''.join(
                        bytes(chars[(line + c) % 95] for c in range(72)) + b'\\r\\n' for line in range(95))
                    want = 64 << 20
                    s = socket.create_connection(('192.0.2.2', 19), timeout=30)
                    buf = bytearray()
                    while len(buf) < want:
                        chunk = s.recv(min(1 << 20, want - len(buf)))
                        if not chunk:
                            break
                        buf += chunk
                    s.close()
                    whole = (period * (want // len(period) + 2))[:len(buf)]
                    print('read', len(buf) == want, 'pattern', bytes(buf) == whole)
                    """, interface: "fb")
                        + """

                        print('cut to the mtu', 0 < largest('192.0.2.2') <= 1514)
                        """, printing: "read True pattern True\ncut to the mtu True")
            // What the stack wrote into the TAP: far fewer, far larger frames.
            let after = try tapReceived(namespace)
            let frames = after.packets - before.packets
            let bytes = after.bytes - before.bytes
            #expect(frames > 0 && bytes / frames > 8000, "\(frames) frames, \(bytes) bytes")
        }
        #expect(offloadCounts(log).segmented > 0, "\(log)")
    }

    /// A virtio header without offloads (checksums only) still carries TCP as before:
    /// MTU-sized frames both ways, nothing segmented or coalesced.
    @Test func vnetHeaderWithoutOffloads() throws {
        var log = ""
        try withStackOnTap(
            "vnetHeaderWithoutOffloads", extraArguments: ["--vnet-header"], log: &log
        ) { namespace in
            try expectKernelTCP(
                namespace,
                capturing(
                    """
                    s = socket.create_connection(('192.0.2.2', 7), timeout=30)
                    block = os.urandom(16 << 20)
                    def send():
                        s.sendall(block)
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
                    print('same', h.hexdigest() == hashlib.sha256(block).hexdigest())
                    """)
                        + """

                        print('mtu-sized', largest('192.0.2.2') <= 1514 and largest('192.0.2.1') <= 1514)
                        """, printing: "same True\nmtu-sized True")
        }
        #expect(!log.contains("offloads:"), "\(log)")
    }
}

/// What the kernel received on tap0 (`/sys/class/net/tap0/statistics`, read in the
/// namespace): the frames the stack wrote, as the kernel took them.
func tapReceived(_ namespace: TestNamespace) throws -> (packets: Int, bytes: Int) {
    let result = try namespace.runChecked([
        "cat", "/sys/class/net/tap0/statistics/rx_packets",
        "/sys/class/net/tap0/statistics/rx_bytes",
    ])
    let numbers = result.output.split(separator: "\n").compactMap { Int($0) }
    guard numbers.count == 2 else { return (0, 0) }
    return (numbers[0], numbers[1])
}
