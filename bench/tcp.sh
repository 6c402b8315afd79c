#!/usr/bin/env bash
# TCP on the Oasis stack beside the Linux kernel's own, measured in one run with one
# tool (bench/peers/tcp-stream.c) on the kernel's side of every pair:
#   - kernel↔kernel over a veth between two namespaces, offloads on (the default) and
#     off (tso, gso, gro, tx and rx checksums), both directions: send to discard (9),
#     recv from chargen (19), served by `tcp-stream serve 9`;
#   - Oasis↔kernel over a TAP: `oasis stack` on a TAP in a namespace, the kernel's
#     sockets in that namespace sending to its discard and reading its chargen;
#   - both again under 1 % random drop of data segments on the receiving side
#     (nftables `numgen random mod 100 < 1`; no netem on this kernel): the kernel's
#     input; for what the kernel sends to a TAP server, the server's own read
#     (`oasis stack --impair in:loss=1%`, lwip-stack's LWIP_STACK_LOSS=1); the kernel
#     pair also with CUBIC (Oasis's default) when the kernel's default is another;
#   - connections per second (tcp-stream connrate: connect, 64 bytes there and back,
#     close) against Oasis echo (7) over the TAP and the kernel's echo
#     (`tcp-stream echo 7`) over the veth, 16 at once and one at a time;
#   - lwIP's TCP on the same TAP (bench/peers/lwip-stack.c: Debian's liblwip-dev, its
#     raw API), measured as Oasis is, when liblwip-dev is installed (LWIP=0: left out);
#   - bulk with `oasis stack --offload` (TSO/GRO through the virtio header) beside the
#     kernel with its offloads on (OFFLOAD=0: left out).
# Each figure is the median of ROUNDS rounds (default 3) of SECONDS each, the pairs
# taking turns within a round. Needs root (namespaces, TAP). NICE=N runs both sides
# at that priority (other work on the machine takes less of their CPUs). PERF=1
# records a profile of each TAP server (perf record -g) during its first round's runs
# into bench/out/perf-*.data.
#   bench/tcp.sh OASIS_BINARY [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-5}
rounds=${ROUNDS:-3}
bin=bench/out/bin
mkdir -p "$bin"
gcc -O2 -Wall -Wextra -pthread -o "$bin/tcp-stream" bench/peers/tcp-stream.c
stream=$bin/tcp-stream
lwip=""
if [ "${LWIP:-1}" = 1 ]; then
    if pkg-config --exists lwip 2>/dev/null; then
        gcc -O2 -Wall -Wextra -pthread $(pkg-config --cflags lwip) -o "$bin/lwip-stack" \
            bench/peers/lwip-stack.c $(pkg-config --libs lwip)
        lwip=$bin/lwip-stack
    else
        echo "tcp: liblwip-dev is not installed (scripts/setup.sh installs it): lwIP left out" >&2
    fi
fi

# `oasis stack --offload` (TSO and GRO through the TAP's virtio header), when this
# build has it: bulk beside the kernel with its offloads on (OFFLOAD=0: left out).
offload=""
if [ "${OFFLOAD:-1}" = 1 ] && "$oasis" stack --help 2>/dev/null | grep -q -- '--offload'; then
    offload=1
fi

# Two cores: servers (oasis, lwip-stack, tcp-stream serve/echo) on one, the kernel's
# clients (tcp-stream send/recv/connrate) on the other.
# NICE=-10 (say) gives both sides the same larger share of their CPUs where other work
# shares the machine; the default leaves the priority alone.
priority=(nice -n "${NICE:-0}")
if [ "$(nproc)" -ge 2 ]; then
    server_cpu=("${priority[@]}" taskset -c 1)
    client_cpu=("${priority[@]}" taskset -c 0)
    pinning="servers (oasis, lwip-stack, tcp-stream serve and echo) on CPU 1, the kernel's clients (tcp-stream send, recv, connrate) on CPU 0"
else
    server_cpu=("${priority[@]}")
    client_cpu=("${priority[@]}")
    pinning="one CPU: nothing pinned"
fi
[ "${NICE:-0}" != 0 ] && pinning="$pinning, all at nice ${NICE}"

mac=02:00:00:00:00:02
tag=tcpb-$$
namespaces=()
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

new_namespace() {
    ip netns add "$1"
    namespaces+=("$1")
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" ip link set lo up
    # connrate's clients close first and keep TIME-WAIT: reuse it after 1 s.
    ip netns exec "$1" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
    ip netns exec "$1" sysctl -q -w net.ipv4.tcp_tw_reuse=1
}

# Drops 1 % of TCP segments with data (IP length over 100: ACKs pass) at HOOK
# (input or output) in namespace NS; `nodrop NS` takes the table away.
drop() {
    ip netns exec "$1" nft -f - <<EOF
table ip tcpbench {
    chain filter {
        type filter hook $2 priority 0; policy accept;
        ip protocol tcp ip length > 100 numgen random mod 100 < 1 counter drop
    }
}
EOF
}
nodrop() { ip netns exec "$1" nft delete table ip tcpbench 2>/dev/null || true; }
dropped() { ip netns exec "$1" nft list table ip tcpbench 2>/dev/null | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }

# Waits until HOST answers ping from NS (10 s at most).
wait_for_ping() {
    for _ in $(seq 20); do
        ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    echo "tcp: $2 never answered ping from $1" >&2
    return 1
}

# The kernel pair: client kc (192.0.2.1) and server ks (192.0.2.2) on a veth.
kc=$tag-kc
ks=$tag-ks
new_namespace "$kc"
new_namespace "$ks"
ip link add "t$$c" netns "$kc" type veth peer name "t$$s" netns "$ks"
ip netns exec "$kc" ip addr add 192.0.2.1/24 dev "t$$c"
ip netns exec "$ks" ip addr add 192.0.2.2/24 dev "t$$s"
ip netns exec "$kc" ip link set "t$$c" up
ip netns exec "$ks" ip link set "t$$s" up
ip netns exec "$ks" "${server_cpu[@]}" "$stream" serve 9 3600 >/dev/null &
pids+=($!)
# The same servers with CUBIC on 1009 (discard) and 1019 (chargen), for the rows with
# the kernel's TCP on CUBIC.
ip netns exec "$ks" "${server_cpu[@]}" env TCP_STREAM_CC=cubic "$stream" serve 1009 3600 >/dev/null &
pids+=($!)
ip netns exec "$ks" "${server_cpu[@]}" "$stream" echo 7 3600 >/dev/null &
pids+=($!)
offloads() {
    ip netns exec "$kc" ethtool -K "t$$c" tso "$1" gso "$1" gro "$1" tx "$1" rx "$1" >/dev/null 2>&1
    ip netns exec "$ks" ethtool -K "t$$s" tso "$1" gso "$1" gro "$1" tx "$1" rx "$1" >/dev/null 2>&1
}
wait_for_ping "$kc" 192.0.2.2

# The TAP: the kernel at 192.0.2.1 on tap0, a server (oasis, lwip-stack) at 192.0.2.2.
tap=$tag-tap
new_namespace "$tap"
# A fresh tap0 per server: offloads a server set (TUNSETOFFLOAD, `--offload`) stay on
# a persistent TAP after it exits, and the next server would get partial checksums.
make_tap() {
    ip netns exec "$tap" ip link del tap0 2>/dev/null || true
    ip netns exec "$tap" ip tuntap add dev tap0 mode tap
    ip netns exec "$tap" ip addr add 192.0.2.1/24 dev tap0
    ip netns exec "$tap" ip link set tap0 up
    ip netns exec "$tap" ip neigh replace 192.0.2.2 lladdr $mac dev tap0 nud permanent
}
server_pid=""
server_log=""
start_server() {  # NAME COMMAND...
    local name=$1
    shift
    make_tap
    server_log=bench/out/tcp-$name.log
    ip netns exec "$tap" "${server_cpu[@]}" "$@" >"$server_log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    wait_for_ping "$tap" 192.0.2.2
}
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# One client run from NS: prints the figure (Gbit/s or connections/s), or "fail".
declare -A results
client() {  # NS MODE PORT [CONCURRENCY]
    local line
    if line=$(ip netns exec "$1" "${client_cpu[@]}" "$stream" "$2" 192.0.2.2 "$3" "$seconds" ${4:-} 2>&1); then
        echo "  $1 $2 $3 ${4:-}: $line" >&2
        sed -n 's/.*gbps=\([0-9.]*\).*/\1/p; s/.*conn_per_s=\([0-9]*\).*/\1/p' <<<"$line" | tail -n1
    else
        echo "  $1 $2 $3 ${4:-}: FAILED: $line" >&2
        echo fail
    fi
}
record() { results[$1]="${results[$1]:-} $2"; }
perf_pids=()
# A profile of the server process during one run (PERF=1, first round).
profiled() {  # LABEL
    if [ "${PERF:-0}" = 1 ] && [ "$round" = 1 ] && command -v perf >/dev/null; then
        perf record -F 999 -g -p "$server_pid" -o "bench/out/perf-$1.data" -- sleep "$seconds" \
            >/dev/null 2>&1 &
        perf_pids+=($!)
    fi
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
kernel_cc=$(ip netns exec "$kc" sysctl -n net.ipv4.tcp_congestion_control)
echo "tcp: $rounds rounds of $seconds s per figure; $pinning; load average $load" >&2
for round in $(seq "$rounds"); do
    echo "round $round" >&2
    # Kernel↔kernel, offloads on and off.
    for state in on off; do
        offloads "$state"
        record "k-$state-send" "$(client "$kc" send 9)"
        record "k-$state-recv" "$(client "$kc" recv 19)"
    done
    # Under drop (offloads off: with GRO a drop takes a whole merged train).
    drop "$ks" input
    drop "$kc" input
    record k-drop-send "$(client "$kc" send 9)"
    record k-drop-recv "$(client "$kc" recv 19)"
    # The same with CUBIC, Oasis's default, when the kernel's is another (BBR, whose
    # rate does not fall with random loss).
    if [ "$kernel_cc" != cubic ]; then
        export TCP_STREAM_CC=cubic
        record k-cubic-drop-send "$(client "$kc" send 1009)"
        record k-cubic-drop-recv "$(client "$kc" recv 1019)"
        unset TCP_STREAM_CC
    fi
    record k-drop-count "$(($(dropped "$ks") + $(dropped "$kc")))"
    nodrop "$ks"
    nodrop "$kc"
    offloads on
    record k-conn16 "$(client "$kc" connrate 7 16)"
    record k-conn1 "$(client "$kc" connrate 7 1)"

    # The servers on the TAP.
    servers=(oasis)
    [ -n "$lwip" ] && servers+=(lwip)
    [ -n "$offload" ] && servers+=(offload)
    for server in "${servers[@]}"; do
        case $server in
            oasis) start_server oasis "$oasis" stack --tap tap0 --ip 192.0.2.2/24 --mac $mac ;;
            offload) start_server offload "$oasis" stack --tap tap0 --ip 192.0.2.2/24 --mac $mac --offload ;;
            lwip) start_server lwip "$lwip" tap0 192.0.2.2 24 ;;
        esac
        profiled "$server-send"
        record "$server-send" "$(client "$tap" send 9)"
        profiled "$server-recv"
        record "$server-recv" "$(client "$tap" recv 19)"
        if [ "$server" = offload ]; then
            # Bulk only: with TSO and GRO a drop would take a whole 64 KiB train, and
            # connections do not differ.
            stop_server
            continue
        fi
        # What the server sends is dropped at the kernel's input, as between the
        # kernels.
        drop "$tap" input
        record "$server-drop-recv" "$(client "$tap" recv 19)"
        nodrop "$tap"
        profiled "$server-conn16"
        record "$server-conn16" "$(client "$tap" connrate 7 16)"
        record "$server-conn1" "$(client "$tap" connrate 7 1)"
        stop_server
        # What the kernel sends is dropped by the server as it reads it from the TAP
        # (`--impair in:loss=1%`, LWIP_STACK_LOSS=1): a drop in the kernel's own
        # namespace, at output or at the TAP's egress, fails the transmission locally
        # (TCP sends it again at once and counts no loss), which measured the
        # kernel's stall, not a loss.
        case $server in
            oasis) start_server oasis-loss "$oasis" stack --tap tap0 --ip 192.0.2.2/24 --mac $mac \
                --impair in:loss=1% ;;
            lwip) start_server lwip-loss env LWIP_STACK_LOSS=1 "$lwip" tap0 192.0.2.2 24 ;;
        esac
        record "$server-drop-send" "$(client "$tap" send 9)"
        stop_server
    done
done
for pid in "${perf_pids[@]}"; do wait "$pid" || true; done

median() {  # values...: the median of those that are numbers, or "fail"
    local sorted
    sorted=$(printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g || true)
    [ -z "$sorted" ] && { echo fail; return; }
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$sorted"
}
spread() {  # the lowest and highest, "a-b"
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f×", a / b }'
}
value() { median ${results[$1]:-}; }
fails() { printf '%s\n' ${results[$1]:-} | grep -c fail || true; }

row() {  # FIGURE OURS PEER-NAME PEER TARGET UNIT
    local ours=$2 peer=$4
    local note="runs $(spread ${results[$ours]:-}) vs $(spread ${results[$peer]:-}) $6"
    local failed=$(($(fails "$ours") + $(fails "$peer")))
    [ "$failed" -gt 0 ] && note="$note; $failed failed runs"
    echo "| tcp | $1 | $(value "$ours") $6 | $3 | $(value "$peer") $6 | $(ratio "$(value "$ours")" "$(value "$peer")") | $5 | $note |"
}

echo
echo "TCP on the Oasis stack over a TAP beside the Linux kernel over a veth$([ -n "$lwip" ] && echo " and lwIP on the same TAP") (bench/tcp.sh, median of $rounds × $seconds s; ratio = Oasis / peer; $pinning; load average before: $load):"
echo
echo "| group | figure | Oasis | peer | its value | ratio | target | note |"
echo "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |"
row "bulk, kernel sends to Oasis discard over a TAP" oasis-send "kernel↔kernel over a veth, offloads off" k-off-send "≥ 0.6×" "Gbit/s"
row "bulk, kernel reads Oasis chargen over a TAP" oasis-recv "kernel↔kernel over a veth, offloads off" k-off-recv "≥ 0.6×" "Gbit/s"
row "bulk, kernel sends to Oasis discard over a TAP" oasis-send "kernel↔kernel over a veth, offloads on" k-on-send "" "Gbit/s"
row "bulk, kernel reads Oasis chargen over a TAP" oasis-recv "kernel↔kernel over a veth, offloads on" k-on-recv "" "Gbit/s"
row "bulk under 1 % drop, kernel sends to Oasis discard" oasis-drop-send "kernel↔kernel, offloads off, same drop" k-drop-send "≥ 0.5×" "Gbit/s"
row "bulk under 1 % drop, kernel reads Oasis chargen" oasis-drop-recv "kernel↔kernel, offloads off, same drop" k-drop-recv "≥ 0.5×" "Gbit/s"
if [ "$kernel_cc" != cubic ]; then
    row "bulk under 1 % drop, kernel sends to Oasis discard" oasis-drop-send "kernel↔kernel, same drop, CUBIC (the kernel's default: $kernel_cc)" k-cubic-drop-send "" "Gbit/s"
    row "bulk under 1 % drop, kernel reads Oasis chargen" oasis-drop-recv "kernel↔kernel, same drop, CUBIC (Oasis's default)" k-cubic-drop-recv "" "Gbit/s"
fi
row "connections/s, Oasis echo over a TAP, 16 at once" oasis-conn16 "kernel echo over a veth, 16 at once" k-conn16 "≥ 0.5×" "conn/s"
row "connections/s, Oasis echo over a TAP, one at a time" oasis-conn1 "kernel echo over a veth, one at a time" k-conn1 "≥ 0.5×" "conn/s"
if [ -n "$offload" ]; then
    row "bulk, kernel sends to \`oasis stack --offload\` (TSO/GRO) discard over a TAP" offload-send "kernel↔kernel over a veth, offloads on" k-on-send "" "Gbit/s"
    row "bulk, kernel reads \`oasis stack --offload\` chargen over a TAP" offload-recv "kernel↔kernel over a veth, offloads on" k-on-recv "" "Gbit/s"
fi
if [ -n "$lwip" ]; then
    row "bulk, kernel sends to discard over a TAP" oasis-send "lwIP 2.1.3 (Debian's) on the same TAP" lwip-send "" "Gbit/s"
    row "bulk, kernel reads chargen over a TAP" oasis-recv "lwIP 2.1.3 on the same TAP" lwip-recv "" "Gbit/s"
    row "bulk under 1 % drop, kernel sends to discard" oasis-drop-send "lwIP 2.1.3, same drop" lwip-drop-send "" "Gbit/s"
    row "bulk under 1 % drop, kernel reads chargen" oasis-drop-recv "lwIP 2.1.3, same drop" lwip-drop-recv "" "Gbit/s"
    row "connections/s, echo over a TAP, 16 at once" oasis-conn16 "lwIP 2.1.3 on the same TAP" lwip-conn16 "" "conn/s"
    row "connections/s, echo over a TAP, one at a time" oasis-conn1 "lwIP 2.1.3 on the same TAP" lwip-conn1 "" "conn/s"
fi
echo
echo "Kernel↔kernel for reference: offloads on send $(value k-on-send) / recv $(value k-on-recv) Gbit/s, off send $(value k-off-send) / recv $(value k-off-recv) Gbit/s; segments dropped by the kernel pair's tables in all rounds: $(printf '%s\n' ${results[k-drop-count]:-0} | awk '{ s += $1 } END { print s }')."
echo "Where the work runs: on a veth the receiver's softirq runs on the sending CPU; on the TAP the kernel's receive path runs in the writer's system call (oasis's, on CPU 1), and oasis copies each frame in with read(2) and out with write(2)."
echo "oasis said on exit (last round): $(grep -E 'oasis: tcp|oasis: device' bench/out/tcp-oasis.log | tr '\n' ' ')"
