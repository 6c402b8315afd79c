// SocketStreams against the Linux kernel's own TCP on loopback: the peer is a plain
// blocking socket on a thread of its own (OasisTestSupport's KernelTCP), so every
// byte and every end of stream the tests check went through a TCP we did not write.

import Dispatch
import Glibc
import OasisLoop
import OasisTestSupport
import Testing

@testable import OasisNet

/// A service on a fresh loop, bound to 127.0.0.1.
private func service() throws -> (EventLoop, SocketStreams) {
    let loop = try EventLoop()
    return (loop, SocketStreams(address: loopback, on: loop))
}

/// Writes `bytes[sent...]` into `connection` while it takes them; returns the new
/// `sent`. Counts the writes that were cut short.
private func pump(
    _ bytes: [UInt8], from sent: Int, into connection: SocketStreams.Connection,
    chunk: Int = 100_000, cuts: inout Int
) -> Int {
    var sent = sent
    while sent < bytes.count {
        let end = min(sent + chunk, bytes.count)
        let taken = bytes.withUnsafeBytes {
            (try? connection.write(UnsafeRawBufferPointer(rebasing: $0[sent..<end]))) ?? 0
        }
        let offered = end - sent
        sent += taken
        if taken < offered {
            cuts += 1
            break
        }
    }
    return sent
}

@Suite(.serialized) struct SocketStreamsTests {

    @Test func acceptsAKernelClientAndConnectsToAKernelListener() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }

        // Our listener, the kernel's client.
        let (served, serve) = loop.makePromise(of: Void.self)
        var request: [UInt8] = []
        var server: SocketStreams.Connection?
        let listener = try tcp.listen(port: 0) { connection in
            server = connection
            connection.onReceive { input in
                request += input.read(input.count)
                guard input.isFinished else { return }
                #expect(connection.state == .inputFinished)
                #expect((try? connection.write(Array("bye".utf8))) == 3)
                connection.close()
            }
            connection.onClose { error in
                #expect(error == nil)
                serve.resolve()
            }
        }
        #expect(listener.local.address == loopback && listener.local.port != 0)
        let port = listener.local.port
        let exchange = Shared<(reply: [UInt8], errno: CInt, port: UInt16)>(([], -1, 0))
        let client = PeerThread { exchange.value = KernelTCP.ask(port: port, Array("hello".utf8)) }
        try run(loop, until: served)
        client.join()
        #expect(request == Array("hello".utf8))
        #expect(exchange.value.reply == Array("bye".utf8))
        #expect(exchange.value.errno == 0)
        #expect(server?.remote == StreamEndpoint(address: loopback, port: exchange.value.port))
        #expect(server?.local == listener.local)
        #expect(server?.state == .closed(nil))
        #expect(listener.accepted == 1)

        // Our connect, the kernel's listener: it reads to the end and answers.
        let (kernelListener, kernelPort) = KernelTCP.listener()
        let heard = Shared<[UInt8]>([])
        let peer = PeerThread {
            let fd = KernelTCP.accept(kernelListener)
            heard.value = KernelTCP.receiveAll(fd).bytes
            KernelTCP.sendAll(fd, Array("pong".utf8))
            Glibc.close(fd)
        }
        var answer: [UInt8] = []
        var connected: SocketStreams.Connection?
        let (finished, finish) = loop.makePromise(of: Void.self)
        let pending = tcp.connect(to: StreamEndpoint(address: loopback, port: kernelPort))
        pending.onSuccess { connection in
            connected = connection
            #expect((try? connection.write(Array("ping".utf8))) == 4)
            connection.shutdownWrite()
            #expect(connection.state == .outputFinished)
            connection.onReceive { input in answer += input.read(input.count) }
            connection.onClose { _ in finish.resolve() }
        }
        pending.onFailure { Issue.record("connect failed: \($0)") }
        try run(loop, until: finished)
        peer.join()
        Glibc.close(kernelListener)
        #expect(heard.value == Array("ping".utf8))
        #expect(answer == Array("pong".utf8))
        #expect(connected?.remote == StreamEndpoint(address: loopback, port: kernelPort))
        #expect(connected?.local.address == loopback)
        // Both sides finished: the connection closed by itself, normally.
        #expect(connected?.state == .closed(nil))
        #expect(tcp.openConnections == 0)
    }

    /// 8 MiB each way at once on one connection, byte for byte.
    /// The socket-like options reach the kernel's socket: read back from it.
    @Test func optionsAreTheKernelSocketsOwn() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let (kernelListener, kernelPort) = KernelTCP.listener()
        defer { Glibc.close(kernelListener) }
        let peer = PeerThread { Glibc.close(KernelTCP.accept(kernelListener)) }
        var connected: SocketStreams.Connection?
        let pending = tcp.connect(to: StreamEndpoint(address: loopback, port: kernelPort))
        pending.onResult { connected = try? $0.get() }
        try run(loop, until: pending.map { _ in () })
        peer.join()
        let connection = try #require(connected)
        #expect(connection.noDelay, "kernel sockets start with TCP_NODELAY on")
        connection.noDelay = false
        #expect(!connection.noDelay)
        // The host's default (this machine's is BBR), by its name; as ours, CUBIC.
        let host = try String(
            contentsOfFile: "/proc/sys/net/ipv4/tcp_congestion_control", encoding: .utf8)
        #expect(
            connection.congestionControlName == host.trimmingCharacters(in: .whitespacesAndNewlines)
        )
        #expect(connection.congestionControl == (host.hasPrefix("reno") ? .newReno : .cubic))
        connection.congestionControl = .newReno
        #expect(
            connection.congestionControl == .newReno && connection.congestionControlName == "reno")
        connection.congestionControl = .cubic
        #expect(connection.congestionControlName == "cubic")
        connection.keepalive = StreamKeepalive(idle: .seconds(30), interval: .seconds(5), count: 4)
        #expect(connection.keepalive?.count == 4)
        connection.keepalive = nil
        #expect(connection.keepalive == nil)
        connection.reset()
    }

    @Test func largeTransferBothWaysAtOnce() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let ours = pattern(8 << 20, seed: 1)
        let theirs = pattern(8 << 20, seed: 2)
        var received: [UInt8] = []
        received.reserveCapacity(theirs.count)
        var sent = 0
        var cuts = 0
        var closeError: StreamError?? = .none
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { connection in
            func send() {
                sent = pump(ours, from: sent, into: connection, cuts: &cuts)
                if sent == ours.count { connection.shutdownWrite() }
            }
            connection.onWritable(send)
            connection.onReceive { input in received += input.read(input.count) }
            connection.onClose { error in
                closeError = error
                finish.resolve()
            }
            send()
        }
        let port = listener.local.port
        let heard = Shared<(bytes: [UInt8], errno: CInt)>(([], -1))
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            let sender = PeerThread {
                KernelTCP.sendAll(fd, theirs)
                KernelTCP.shutdownWrite(fd)
            }
            heard.value = KernelTCP.receiveAll(fd)
            sender.join()
            Glibc.close(fd)
        }
        try run(loop, until: done)
        peer.join()
        #expect(heard.value.bytes.count == ours.count)
        #expect(heard.value.bytes == ours, "the kernel received other bytes than we sent")
        #expect(heard.value.errno == 0, "the kernel's read ended with errno \(heard.value.errno)")
        #expect(received.count == theirs.count)
        #expect(received == theirs, "we received other bytes than the kernel sent")
        #expect(closeError == .some(nil))
        // The kernel took 8 MiB in bursts: our buffer filled and writes were cut short.
        #expect(cuts > 0)
    }

    /// A kernel peer that does not read: our writes are cut short and stay so; once
    /// it reads, the writable notification comes and every byte arrives.
    @Test func aPeerThatDoesNotReadCutsOurWritesShortUntilItReads() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let bytes = pattern(24 << 20, seed: 3)
        // The peer's receive buffer is small and fixed (no autotuning): the kernel's
        // buffers between us fill in a few MiB.
        let (kernelListener, kernelPort) = KernelTCP.listener(receiveBuffer: 65536)
        defer { Glibc.close(kernelListener) }
        let startReading = DispatchSemaphore(value: 0)
        let heard = Shared<[UInt8]>([])
        let peer = PeerThread {
            let fd = KernelTCP.accept(kernelListener)
            startReading.wait()
            heard.value = KernelTCP.receiveAll(fd).bytes
            Glibc.close(fd)
        }

        var sent = 0
        var cuts = 0
        var writableCalls = 0
        var callsWhenStalled = -1
        var stalledAt = 0
        let (done, finish) = loop.makePromise(of: Void.self)
        var connection: SocketStreams.Connection?
        tcp.connect(to: StreamEndpoint(address: loopback, port: kernelPort)).onSuccess { c in
            connection = c
            func send() {
                sent = pump(bytes, from: sent, into: c, chunk: 65536, cuts: &cuts)
                if sent == bytes.count { c.shutdownWrite() }
            }
            c.onWritable {
                writableCalls += 1
                send()
            }
            c.onClose { _ in finish.resolve() }
            send()
        }
        // Stalled: for 300 ms nothing more was taken, and no writable notification came.
        var last = (sent: -1, calls: -1)
        var quietTicks = 0
        func watch() {
            guard callsWhenStalled < 0 else { return }
            if (sent, writableCalls) == last && sent > 0 {
                quietTicks += 1
            } else {
                quietTicks = 0
                last = (sent, writableCalls)
            }
            if quietTicks == 6 {
                callsWhenStalled = writableCalls
                stalledAt = sent
                #expect(connection?.sendQueued == connection?.sendCapacity)
                #expect(connection?.writableBytes == 0)
                startReading.signal()
                return
            }
            _ = loop.schedule(after: .milliseconds(50), watch)
        }
        watch()
        try run(loop, until: done)
        peer.join()
        #expect(cuts > 0)
        #expect(stalledAt > 0 && stalledAt < bytes.count, "stalled after \(stalledAt) bytes")
        #expect(callsWhenStalled >= 0, "the writes never stalled")
        #expect(writableCalls > callsWhenStalled, "no writable notification once the peer read")
        #expect(heard.value.count == bytes.count)
        #expect(heard.value == bytes)
    }

    /// An application that does not consume: our receive buffer fills, we stop
    /// reading, the kernel peer's window closes (its sends would block); once the
    /// application consumes, the peer's sends go through and every byte arrives.
    @Test func anApplicationThatDoesNotConsumeClosesThePeersWindowUntilItDoes() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let bytes = pattern(16 << 20, seed: 4)
        var consuming = false
        var received: [UInt8] = []
        var connection: SocketStreams.Connection?
        let (done, finish) = loop.makePromise(of: Void.self)
        let (blocked, peerBlocked) = loop.makePromise(of: Int.self)
        let listener = try tcp.listen(port: 0) { c in
            connection = c
            c.onReceive { input in
                guard consuming else { return }
                received += input.read(input.count)
                if input.isFinished { c.close() }
            }
            c.onClose { _ in finish.resolve() }
        }
        let port = listener.local.port
        let bound = LoopBound(peerBlocked, on: loop)
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            // Non-blocking sends until the kernel takes nothing more for 300 ms.
            var sent = 0
            var quietSince = DispatchTime.now()
            while DispatchTime.now().uptimeNanoseconds - quietSince.uptimeNanoseconds < 300_000_000
            {
                let n = bytes.withUnsafeBytes {
                    Glibc.send(
                        fd, $0.baseAddress! + sent, min(65536, bytes.count - sent),
                        Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
                if n > 0 {
                    sent += n
                    quietSince = DispatchTime.now()
                } else {
                    usleep(10_000)
                }
            }
            let stuckAt = sent
            loop.execute { bound.value.resolve(stuckAt) }
            // Blocking from here: these sends wait until the application consumes.
            KernelTCP.sendAll(fd, Array(bytes[sent...]))
            KernelTCP.shutdownWrite(fd)
            _ = KernelTCP.receiveAll(fd)
            Glibc.close(fd)
        }
        var stuckAt = 0
        var bufferedWhenStuck = 0
        // Once the peer is stuck, our buffer is full (allowing the loop a moment to
        // read what the kernel still held); then the application starts consuming.
        func consumeOnceFull(deadline: Duration) {
            bufferedWhenStuck = connection?.withInput { $0.count } ?? -1
            if bufferedWhenStuck < tcp.receiveCapacity && loop.now < deadline {
                _ = loop.schedule(after: .milliseconds(10)) { consumeOnceFull(deadline: deadline) }
                return
            }
            consuming = true
            connection?.withInput { input in received += input.read(input.count) }
        }
        blocked.onSuccess { sent in
            stuckAt = sent
            consumeOnceFull(deadline: loop.now + .seconds(2))
        }
        try run(loop, until: done)
        peer.join()
        #expect(stuckAt > 0 && stuckAt < bytes.count, "the peer's sends stopped at \(stuckAt)")
        // We stopped reading with our buffer full; the rest waited in the kernels.
        #expect(bufferedWhenStuck == tcp.receiveCapacity)
        #expect(received.count == bytes.count)
        #expect(received == bytes)
    }

    @Test func whenThePeerFinishesWeSeeEndOfStreamAndCanStillSend() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        var request: [UInt8] = []
        var stateAtEnd: StreamState?
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            c.onReceive { input in
                request += input.read(input.count)
                guard input.isFinished else { return }
                stateAtEnd = c.state
                // Half-closed by the peer: we still send, several writes, then close.
                for line in ["one\n", "two\n", "three\n"] {
                    #expect((try? c.write(Array(line.utf8))) == line.utf8.count)
                }
                c.close()
                #expect(c.state == .closing || c.state == .closed(nil))
            }
            c.onClose { _ in finish.resolve() }
        }
        let port = listener.local.port
        let exchange = Shared<(reply: [UInt8], errno: CInt, port: UInt16)>(([], -1, 0))
        let peer = PeerThread { exchange.value = KernelTCP.ask(port: port, Array("question".utf8)) }
        try run(loop, until: done)
        peer.join()
        #expect(request == Array("question".utf8))
        #expect(stateAtEnd == .inputFinished)
        #expect(exchange.value.reply == Array("one\ntwo\nthree\n".utf8))
        #expect(exchange.value.errno == 0)
    }

    @Test func afterWeShutDownWritingThePeerReadsEndOfStreamAndCanStillSend() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        var late: [UInt8] = []
        var writeAfterShutdown: StreamError?
        var states: [StreamState] = []
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            _ = try? c.write(Array("greeting".utf8))
            c.shutdownWrite()
            states.append(c.state)
            do {
                _ = try c.write([1])
            } catch {
                writeAfterShutdown = error as? StreamError
            }
            c.onReceive { input in
                late += input.read(input.count)
                if input.isFinished { states.append(c.state) }
            }
            c.onClose { error in
                states.append(c.state)
                #expect(error == nil)
                finish.resolve()
            }
        }
        let port = listener.local.port
        let greeting = Shared<(bytes: [UInt8], errno: CInt)>(([], -1))
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            greeting.value = KernelTCP.receiveAll(fd)  // to our end of stream
            KernelTCP.sendAll(fd, Array("still here".utf8))
            Glibc.close(fd)
        }
        try run(loop, until: done)
        peer.join()
        #expect(greeting.value.bytes == Array("greeting".utf8))
        #expect(greeting.value.errno == 0)
        #expect(late == Array("still here".utf8))
        #expect(writeAfterShutdown == .closed)
        // Output finished, then both sides done, then closed by itself.
        #expect(states.first == .outputFinished)
        #expect(states.last == .closed(nil))
    }

    @Test func closeSendsEverythingQueuedThenEndsTheStream() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let bytes = pattern(3 << 20, seed: 5)
        var sent = 0
        var cuts = 0
        var closeError: StreamError?? = .none
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            c.sendCapacity = 4 << 20  // all of it fits: close with most of it queued
            sent = pump(bytes, from: 0, into: c, chunk: bytes.count, cuts: &cuts)
            c.close()
            c.onClose { error in
                closeError = error
                finish.resolve()
            }
        }
        let port = listener.local.port
        let heard = Shared<(bytes: [UInt8], errno: CInt)>(([], -1))
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            usleep(100_000)  // let our queue wait on the kernel's buffers first
            heard.value = KernelTCP.receiveAll(fd)
            Glibc.close(fd)
        }
        try run(loop, until: done)
        peer.join()
        #expect(sent == bytes.count && cuts == 0)
        #expect(closeError == .some(nil))
        #expect(heard.value.errno == 0, "a graceful end, not errno \(heard.value.errno)")
        #expect(heard.value.bytes.count == bytes.count)
        #expect(heard.value.bytes == bytes)
    }

    @Test func resetAbortsAndThePeerSeesConnectionReset() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        var results: [String] = []
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            c.onReceive { input in
                guard input.count >= 5 else { return }
                // Queued, never sent: reset drops it.
                _ = try? c.write([UInt8](repeating: 7, count: 1000))
                c.reset()
                results.append("\(c.state)")
                do {
                    _ = try c.write([1])
                } catch {
                    results.append("\(error)")
                }
            }
            c.onClose { error in
                results.append("closed \(String(describing: error))")
                finish.resolve()
            }
        }
        let port = listener.local.port
        let outcome = Shared<(bytes: [UInt8], errno: CInt)>(([], -1))
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            KernelTCP.sendAll(fd, Array("hello".utf8))
            outcome.value = KernelTCP.receiveAll(fd)
            Glibc.close(fd)
        }
        try run(loop, until: done)
        peer.join()
        #expect(outcome.value.bytes.isEmpty)
        #expect(
            outcome.value.errno == ECONNRESET, "the peer's read ended with \(outcome.value.errno)")
        // The close notification runs inside reset(), which closes at once.
        #expect(results == ["closed nil", "closed(nil)", "the connection is closed"])
    }

    @Test func aResetFromThePeerClosesTheConnectionWithResetByPeer() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        var closeError: StreamError?
        var state: StreamState?
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            c.onClose { error in
                closeError = error
                state = c.state
                finish.resolve()
            }
        }
        let port = listener.local.port
        let peer = PeerThread {
            let fd = KernelTCP.connect(port: port)
            KernelTCP.sendAll(fd, [1, 2, 3])
            usleep(50_000)
            KernelTCP.resetAndClose(fd)
        }
        try run(loop, until: done)
        peer.join()
        #expect(closeError == .resetByPeer)
        #expect(state == .closed(.resetByPeer))
    }

    @Test func connectingToAClosedPortIsRefused() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let target = StreamEndpoint(address: loopback, port: KernelTCP.closedPort())
        let attempt = tcp.connect(to: target).map { _ in }
        #expect(throws: StreamError.refused(target)) { try run(loop, until: attempt) }
        #expect(tcp.openConnections == 0)
    }

    @Test func listeningOnAPortInUseIsATypedError() throws {
        let (_, tcp) = try service()
        defer { tcp.close() }
        let (fd, port) = KernelTCP.listener()
        defer { Glibc.close(fd) }
        #expect(throws: StreamError.addressInUse(StreamEndpoint(address: loopback, port: port))) {
            _ = try tcp.listen(port: port) { _ in }
        }
        // The port is free again once the kernel's listener is gone, ours works.
        let first = try tcp.listen(port: 0) { _ in }
        #expect(throws: StreamError.addressInUse(first.local)) {
            _ = try tcp.listen(port: first.local.port) { _ in }
        }
    }

    /// 200 connections at once, each through our connect to our listener (the kernel's
    /// TCP between them), each echoing its own bytes.
    @Test func manyConcurrentConnectionsEachGetTheirOwnBytesBack() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let count = 200
        let listener = try tcp.listen(port: 0, backlog: 256) { c in
            func echo(_ input: inout StreamInput) {
                input.consume(input.withUnsafeBytes { (try? c.write($0)) ?? 0 })
                if input.isFinished && input.isEmpty { c.close() }
            }
            c.onReceive(echo)
            c.onWritable { c.withInput(echo) }
        }
        var finished = 0
        var mismatches = 0
        let (done, finish) = loop.makePromise(of: Void.self)
        for index in 0..<count {
            let message = pattern(1000 + index, seed: UInt32(index + 10))
            tcp.connect(to: listener.local).onResult { result in
                guard case .success(let c) = result else {
                    Issue.record("connection \(index): \(result)")
                    return
                }
                var echoed: [UInt8] = []
                #expect((try? c.write(message)) == message.count)
                c.shutdownWrite()
                c.onReceive { input in echoed += input.read(input.count) }
                c.onClose { error in
                    if echoed != message || error != nil { mismatches += 1 }
                    finished += 1
                    if finished == count { finish.resolve() }
                }
            }
        }
        try run(loop, until: done)
        #expect(finished == count)
        #expect(mismatches == 0)
        #expect(listener.accepted == UInt64(count))
        // Each server side closes once its client's end of stream is echoed.
        let (drained, drain) = loop.makePromise(of: Void.self)
        func check() {
            guard tcp.openConnections > 0 else {
                drain.resolve()
                return
            }
            _ = loop.schedule(after: .milliseconds(10), check)
        }
        check()
        try run(loop, until: drained, seconds: 5)
        #expect(tcp.openConnections == 0)
    }

    /// While the listener does not accept, connections wait in the kernel's backlog.
    @Test func connectionsWaitInTheBacklogWhileTheListenerIsNotAccepting() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        var greeted = 0
        let (done, finish) = loop.makePromise(of: Void.self)
        let listener = try tcp.listen(port: 0) { c in
            _ = try? c.write(Array("hi".utf8))
            c.close()
            greeted += 1
            if greeted == 2 { finish.resolve() }
        }
        listener.isAccepting = false
        let port = listener.local.port
        let replies = Shared<[[UInt8]]>([])
        let peer = PeerThread {
            let fds = [KernelTCP.connect(port: port), KernelTCP.connect(port: port)]
            // Established already (the kernel completed the handshakes).
            let connected = fds.allSatisfy { $0 >= 0 }
            replies.value = connected ? fds.map { KernelTCP.receiveAll($0).bytes } : []
            fds.forEach { Glibc.close($0) }
        }
        let (waited, wait) = loop.makePromise(of: Void.self)
        _ = loop.schedule(after: .milliseconds(300)) { wait.resolve() }
        try run(loop, until: waited)
        #expect(listener.accepted == 0)
        listener.isAccepting = true
        try run(loop, until: done)
        peer.join()
        #expect(listener.accepted == 2)
        #expect(replies.value == [Array("hi".utf8), Array("hi".utf8)])
    }

    // MARK: The async forms

    @Test func asyncAcceptReadAndWriteAgainstAKernelClient() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let request = pattern(1 << 20, seed: 6)
        let incoming = try tcp.incoming(port: 0)
        let port = incoming.listener.local.port
        let exchange = Shared<(reply: [UInt8], errno: CInt, port: UInt16)>(([], -1, 0))
        let peer = PeerThread { exchange.value = KernelTCP.ask(port: port, request) }
        // Loop-confined objects, used by the task on the same loop.
        let bound = LoopBound(incoming, on: loop)
        let received = try loop.run { () async throws -> Int in
            let incoming = bound.value
            guard let connection = await incoming.accept() else { return -1 }
            var all: [UInt8] = []
            while let bytes = try await connection.read() { all += bytes }
            try await connection.writeAll(all.reversed())
            connection.close()
            let error = try await connection.closed().value
            #expect(error == nil)
            incoming.close()
            #expect(await incoming.accept() == nil)
            return all == request ? all.count : -2
        }
        peer.join()
        #expect(received == request.count)
        #expect(exchange.value.reply == request.reversed())
    }

    @Test func asyncConnectReadsLengthPrefixedMessagesFromAKernelServer() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let (kernelListener, kernelPort) = KernelTCP.listener()
        defer { Glibc.close(kernelListener) }
        let messages = (1...50).map { pattern($0 * 997, seed: UInt32($0)) }
        let heard = Shared<[UInt8]>([])
        let peer = PeerThread {
            let fd = KernelTCP.accept(kernelListener)
            heard.value = KernelTCP.receive(fd, count: 5)
            // Sent in pieces that cut messages (and their prefixes) anywhere.
            let stream = messages.flatMap { [UInt8($0.count >> 8), UInt8($0.count & 0xff)] + $0 }
            var offset = 0
            while offset < stream.count {
                let end = min(offset + 1 + (offset * 7919) % 3000, stream.count)
                KernelTCP.sendAll(fd, Array(stream[offset..<end]))
                offset = end
            }
            Glibc.close(fd)
        }
        let bound = LoopBound(tcp, on: loop)
        let (received, refused) = try loop.run { () async throws -> ([[UInt8]], StreamError?) in
            let tcp = bound.value
            let connection = try await tcp.connect(
                to: StreamEndpoint(address: loopback, port: kernelPort))
            try await connection.writeAll(Array("hello".utf8))
            var received: [[UInt8]] = []
            while let message = try await connection.read({ input -> [UInt8]? in
                guard input.count >= 2 else { return nil }
                let length = Int(input[0]) << 8 | Int(input[1])
                guard input.count >= 2 + length else { return nil }
                input.consume(2)
                return input.read(length)
            }) {
                received.append(message)
            }
            connection.close()
            var refused: StreamError?
            do {
                _ = try await tcp.connect(
                    to: StreamEndpoint(address: loopback, port: KernelTCP.closedPort()))
            } catch {
                refused = error as? StreamError
            }
            return (received, refused)
        }
        peer.join()
        #expect(heard.value == Array("hello".utf8))
        #expect(received == messages)
        if case .refused = refused {
        } else {
            Issue.record("connect: \(String(describing: refused))")
        }
    }

    @Test func cancellingAnAsyncReadEndsItWithCancelled() throws {
        let (loop, tcp) = try service()
        defer { tcp.close() }
        let (kernelListener, kernelPort) = KernelTCP.listener()
        defer { Glibc.close(kernelListener) }
        let release = DispatchSemaphore(value: 0)
        let peer = PeerThread {
            let fd = KernelTCP.accept(kernelListener)
            release.wait()  // sends nothing until the test is over
            Glibc.close(fd)
        }
        defer { peer.join() }
        defer { release.signal() }
        let connection = try loop.run(
            until: tcp.connect(to: StreamEndpoint(address: loopback, port: kernelPort)))
        nonisolated(unsafe) let reader = connection
        let reading = loop.promise { () async throws -> Int in
            try await reader.read()?.count ?? -1
        }
        _ = loop.schedule(after: .milliseconds(100)) { reading.cancel() }
        let outcome = Result { try loop.run(until: reading) }
        if case .failure(let error) = outcome {
            #expect(error is Cancelled || (error as? StreamError) == .cancelled, "\(error)")
        } else {
            Issue.record("the read returned \(outcome)")
        }
        #expect(connection.state == .open)
    }
}
