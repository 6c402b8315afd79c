#!/usr/bin/env bash
# Captures the real frames the wire tests (Tests/OasisWireTests) hold as byte arrays:
# Linux talking to Linux over a veth between two network namespaces this script
# creates and deletes (no traffic leaves them). Needs root, iproute2, ethtool,
# tcpdump, nftables and python3. Writes one pcap per exchange into OUT (default
# ./wire-captures); `tshark -r FILE -x` prints the bytes.
#
#   a: 192.0.2.1 at 02:00:00:00:00:01 (va)  <->  b: 192.0.2.2 at 02:00:00:00:00:02 (vb)
#
# Checksum offload is off on both ends so the captured checksums are complete, and
# TSO/GSO/GRO are off so every segment on the wire is one capture record.
#
# Exchanges:
#   tcp-default.pcap   a connects to b:5000 with Linux's defaults (MSS, SACK-permitted,
#                      timestamps, window scale), sends 100 bytes, b answers 20, both close
#   tcp-sack.pcap      a sends 400 000 bytes to b:5001 while nftables drops 3 % of what b
#                      receives (numgen random in a netdev ingress chain on vb): b's
#                      duplicate ACKs carry SACK blocks beside timestamps
#   tcp-nots.pcap      as tcp-sack with timestamps off on both (net.ipv4.tcp_timestamps=0):
#                      SYN options MSS, NOP NOP SACK-permitted, NOP window scale, and SACK
#                      blocks without timestamps
#   ip-options.pcap    ping -R (record route), ping -T tsonly (timestamps), an IGMPv3
#                      report (router alert), and a UDP datagram sent with a loose source
#                      route through IP_OPTIONS
#   link.pcap          frames crafted with scapy and sent on va (this kernel has no
#                      802.1Q devices and no bridge VLAN filtering to tag them itself):
#                      an echo request and an ARP request in QinQ (802.1ad S-tag VID 100
#                      around an 802.1Q C-tag VID 200), and an 802.3 LLC/SNAP frame
#                      carrying IPv4/UDP
#   stp.pcap           an STP BPDU from a Linux bridge: 802.3 with LLC, no SNAP
#   fragments.pcap     a 700-byte UDP datagram from a:4000 to b:9 with va's MTU at 576:
#                      a first fragment (UDP header, 552 bytes) and a second one (offset 552)
set -euo pipefail
out=${1:-wire-captures}
mkdir -p "$out"
out=$(cd "$out" && pwd)
a=oasis-cap-$$-a
b=oasis-cap-$$-b
cleanup() {
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add va netns "$a" address 02:00:00:00:00:01 type veth peer name vb netns "$b" \
    address 02:00:00:00:00:02
for side in "$a va 192.0.2.1" "$b vb 192.0.2.2"; do
    set -- $side
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" ip addr add "$3/24" dev "$2"
    ip netns exec "$1" ip link set "$2" up
    ip netns exec "$1" ip link set lo up
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null
done
# Static neighbours: no ARP in the TCP captures.
ip netns exec "$a" ip neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev va
ip netns exec "$b" ip neigh add 192.0.2.1 lladdr 02:00:00:00:00:01 dev vb
# The source-routed datagram is sent towards its final destination's neighbour entry.
ip netns exec "$a" ip neigh add 192.0.2.9 lladdr 02:00:00:00:00:02 dev va

capture() {  # name filter
    ip netns exec "$a" tcpdump -i va -U --immediate-mode -s 0 -w "$out/$1.pcap" "$2" 2>/dev/null &
    tcpdump_pid=$!
    sleep 1
}
stop_capture() {
    sleep 0.5
    kill "$tcpdump_pid"
    wait "$tcpdump_pid" 2>/dev/null || true
}

server() {  # port: reads everything, answers 20 bytes after the first read, closes
    ip netns exec "$b" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); first = True
while True:
    d = c.recv(65536)
    if not d: break
    if first: c.sendall(b"oasis wire test ok\r\n"); first = False
c.close()' "$1" &
    server_pid=$!
    sleep 0.5
}
client() {  # port bytes
    ip netns exec "$a" python3 -c '
import socket, sys, time
s = socket.create_connection(("192.0.2.2", int(sys.argv[1])))
n = int(sys.argv[2]); chunk = bytes(range(256)) * 64; sent = 0
while sent < n:
    part = chunk[: min(len(chunk), n - sent)]; s.sendall(part); sent += len(part)
s.recv(100); time.sleep(0.2); s.close()' "$1" "$2"
    wait "$server_pid"
}
drop_on_b() {  # percent: drop that share of b's ingress
    ip netns exec "$b" nft add table netdev lossy
    ip netns exec "$b" nft add chain netdev lossy ingress \
        "{ type filter hook ingress device vb priority 0; }"
    ip netns exec "$b" nft add rule netdev lossy ingress tcp dport 5001 \
        numgen random mod 100 "<" "$1" drop
}

capture tcp-default "tcp port 5000"
server 5000
client 5000 100
stop_capture

drop_on_b 3
capture tcp-sack "tcp port 5001"
server 5001
client 5001 400000
stop_capture

ip netns exec "$a" sysctl -q -w net.ipv4.tcp_timestamps=0
ip netns exec "$b" sysctl -q -w net.ipv4.tcp_timestamps=0
capture tcp-nots "tcp port 5001"
server 5001
client 5001 400000
stop_capture
ip netns exec "$b" nft delete table netdev lossy

capture ip-options "ip[0] & 0xf > 5"
ip netns exec "$a" ping -c 1 -R 192.0.2.2 >/dev/null || true
ip netns exec "$a" ping -c 1 -T tsonly 192.0.2.2 >/dev/null || true
# Joining a group sends IGMPv3 membership reports, which carry a router alert.
ip netns exec "$a" python3 -c '
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("192.0.2.1")))
time.sleep(1)'
# LSRR (type 131, length 11, pointer 4) through 192.0.2.2 to 192.0.2.9, padded by a NOP.
ip netns exec "$a" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS,
             bytes([1, 131, 11, 4, 192, 0, 2, 2, 192, 0, 2, 9]))
s.sendto(b"lsrr", ("192.0.2.9", 7))'
stop_capture

ip netns exec "$a" ip link add brs type bridge stp_state 1 hello_time 100
ip netns exec "$a" ip link add vs address 02:00:00:00:00:03 type veth peer name vsp
ip netns exec "$a" ip link set vs master brs
ip netns exec "$a" ip link set vsp up
capture link "not ip6 and not igmp"
ip netns exec "$a" tcpdump -i vsp -U --immediate-mode -s 0 -w "$out/stp.pcap" stp 2>/dev/null &
stp_pid=$!
sleep 1
ip netns exec "$a" ip link set vs up
ip netns exec "$a" ip link set brs up
ip netns exec "$a" python3 -c '
from scapy.all import ARP, Dot1AD, Dot1Q, Dot3, Ether, ICMP, IP, LLC, SNAP, UDP, Raw, sendp
a, b = "02:00:00:00:00:01", "02:00:00:00:00:02"
qinq = Ether(src=a, dst=b) / Dot1AD(vlan=100, prio=3) / Dot1Q(vlan=200, prio=5)
frames = [
    qinq / IP(src="198.51.100.1", dst="198.51.100.2", id=7, flags="DF")
    / ICMP(type=8, id=0x4242, seq=1) / Raw(b"qinq"),
    Ether(src=a, dst="ff:ff:ff:ff:ff:ff") / Dot1AD(vlan=100) / Dot1Q(vlan=200)
    / ARP(hwsrc=a, psrc="198.51.100.1", pdst="198.51.100.2"),
    Dot3(src=a, dst=b) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
    / IP(src="192.0.2.1", dst="192.0.2.2", id=1) / UDP(sport=1234, dport=7) / Raw(b"snap"),
]
sendp(frames, iface="va", verbose=False)'
sleep 2.5
kill "$stp_pid"
wait "$stp_pid" 2>/dev/null || true
stop_capture

ip netns exec "$a" ip link set va mtu 576
capture fragments "ip[6:2] & 0x3fff != 0"
ip netns exec "$a" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.1", 4000))
s.sendto(bytes(range(256)) * 2 + bytes(188), ("192.0.2.2", 9))'
stop_capture
ls -l "$out"
