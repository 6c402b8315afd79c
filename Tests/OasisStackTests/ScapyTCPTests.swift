// The Oasis stack's TCP faced with raw segments written with scapy as the RFCs state
// them: the handshake's options, SACK blocks for an out-of-order segment, RFC 5961's
// challenge ACKs, PAWS, resets for closed ports, window probes. The kernel's side of
// the TAP would answer our hand-made connections with resets of its own (no socket
// owns them), so the test's namespace drops the kernel's outgoing resets.

import Foundation
import OasisTestSupport
import Testing

/// Python run before each scapy script: a connection helper over scapy on tap0.
let scapyPrelude = """
    import sys, time, random
    from scapy.all import IP, TCP, Raw, conf, sr1, send, AsyncSniffer
    conf.verb = 0
    conf.iface = 'tap0'
    SERVER = '192.0.2.2'

    def options(segment):
        return dict((name, value) for name, value in segment[TCP].options)

    class Connection:
        # A client connection built by hand: handshake with every option, then
        # segments sent one by one and the server's answers read with a sniffer.
        def __init__(self, port=7, sport=None, window=65535, timestamps=True):
            self.sport = sport or random.randint(20000, 60000)
            self.port = port
            self.seq = random.randint(0, 2**32 - 1)
            self.window = window
            self.tsval = 1000
            opts = [('MSS', 1460), ('SAckOK', b''), ('WScale', 7)]
            if timestamps:
                opts.append(('Timestamp', (self.tsval, 0)))
            self.synack = sr1(IP(dst=SERVER) / TCP(sport=self.sport, dport=port, flags='S',
                                                   seq=self.seq, window=window, options=opts),
                              timeout=3)
            assert self.synack is not None, 'no SYN-ACK'
            self.seq += 1
            self.ack = self.synack[TCP].seq + 1
            self.peer_ts = options(self.synack).get('Timestamp', (0, 0))[0]
            self.timestamps = timestamps and 'Timestamp' in options(self.synack)
            self.segment('A')

        def opts(self, tsval=None):
            if not self.timestamps:
                return []
            self.tsval += 1
            return [('Timestamp', (tsval if tsval is not None else self.tsval, self.peer_ts))]

        def segment(self, flags, data=b'', seq=None, window=None, tsval=None):
            packet = IP(dst=SERVER) / TCP(sport=self.sport, dport=self.port, flags=flags,
                                          seq=self.seq if seq is None else seq, ack=self.ack,
                                          window=(self.window if window is None else window) >> 7,
                                          options=self.opts(tsval))
            if data:
                packet = packet / Raw(data)
            send(packet)

        def exchange(self, flags, data=b'', seq=None, wait=1.0, tsval=None, window=None):
            # Sends one segment; returns what the server sent on this connection
            # within `wait` seconds.
            sniffer = AsyncSniffer(iface='tap0', store=True,
                                   lfilter=lambda p: TCP in p and p[IP].src == SERVER
                                   and p[TCP].dport == self.sport)
            sniffer.start()
            time.sleep(0.1)
            self.segment(flags, data, seq, tsval=tsval, window=window)
            time.sleep(wait)
            got = sniffer.stop()
            return [p for p in got]

    """

/// Runs a scapy script against `oasis stack` on a TAP; expects `marker` in what it prints.
func expectScapy(
    _ test: String, _ script: String, printing marker: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let check = try run(["python3", "-c", "import scapy.all"])
    guard check.status == 0 else { try skip(test, "scapy is not installed (python3-scapy)") }
    try withStackOnTap(test) { namespace in
        // The kernel owns 192.0.2.1 but not our hand-made connections: it would reset them.
        try namespace.runChecked(["nft", "add", "table", "ip", "scapy"])
        try namespace.runChecked([
            "nft", "add", "chain", "ip", "scapy", "out", "{ type filter hook output priority 0; }",
        ])
        try namespace.runChecked([
            "nft", "add", "rule", "ip", "scapy", "out", "tcp", "flags", "&", "rst", "!=", "0",
            "drop",
        ])
        let result = try python(namespace, scapyPrelude + script)
        #expect(
            result.status == 0, "\(result.output) \(result.errorOutput)",
            sourceLocation: sourceLocation)
        #expect(
            result.output.contains(marker), "\(result.output) \(result.errorOutput)",
            sourceLocation: sourceLocation)
    }
}

@Suite(.serialized) struct ScapyTCPTests {
    /// The SYN-ACK answers every option offered (RFC 7323 §2.2 and §3.2, RFC 2018 §2,
    /// RFC 9293 §3.7.1): MSS, SACK-permitted, a window scale, the timestamp echoed.
    @Test func synAckAnswersTheOptions() throws {
        try expectScapy(
            "synAckAnswersTheOptions",
            """
            c = Connection()
            o = options(c.synack)
            print('flags', c.synack[TCP].flags, 'mss', o.get('MSS'), 'sack', 'SAckOK' in o,
                  'wscale', 'WScale' in o, 'echo', o['Timestamp'][1])
            """, printing: "flags SA mss 1460 sack True wscale True echo 1000")
    }

    /// RFC 2018 §4: a segment beyond a gap is acknowledged at once, with a SACK block
    /// saying what arrived; the gap filled, the ACK covers both.
    @Test func outOfOrderDataIsSacked() throws {
        try expectScapy(
            "outOfOrderDataIsSacked",
            """
            c = Connection(port=9)
            answers = c.exchange('PA', b'B' * 100, seq=c.seq + 100)
            first = answers[0]
            print('ack', first[TCP].ack == c.seq, 'sack', options(first).get('SAck') == (c.seq + 100, c.seq + 200))
            answers = c.exchange('PA', b'A' * 100)
            print('filled', any(p[TCP].ack == c.seq + 200 for p in answers))
            """, printing: "ack True sack True\nfilled True")
    }

    /// RFC 5961 §3.2: a reset inside the window but not at RCV.NXT is answered with a
    /// challenge ACK, and the connection lives on (its echo still answers).
    @Test func anInexactResetIsChallenged() throws {
        try expectScapy(
            "anInexactResetIsChallenged",
            """
            c = Connection()
            answers = c.exchange('R', seq=c.seq + 1000)
            print('challenge', any(p[TCP].flags == 'A' and p[TCP].ack == c.seq for p in answers))
            answers = c.exchange('PA', b'still there?')
            print('alive', any(bytes(p[TCP].payload) == b'still there?' for p in answers))
            """, printing: "challenge True\nalive True")
    }

    /// CVE-2016-5696: challenge ACKs are limited per connection, so a storm of
    /// inexact resets on one connection draws at most a couple of them and leaves the
    /// global budget alone — another connection still gets its challenge ACK, whatever
    /// an off-path attacker guessed.
    @Test func challengeAcksAreLimitedPerConnection() throws {
        try expectScapy(
            "challengeAcksAreLimitedPerConnection",
            """
            a = Connection()
            b = Connection()
            sniffer = AsyncSniffer(iface='tap0', store=True,
                                   lfilter=lambda p: TCP in p and p[IP].src == SERVER)
            sniffer.start()
            time.sleep(0.1)
            storm = [IP(dst=SERVER) / TCP(sport=b.sport, dport=7, flags='R', seq=b.seq + 1000 + i)
                     for i in range(300)]
            send(storm)
            send(IP(dst=SERVER) / TCP(sport=a.sport, dport=7, flags='R', seq=a.seq + 1000))
            time.sleep(0.5)
            got = sniffer.stop()
            to_b = [p for p in got if p[TCP].dport == b.sport and str(p[TCP].flags) == 'A']
            to_a = [p for p in got if p[TCP].dport == a.sport and str(p[TCP].flags) == 'A']
            print('b challenged', len(to_b), 'bounded', 1 <= len(to_b) <= 3, 'a challenged', len(to_a) == 1)
            """, printing: "bounded True a challenged True")
    }

    /// RFC 5961 §4.2: a SYN on an established connection gets a challenge ACK, not a
    /// SYN-ACK and not a reset.
    @Test func aStraySynIsChallenged() throws {
        try expectScapy(
            "aStraySynIsChallenged",
            """
            c = Connection()
            answers = c.exchange('S', seq=c.seq + 5000)
            kinds = [str(p[TCP].flags) for p in answers]
            print('answers', kinds, 'challenge', kinds == ['A'] and answers[0][TCP].ack == c.seq)
            """, printing: "challenge True")
    }

    /// RFC 7323 §5.3 PAWS: data with a timestamp older than the last one seen is a
    /// duplicate: not echoed, answered with an ACK that does not move.
    @Test func pawsDropsAnOldTimestamp() throws {
        try expectScapy(
            "pawsDropsAnOldTimestamp",
            """
            c = Connection()
            c.tsval = 50000
            answers = c.exchange('PA', b'fresh')
            c.seq += 5
            print('fresh', any(bytes(p[TCP].payload) == b'fresh' for p in answers))
            answers = c.exchange('PA', b'stale', tsval=100)
            print('stale dropped', not any(bytes(p[TCP].payload) == b'stale' for p in answers),
                  'acked where it was', all(p[TCP].ack == c.seq for p in answers) and len(answers) > 0)
            """, printing: "fresh True\nstale dropped True acked where it was True")
    }

    /// RFC 9293 §3.10.7.1: a SYN to a closed port is answered with a reset
    /// acknowledging it; an ACK to a port nobody has a connection on with a reset at
    /// its acknowledgment number; a reset is never answered.
    @Test func closedPortsAnswerWithResets() throws {
        try expectScapy(
            "closedPortsAnswerWithResets",
            """
            answer = sr1(IP(dst=SERVER) / TCP(sport=40001, dport=81, flags='S', seq=1000), timeout=2)
            print('syn', answer is not None and str(answer[TCP].flags) == 'RA' and answer[TCP].ack == 1001)
            answer = sr1(IP(dst=SERVER) / TCP(sport=40002, dport=7, flags='A', seq=5, ack=777), timeout=2)
            print('ack', answer is not None and str(answer[TCP].flags) == 'R' and answer[TCP].seq == 777)
            answer = sr1(IP(dst=SERVER) / TCP(sport=40003, dport=81, flags='R', seq=5), timeout=1)
            print('rst', answer is None)
            """, printing: "syn True\nack True\nrst True")
    }

    /// RFC 9293 §3.8.6.1: when the client's window closes with data waiting to come
    /// back, the server probes it; when it opens, the data follows.
    @Test func aZeroWindowIsProbed() throws {
        try expectScapy(
            "aZeroWindowIsProbed",
            """
            c = Connection(window=0)
            answers = c.exchange('PA', b'x' * 200, window=0, wait=4.0)
            c.seq += 200
            # A probe: no data (or one byte) at the sequence number before SND.UNA's.
            probes = [p for p in answers if p[TCP].seq == (c.ack - 1) % 2**32
                      and len(p[TCP].payload) <= 1]
            data = [p for p in answers if len(p[TCP].payload) > 1]
            print('probed', len(probes) >= 1, 'held back', len(data) == 0)
            answers = c.exchange('A', window=65535, wait=1.0)
            print('resumed', sum(len(p[TCP].payload) for p in answers) >= 199)
            """, printing: "probed True held back True\nresumed True")
    }
}
