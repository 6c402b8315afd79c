#!/usr/bin/env bash
# DNS queries per second against the number of workers, 1 to the core count, in one
# run: `oasis dns --workers W` (kernel sockets, SO_REUSEPORT, a loop per worker) beside
# NSD with `server-count: W` and, when knotd is installed, Knot with `udp-workers: W`,
# all on kernel sockets on the loopback of a namespace made for the run (removed on
# exit), the same zone (NAMES names, A records) and the same dnsperf load (-c 8 -q 500,
# two dnsperf threads; SECONDS s, three runs, medians). dnsperf shares the cores with
# the servers: on a small machine it is part of what limits the figures, for all three
# alike.
# In the same run, a second table: `oasis dns --workers W` on the Oasis stack, a worker
# per queue — over AF_XDP on a veth with as many queues as cores (the server's end in a
# namespace of its own, dnsperf on the other end; the sender's transmit queue, a hash
# of its socket, is the receive queue the server sees) and over a multi-queue TAP
# (dnsperf on the kernel's side of it). STACKS="xdp tap" (the default) chooses them;
# STACKS= leaves them out.
#   bench/dns-workers.sh OASIS_BINARY [SECONDS] [NAMES]
set -uo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-4}
names=${3:-10000}
cores=$(nproc)
for tool in dnsperf nsd dig; do
    command -v $tool >/dev/null || { echo "dns-workers: $tool is not installed (scripts/setup.sh)"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "dns-workers: needs root (a namespace of its own)"; exit 1; }
work=$(mktemp -d /tmp/oasis-dns-workers.XXXXXX)
ns=oasis-dnsw-$$
server_ns=oasis-dnsw-s-$$
port=5300
# Where dnsperf and dig ask: the kernel-socket servers on the namespace's loopback.
target=127.0.0.1
target_port=$port
stacks=${STACKS-xdp tap}
pid=
cleanup() {
    [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    [ -f "$work/nsd.pid" ] && kill -TERM "$(cat "$work/nsd.pid")" 2>/dev/null
    sleep 0.3
    ip netns del "$ns" 2>/dev/null
    ip netns del "$server_ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns=(ip netns exec "$ns")
awk -v n="$names" 'BEGIN {
    print "$ORIGIN bench.test."; print "$TTL 3600"
    print "@ SOA ns hostmaster 1 7200 3600 1209600 300"; print "@ NS ns"; print "ns A 192.0.2.53"
    for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
}' >"$work/bench.test.zone"
awk -v n="$names" 'BEGIN { srand(42); for (i = 0; i < 100000; i++) printf "h%d.bench.test A\n", int(rand() * n) }' >"$work/queries.txt"

wait_answering() {
    for _ in $(seq 100); do
        [ -n "$("${in_ns[@]}" dig -p $target_port @$target +tries=1 +time=1 +short bench.test SOA 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    echo "dns-workers: no answer at $target port $target_port within 10 s" >&2
    return 1
}
# Three dnsperf runs after a warm-up; prints their q/s.
load() {
    "${in_ns[@]}" dnsperf -s $target -p $target_port -d "$work/queries.txt" -l 1 -c 8 -q 500 -T 2 >/dev/null 2>&1
    for _ in 1 2 3; do
        "${in_ns[@]}" dnsperf -s $target -p $target_port -d "$work/queries.txt" -l "$seconds" -c 8 -q 500 -T 2 2>&1 |
            awk '/Queries per second:/ {print $4}'
    done
}
median() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "fail"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_oasis() {
    "${in_ns[@]}" "$oasis" dns --zone "$work/bench.test.zone" --listen 127.0.0.1:$port --workers "$1" \
        >"$work/oasis.log" 2>&1 &
    pid=$!
    wait_answering || { cat "$work/oasis.log" >&2; return 1; }
    load
    kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
}
# The Oasis stack over AF_XDP: the server's end of the veth, va, has a queue per core;
# oasis owns $1 of them, a worker each.
run_oasis_xdp() {
    # As many queues as workers on both ends (ethtool -L, as on a NIC): a queue no
    # worker owns would hand its flows to the server namespace's kernel, which drops them.
    ip netns exec "$server_ns" ethtool -L va rx "$1" tx "$1" 2>/dev/null
    "${in_ns[@]}" ethtool -L vb rx "$1" tx "$1" 2>/dev/null
    ip netns exec "$server_ns" "$oasis" dns --zone "$work/bench.test.zone" --backend xdp --xdp va \
        --ip 192.0.2.2/24 --listen 53 --workers "$1" >"$work/oasis.log" 2>&1 &
    pid=$!
    target=192.0.2.2 target_port=53
    wait_answering || { cat "$work/oasis.log" >&2; target=127.0.0.1 target_port=$port; return 1; }
    load
    kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
    target=127.0.0.1 target_port=$port
}
# The Oasis stack over a multi-queue TAP, tq0, made by oasis in dnsperf's namespace.
run_oasis_tap() {
    "${in_ns[@]}" "$oasis" dns --zone "$work/bench.test.zone" --backend tap --tap tq0 \
        --ip 198.51.100.2/24 --listen 53 --workers "$1" >"$work/oasis.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do "${in_ns[@]}" ip link show tq0 >/dev/null 2>&1 && break; sleep 0.1; done
    "${in_ns[@]}" ip addr add 198.51.100.1/24 dev tq0 2>/dev/null
    target=198.51.100.2 target_port=53
    wait_answering || { cat "$work/oasis.log" >&2; target=127.0.0.1 target_port=$port; return 1; }
    load
    kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
    target=127.0.0.1 target_port=$port
}
run_nsd() {
    cat >"$work/nsd.conf" <<CONF
server:
  server-count: $1
  username: ""
  chroot: ""
  rrl-ratelimit: 0
  ip-address: 127.0.0.1@$port
  reuseport: yes
  zonesdir: "$work"
  pidfile: "$work/nsd.pid"
  database: ""
  xfrdfile: "$work/xfrd.state"
  zonelistfile: "$work/zone.list"
  logfile: "$work/nsd.log"
remote-control:
  control-enable: no
zone:
  name: "bench.test."
  zonefile: "bench.test.zone"
CONF
    rm -f "$work/nsd.pid"
    "${in_ns[@]}" nsd -c "$work/nsd.conf" || return 1
    wait_answering || return 1
    load
    kill -TERM "$(cat "$work/nsd.pid")"
    sleep 1
    rm -f "$work/nsd.pid"
}
run_knot() {
    mkdir -p "$work/knot"
    cat >"$work/knot.conf" <<CONF
server:
    rundir: $work/knot
    user: root
    pidfile: $work/knot/knot.pid
    udp-workers: $1
    tcp-workers: 1
    background-workers: 1
    listen: 127.0.0.1@$port
database:
    storage: $work/knot
zone:
  - domain: bench.test
    file: $work/bench.test.zone
    storage: $work
    journal-content: none
    zonefile-sync: -1
CONF
    "${in_ns[@]}" knotd -c "$work/knot.conf" >"$work/knot.log" 2>&1 &
    pid=$!
    wait_answering || { cat "$work/knot.log" >&2; return 1; }
    load
    kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
}

servers=(oasis nsd)
if command -v knotd >/dev/null; then servers+=(knot); else echo "dns-workers: Knot left out: knotd is not installed (Debian package knot)" >&2; fi
stack_servers=()
for stack in $stacks; do
    case $stack in
    xdp)
        command -v ethtool >/dev/null || { echo "dns-workers: AF_XDP left out: ethtool is not installed" >&2; continue; }
        ip netns add "$server_ns"
        ip netns exec "$server_ns" ip link add va numtxqueues "$cores" numrxqueues "$cores" type veth \
            peer name vb numtxqueues "$cores" numrxqueues "$cores" || { echo "dns-workers: AF_XDP left out: no multi-queue veth" >&2; continue; }
        ip netns exec "$server_ns" ip link set vb netns "$ns"
        ip netns exec "$server_ns" ip link set va up
        "${in_ns[@]}" ip addr add 192.0.2.1/24 dev vb
        "${in_ns[@]}" ip link set vb up
        # XDP sees frames before anyone finishes an offloaded checksum.
        "${in_ns[@]}" ethtool -K vb tx off >/dev/null
        stack_servers+=(oasis_xdp) ;;
    tap) stack_servers+=(oasis_tap) ;;
    *) echo "dns-workers: STACKS: '$stack' is not xdp or tap" >&2 ;;
    esac
done
declare -A qps
for workers in $(seq 1 "$cores"); do
    for server in "${servers[@]}" "${stack_servers[@]}"; do
        echo "dns-workers: $server with $workers worker(s)" >&2
        qps[$server-$workers]=$(median $("run_$server" "$workers") | awk '{ printf (/^[0-9.]+$/ ? "%.0f" : "%s"), $1 }')
        echo "  ${qps[$server-$workers]} q/s" >&2
    done
done
echo
echo "Queries per second by workers, kernel sockets on a namespace's loopback, zone of $names names, dnsperf -c 8 -q 500 -T 2 (median of 3 × $seconds s; $cores cores; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
header="| workers |"; rule="| ---: |"
for server in "${servers[@]}"; do header="$header $server q/s |"; rule="$rule ---: |"; done
header="$header oasis / NSD |"; rule="$rule ---: |"
echo "$header"; echo "$rule"
for workers in $(seq 1 "$cores"); do
    line="| $workers |"
    for server in "${servers[@]}"; do line="$line ${qps[$server-$workers]} |"; done
    line="$line $(awk -v a="${qps[oasis-$workers]}" -v b="${qps[nsd-$workers]}" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f×", a / b }') |"
    echo "$line"
done
for server in "${servers[@]}"; do
    awk -v s="$server" -v a="${qps[$server-1]}" -v b="${qps[$server-$cores]}" -v c="$cores" \
        'BEGIN { if (a == "fail" || b == "fail" || a == 0) printf "scaling %s 1 → %d workers: n/a\n", s, c; else printf "scaling %s 1 → %d workers: %.2f×\n", s, c, b / a }'
done
if [ ${#stack_servers[@]} -gt 0 ]; then
    echo
    echo "Queries per second by workers on the Oasis stack, a worker per queue, the same zone and load from the kernel's side of a veth with $cores queues (AF_XDP, copy mode) or of a multi-queue TAP; NSD as above:"
    echo
    header="| workers |"; rule="| ---: |"
    for server in "${stack_servers[@]}"; do header="$header $server q/s |"; rule="$rule ---: |"; done
    for server in "${stack_servers[@]}"; do header="$header $server / NSD |"; rule="$rule ---: |"; done
    echo "$header"; echo "$rule"
    for workers in $(seq 1 "$cores"); do
        line="| $workers |"
        for server in "${stack_servers[@]}"; do line="$line ${qps[$server-$workers]} |"; done
        for server in "${stack_servers[@]}"; do
            line="$line $(awk -v a="${qps[$server-$workers]}" -v b="${qps[nsd-$workers]}" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f×", a / b }') |"
        done
        echo "$line"
    done
    for server in "${stack_servers[@]}"; do
        awk -v s="$server" -v a="${qps[$server-1]}" -v b="${qps[$server-$cores]}" -v c="$cores" \
            'BEGIN { if (a == "fail" || b == "fail" || a == 0) printf "scaling %s 1 → %d workers: n/a\n", s, c; else printf "scaling %s 1 → %d workers: %.2f×\n", s, c, b / a }'
    done
fi
