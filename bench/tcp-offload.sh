#!/usr/bin/env bash
# TCP throughput of the Oasis stack on a TAP, with and without offloads: `oasis stack`
# serves chargen (19) and discard (9); a Python client on the kernel's sockets, in the
# stack's namespace, reads from chargen (stack -> kernel) and writes to discard
# (kernel -> stack) for SECONDS each, per mode: no virtio header, --vnet-header
# (checksums only), --offload (TSO/GRO through the virtio header).
# Needs root (namespace, TAP). Build first: swift build -c release --product oasis
#   bench/tcp-offload.sh [OASIS_BINARY] [SECONDS]
set -euo pipefail

oasis=${1:-.build/release/oasis}
seconds=${2:-5}
ns=oasis-tso-$$
pid=
cleanup() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

client=$(cat <<'PY'
import socket, sys, time
mode, seconds = sys.argv[1], float(sys.argv[2])
if mode == 'chargen':
    s = socket.create_connection(('192.0.2.2', 19), timeout=10)
    buf = bytearray(1 << 20)
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
else:
    s = socket.create_connection(('192.0.2.2', 9), timeout=10)
    block = b'\xa5' * (1 << 20)
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        s.sendall(block)
        n += len(block)
elapsed = time.time() - start
s.close()
print('%.2f' % (n * 8 / elapsed / 1e9))
PY
)

echo "| mode | stack -> kernel (chargen) | kernel -> stack (discard) |"
echo "| --- | --- | --- |"
for mode in "" "--vnet-header" "--offload"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip tuntap add dev tap0 mode tap
    ip netns exec "$ns" ip addr add 192.0.2.1/24 dev tap0
    ip netns exec "$ns" ip link set tap0 up
    # shellcheck disable=SC2086 # the mode is one option or none
    ip netns exec "$ns" "$oasis" stack --tap tap0 --ip 192.0.2.2/24 --mac 02:00:00:00:00:02 \
        $mode >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        ip netns exec "$ns" ping -c 1 -W 1 192.0.2.2 >/dev/null 2>&1 && break
        sleep 0.2
    done
    out=$(ip netns exec "$ns" python3 -c "$client" chargen "$seconds")
    in=$(ip netns exec "$ns" python3 -c "$client" discard "$seconds")
    echo "| ${mode:-(none)} | $out Gb/s | $in Gb/s |"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
    ip netns del "$ns"
done
