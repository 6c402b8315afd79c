#!/usr/bin/env bash
# Per-packet cost of UDP echo on the real backends, each beside its floor and the
# Linux kernel, measured in one run with one load generator (bench/peers/udp-load.c):
#   tap:   `oasis stack` on a TAP           vs  tap-echo (C: read, swap, write)
#   pcap:  `oasis stack --backend pcap`     vs  pcap-echo (C: pcap_next_ex, swap, inject)
#   xdp:   `oasis stack --backend xdp`      vs  xdp-echo (C: rx ring, swap, tx ring; the
#          same CShims/CXdp set-up)
#   the kernel's own UDP echo (recvmmsg/sendmmsg) over a veth pair, for comparison.
# Needs root (namespaces, TAP). Prints Markdown rows like oasis-bench's.
#   bench/devices.sh OASIS_BINARY [ECHOES] [WINDOW] [PAYLOAD]
set -euo pipefail
cd "$(dirname "$0")/.."
oasis=$1
echoes=${2:-100000}
window=${3:-32}
payload=${4:-64}
bin=bench/out/bin
mkdir -p "$bin"
for tool in udp-load tap-echo kernel-echo; do
    gcc -O2 -Wall -Wextra -o "$bin/$tool" "bench/peers/$tool.c"
done
gcc -O2 -Wall -Wextra -o "$bin/pcap-echo" bench/peers/pcap-echo.c -lpcap
gcc -O2 -Wall -Wextra -I CShims/CXdp/include -o "$bin/xdp-echo" bench/peers/xdp-echo.c \
    CShims/CXdp/cxdp.c

mac=02:00:00:00:00:02
tag=oasis-bench-$$
namespaces=()
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

new_namespace() {
    ip netns add "$1"
    namespaces+=("$1")
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" ip link set lo up
}

# Runs SERVER... in namespace NS, then the load from namespace CLIENT_NS; prints ns/echo.
measure() {
    local ns=$1 client=$2
    shift 2
    ip netns exec "$ns" "$@" >/dev/null 2>&1 &
    local pid=$!
    pids+=("$pid")
    sleep 1
    # A short warm-up, then the measured run.
    ip netns exec "$client" "$bin/udp-load" 192.0.2.2 7 "$payload" 2000 "$window" >/dev/null
    local line
    line=$(ip netns exec "$client" "$bin/udp-load" 192.0.2.2 7 "$payload" "$echoes" "$window")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$line" >&2
    local lost
    lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$line")
    [ "$lost" -gt $((echoes / 100)) ] && echo "devices: $* lost $lost of $echoes" >&2
    sed -n 's/.*ns_per_echo=\([0-9.]*\).*/\1/p' <<<"$line"
}

# TAP: kernel side 192.0.2.1, a static neighbour entry for the server so that no
# server has to answer ARP during the run.
tap_ns=$tag-tap
new_namespace "$tap_ns"
ip netns exec "$tap_ns" ip tuntap add dev tap0 mode tap
ip netns exec "$tap_ns" ip addr add 192.0.2.1/24 dev tap0
ip netns exec "$tap_ns" ip link set tap0 up
ip netns exec "$tap_ns" ip neigh replace 192.0.2.2 lladdr $mac dev tap0 nud permanent
tap_floor=$(measure "$tap_ns" "$tap_ns" "$bin/tap-echo" tap0)
tap_oasis=$(measure "$tap_ns" "$tap_ns" "$oasis" stack --tap tap0 --ip 192.0.2.2/24 --mac $mac)

# A namespace NS with a veth pair: the kernel at 192.0.2.1 on vb, the server on va with
# no address. The kernel leaves UDP checksums to the veth's offload: a frame read raw
# on va (libpcap, XDP) would carry a partial checksum. A NIC's wire has only complete
# ones; so does this.
veth_namespace() {
    new_namespace "$1"
    ip netns exec "$1" ip link add va type veth peer name vb
    ip netns exec "$1" ip link set va up
    ip netns exec "$1" ip addr add 192.0.2.1/24 dev vb
    ip netns exec "$1" ip link set vb up
    ip netns exec "$1" ethtool -K vb tx off >/dev/null
    ip netns exec "$1" ip neigh replace 192.0.2.2 lladdr $mac dev vb nud permanent
}

# pcap.
pcap_ns=$tag-pcap
veth_namespace "$pcap_ns"
pcap_floor=$(measure "$pcap_ns" "$pcap_ns" "$bin/pcap-echo" va)
pcap_oasis=$(measure "$pcap_ns" "$pcap_ns" "$oasis" stack --backend pcap --pcap va --ip 192.0.2.2/24 --mac $mac)

# AF_XDP: the program on va steers its frames to the server's socket (native XDP on a
# veth, copy mode).
xdp_ns=$tag-xdp
veth_namespace "$xdp_ns"
xdp_floor=$(measure "$xdp_ns" "$xdp_ns" "$bin/xdp-echo" va)
sleep 0.5  # the kernel frees the last socket's queue a moment after it closes
xdp_oasis=$(measure "$xdp_ns" "$xdp_ns" "$oasis" stack --backend xdp --xdp va --ip 192.0.2.2/24 --mac $mac)

# The kernel: client and server in two namespaces joined by a veth pair.
kernel_client=$tag-kc
kernel_server=$tag-ks
new_namespace "$kernel_client"
new_namespace "$kernel_server"
ip link add "k$$a" netns "$kernel_client" type veth peer name "k$$b" netns "$kernel_server"
ip netns exec "$kernel_client" ip addr add 192.0.2.1/24 dev "k$$a"
ip netns exec "$kernel_client" ip link set "k$$a" up
ip netns exec "$kernel_server" ip addr add 192.0.2.2/24 dev "k$$b"
ip netns exec "$kernel_server" ip link set "k$$b" up
kernel=$(measure "$kernel_server" "$kernel_client" "$bin/kernel-echo")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
echo "| tap | UDP echo, \`oasis stack\` on a TAP, $payload B, window $window | $tap_oasis | n/a | tap-echo (C read/swap/write) | $tap_floor | $(ratio "$tap_oasis" "$tap_floor") | kernel echo over veth: $(ratio "$tap_oasis" "$kernel") |"
echo "| pcap | UDP echo, \`oasis stack --backend pcap\` on a veth, $payload B, window $window | $pcap_oasis | n/a | pcap-echo (C next/swap/inject) | $pcap_floor | $(ratio "$pcap_oasis" "$pcap_floor") | kernel echo over veth: $(ratio "$pcap_oasis" "$kernel") |"
echo "| xdp | UDP echo, \`oasis stack --backend xdp\` on a veth, $payload B, window $window | $xdp_oasis | n/a | xdp-echo (C rx ring/swap/tx ring) | $xdp_floor | $(ratio "$xdp_oasis" "$xdp_floor") | kernel echo over veth: $(ratio "$xdp_oasis" "$kernel") |"
echo "| kernel | UDP echo by the Linux kernel (recvmmsg/sendmmsg) over a veth pair, $payload B | $kernel | n/a |  |  |  | peer |"
