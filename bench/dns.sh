#!/usr/bin/env bash
# `oasis dns --backend socket` beside NSD, on the same generated zone and query file,
# under the same dnsperf load, at several zone sizes. For each size the two servers
# take turns (ROUNDS rounds; each server restarted every round), and each turn
# measures:
# - the most queries per second dnsperf gets answered (`-c 4 -q 500`, SECONDS s,
#   three times): the median of all of a server's runs is reported. The load
#   generator shares the machine's cores with the server, so single runs scatter by
#   +-10 %; the median over alternating turns is what the ratio compares;
# - the server's CPU time per query at a fixed offered load (`-Q RATE`, 4 s), from
#   its processes' utime+stime: how much work each query costs it, which does not
#   depend on how dnsperf and the server share the cores;
# - with root and kxdpgun (Knot DNS's AF_XDP load generator): the queries per second
#   the server answers when kxdpgun offers far more than it can (XDP_QPS, 1 000 000
#   q/s, SECONDS s, three times; the median over all turns). dnsperf costs about as
#   much CPU per query as the server, so on a small machine it is dnsperf that runs
#   out first at small zones and its figure hardly tells the servers apart; kxdpgun
#   needs less and keeps to one core, so the server is what limits this figure. It
#   sends from a namespace over a veth to the server's namespace, where the server
#   answers through the kernel's UDP sockets as under dnsperf. Its floor, measured
#   the same way before the first size: bench/peers/dns-reflect.c, which sends every
#   query back with QR set, read and written as `oasis dns` does, with no lookup;
# - with root and kxdpgun, a third server: `oasis dns --backend xdp`, the Oasis stack
#   on AF_XDP on the servers' end of the veth (the stack owns it while it runs). It is
#   reached only over the veth, so for it and for NSD (through the kernel's sockets on
#   the same veth) dnsperf also runs from the generator's namespace, three runs each;
#   kxdpgun is the same for all. The generator's end sends complete checksums
#   (`ethtool -K ... tx off`): XDP sees frames before anyone finishes offloaded ones;
# - when Knot DNS's server is installed (`knotd`, Debian package knot), a fourth turn:
#   Knot in its own AF_XDP mode on the same veth end (one UDP worker, as NSD has one
#   server process), the same dnsperf and kxdpgun runs: the kernel-bypass server users
#   would pick instead. Knot leaves its XDP program attached when it exits; the
#   script takes it off;
# - load time (until it answers) and memory: the proportional set size (Pss) of the
#   server's whole process tree (NSD: xfrd, main and the server child, which share the
#   zone) after loading, per record above the smallest zone's.
# Needs dnsperf, nsd and dig. As root with kxdpgun the servers run in a network
# namespace made for the run (removed on exit), reached by dnsperf and dig on its
# loopback and by kxdpgun from a second namespace over a veth; otherwise they listen
# on the machine's loopback and the kxdpgun figure is skipped, with the reason
# printed. Prints Markdown rows like oasis-bench's (ns/op = 1 s / median queries per
# second).
#   bench/dns.sh OASIS_BINARY [SECONDS] [SIZES...]   (env: ROUNDS=2, RATE=100000,
#   XDP_QPS=1000000, OASIS_ARGS="--answer-cache 0" to measure the engine without its
#   answer cache)
set -euo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-4}
shift 2 || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 1000 100000 1000000)
load_flags=(-c 4 -q 500)
rounds=${ROUNDS:-2}
rate=${RATE:-100000}
xdp_qps=${XDP_QPS:-1000000}

work=$(mktemp -d /tmp/oasis-bench-dns.XXXXXX)
port=$((25000 + $$ % 5000))
server_pid=
nsd_pid=
srv_ns=oasis-dns-srv-$$
gen_ns=oasis-dns-gen-$$
in_ns=()  # the prefix that runs a command beside the servers
listen=127.0.0.1
cleanup() {
    [ -n "$server_pid" ] && { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    [ -n "$nsd_pid" ] && stop_nsd
    [ -n "${knot_pid:-}" ] && stop_knot
    if [ ${#in_ns[@]} -gt 0 ]; then
        ip netns del "$gen_ns" 2>/dev/null || true
        ip netns del "$srv_ns" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The namespaces for kxdpgun: the servers' (10.77.0.1 on a veth, and its loopback) and
# the generator's (10.77.0.2). kxdpgun takes the server's MAC address from the
# neighbour table, which one ping fills first.
xdp_skip=
if [ "$(id -u)" -ne 0 ]; then
    xdp_skip="not root (namespaces)"
elif ! command -v kxdpgun >/dev/null; then
    xdp_skip="kxdpgun not installed (Debian package knot-dnsutils)"
else
    ip netns add "$srv_ns"
    in_ns=(ip netns exec "$srv_ns")
    ip netns add "$gen_ns"
    ip link add oasis-dns-g netns "$gen_ns" type veth peer name oasis-dns-s netns "$srv_ns"
    ip -n "$srv_ns" addr add 10.77.0.1/24 dev oasis-dns-s
    ip -n "$gen_ns" addr add 10.77.0.2/24 dev oasis-dns-g
    for ns in "$srv_ns" "$gen_ns"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$srv_ns" link set oasis-dns-s up
    ip -n "$gen_ns" link set oasis-dns-g up
    ip netns exec "$gen_ns" ethtool -K oasis-dns-g tx off >/dev/null
    ip netns exec "$gen_ns" ping -c 1 -W 2 10.77.0.1 >/dev/null
    listen=0.0.0.0
fi
[ -z "$xdp_skip" ] || echo "dns: kxdpgun figure skipped: $xdp_skip" >&2

# A zone bench.test. with N names h0..h(N-1), one A record each, and a query file of
# up to 100 000 lines: names spread over the zone, one in ten not in it (NXDOMAIN).
generate() {
    local n=$1
    awk -v n="$n" 'BEGIN {
        print "$ORIGIN bench.test."; print "$TTL 3600"
        print "@ SOA ns hostmaster 1 7200 3600 1209600 300"; print "@ NS ns"; print "ns A 192.0.2.53"
        for (i = 0; i < n; i++) printf "h%d A 10.%d.%d.%d\n", i, int(i / 65536) % 256, int(i / 256) % 256, i % 256
    }' > "$work/bench.test.zone"
    awk -v n="$n" 'BEGIN {
        srand(42); q = n < 100000 ? (n < 1000 ? 1000 : n) : 100000
        for (i = 0; i < q; i++) {
            if (i % 10 == 9) printf "x%d.bench.test A\n", i
            else printf "h%d.bench.test A\n", int(rand() * n)
        }
    }' > "$work/queries.txt"
}

# PID and all its descendants.
tree() {
    local child
    echo "$1"
    for child in $(pgrep -P "$1" || true); do tree "$child"; done
}

# Proportional set size of PID's process tree, in KiB (shared pages split fairly:
# NSD's server child shares the zone with its parent).
pss_kib() {
    local total=0 pid
    for pid in $(tree "$1"); do
        total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# CPU time (utime + stime, clock ticks) of PID's process tree so far. The command name
# in /proc/PID/stat may hold spaces ("nsd: server 1"): fields are counted after it.
cpu_ticks() {
    local total=0 pid
    for pid in $(tree "$1"); do
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)))
    done
    echo "$total"
}

# Seconds until the server on $port answers (gives up after 120 s): on the servers'
# loopback, or with "veth" over the veth from the generator's namespace.
wait_answering() {
    local start=$EPOCHREALTIME ask=("${in_ns[@]}" dig @127.0.0.1)
    [ "${1:-}" != veth ] || ask=(ip netns exec "$gen_ns" dig @10.77.0.1)
    for _ in $(seq 1 1200); do
        # dig prints "no servers could be reached" on stdout too: its status says.
        if "${ask[@]}" -p "$port" +tries=1 +time=1 +short bench.test SOA >/dev/null 2>&1 \
            && [ -n "$("${ask[@]}" -p "$port" +tries=1 +time=1 +short bench.test SOA)" ]; then
            awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
            return 0
        fi
        sleep 0.1
    done
    echo "dns: no answer on port $port" >&2
    return 1
}

# One turn against the server on $port (process tree at $1): a warm-up, the CPU time
# per query at $rate q/s (appended to $2), then three runs at full load (their q/s
# appended to $3); then, unless skipped, three runs of kxdpgun (the answers per second
# appended to $4).
measure() {
    local out before after completed
    "${in_ns[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 1 "${load_flags[@]}" >/dev/null 2>&1 || true
    before=$(cpu_ticks "$1")
    out=$("${in_ns[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 4 "${load_flags[@]}" -Q "$rate" 2>&1)
    after=$(cpu_ticks "$1")
    completed=$(echo "$out" | awk '/Queries completed/ {print $3}')
    awk -v t=$((after - before)) -v q="$completed" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.0f\n", t * 1e9 / hz / q }' >>"$2"
    dnsperf_runs "$3" "${in_ns[@]}" dnsperf -s 127.0.0.1
    [ -z "$xdp_skip" ] || return 0
    xdp_runs "$4"
}

# Three runs of the dnsperf command given after $1 (up to the server address), their
# q/s appended to $1.
dnsperf_runs() {
    local file=$1 out
    shift
    for _ in 1 2 3; do
        out=$("$@" -p "$port" -d "$work/queries.txt" -l "$seconds" "${load_flags[@]}" 2>&1)
        echo "$out" | grep -E "Queries (sent|completed|lost)" | sed 's/^ */    /' >&2
        echo "$out" | awk '/Queries per second:/ {print $4}' >>"$file"
    done
}

# dnsperf from the generator's namespace over the veth: a warm-up, then three runs
# (q/s appended to $1).
veth_runs() {
    ip netns exec "$gen_ns" dnsperf -s 10.77.0.1 -p "$port" -d "$work/queries.txt" -l 1 "${load_flags[@]}" >/dev/null 2>&1 || true
    dnsperf_runs "$1" ip netns exec "$gen_ns" dnsperf -s 10.77.0.1
}

# A 1 s warm-up, then three runs of kxdpgun at $xdp_qps: the answers per second of each
# run that succeeded appended to $1.
xdp_runs() {
    local out
    xdp_load 1 100000 >/dev/null || true
    for _ in 1 2 3; do
        out=$(xdp_load "$seconds" "$xdp_qps") || continue
        echo "$out" | grep -E "total (queries|replies)" | sed 's/^ */    kxdpgun: /' >&2
        # "total replies:     2004105 (501026 pps) (54%)"
        echo "$out" | awk '/total replies:/ {gsub(/\(/, "", $4); print $4}' >>"$1"
    done
}

# kxdpgun for $1 s at $2 q/s from the generator's namespace. The kernel lets go of the
# last run's XDP socket a moment after it exits: a busy one is waited for.
xdp_load() {
    local out
    for _ in $(seq 1 40); do
        if out=$(ip netns exec "$gen_ns" kxdpgun -t "$1" -Q "$2" -p "$port" \
            -i "$work/queries.txt" 10.77.0.1 2>&1) \
            && echo "$out" | grep -q "total replies:"; then
            echo "$out"
            return 0
        fi
        echo "$out" | grep -q busy || break
        sleep 0.25
    done
    echo "dns: kxdpgun failed: $out" >&2
    return 1
}

# The smallest and the largest of the numbers in file $1, as "LOW-HIGH" in thousands.
spread() {
    sort -g "$1" | awk 'NR == 1 { low = $1 } { high = $1 } END { printf "%.0fk-%.0fk", low / 1000, high / 1000 }'
}

# The median of the numbers in file $1.
median() {
    sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# NSD's response rate limiting (on by default in Debian's build: 200 q/s per source
# netblock, then TC or nothing) is off: we have none, and the load comes from one host.
start_nsd() {
    cat > "$work/nsd.conf" <<CONF
server:
  server-count: 1
  username: ""
  chroot: ""
  rrl-ratelimit: 0
  ip-address: $listen@$port
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
    "${in_ns[@]}" nsd -c "$work/nsd.conf"
    for _ in $(seq 1 100); do [ -s "$work/nsd.pid" ] && break; sleep 0.05; done
    nsd_pid=$(cat "$work/nsd.pid")
}

# Stops NSD and waits for its whole process tree to be gone (the server child can
# outlive the process in the pidfile by a second).
stop_nsd() {
    local pids pid
    pids=$(tree "$nsd_pid")
    kill -TERM "$nsd_pid" 2>/dev/null || true
    for pid in $pids; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
    nsd_pid=
    sleep 0.3
}

nsd_version=$( (nsd -v 2>&1 || true) | awk 'NR == 1 {print $3}')

knot_skip=
if [ -n "$xdp_skip" ]; then
    knot_skip=$xdp_skip
elif ! command -v knotd >/dev/null; then
    knot_skip="knotd not installed (Debian package knot)"
fi
[ -z "$knot_skip" ] || echo "dns: Knot on AF_XDP skipped: $knot_skip" >&2
knot_version=$( (knotd -V 2>&1 || true) | awk 'NR == 1 {print $NF}')
knot_pid=

# Knot DNS on AF_XDP on the servers' end of the veth, serving $work/bench.test.zone.
start_knot() {
    mkdir -p "$work/knot"
    cat > "$work/knot.conf" <<CONF
server:
    rundir: $work/knot
    user: root
    pidfile: $work/knot/knot.pid
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    listen: 127.0.0.1@$port
xdp:
    listen: oasis-dns-s@$port
    udp: on
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
    knot_pid=$!
}

stop_knot() {
    kill -TERM "$knot_pid" 2>/dev/null || true
    wait "$knot_pid" 2>/dev/null || true
    knot_pid=
    ip -n "$srv_ns" link set oasis-dns-s xdp off 2>/dev/null || true
    sleep 0.3
}

# The floor under kxdpgun: what the kernel's UDP path alone allows on this machine.
xdp_floor=
if [ -z "$xdp_skip" ]; then
    gcc -O2 -Wall -Wextra -o "$work/dns-reflect" bench/peers/dns-reflect.c
    generate 10
    rm -f "$work/xdp.floor"
    for round in $(seq 1 "$rounds"); do
        echo "dns: floor, round $round: dns-reflect" >&2
        ip netns exec "$srv_ns" "$work/dns-reflect" 0.0.0.0 "$port" >"$work/reflect.log" 2>&1 &
        server_pid=$!
        sleep 0.5  # it answers no SOA for wait_answering to see
        xdp_runs "$work/xdp.floor"
        kill -TERM "$server_pid"
        wait "$server_pid" || true
        server_pid=
        sleep 0.3
    done
    if [ -s "$work/xdp.floor" ]; then
        xdp_floor=$(median "$work/xdp.floor")
        echo "    answers/s of the floor under kxdpgun: $(tr '\n' ' ' <"$work/xdp.floor")" >&2
    fi
fi
# The row of `oasis dns --backend xdp` beside a peer over the veth, for the size in $n:
# $1 what the row shows, $2 the peer as named in the table, $3 its short name, $4 the
# suffix of its result files (vqps.$4: dnsperf, xdp.$4: kxdpgun), $5 a closing note.
afxdp_row() {
    local ours_q peer_q ours_x peer_x
    ours_q=$(median "$work/vqps.afxdp")
    peer_q=$(median "$work/vqps.$4")
    ours_x=$(median "$work/xdp.afxdp")
    peer_x=$(median "$work/xdp.$4")
    printf '| dns | `oasis dns --backend xdp%s` %s, zone of %s names, over a veth: dnsperf %s and kxdpgun offering %s q/s, median of %s × 3 runs of %s s each | %.0f | n/a | %s | %.0f | %.2f× | dnsperf %.0f vs %.0f q/s: **%.2f of %s'"'"'s** (runs %s vs %s); kxdpgun %.0f vs %.0f answers/s: **%.2f of %s'"'"'s** (runs %s vs %s)%s |\n' \
        "${OASIS_ARGS:+ $OASIS_ARGS}" "$1" "$n" "${load_flags[*]}" "$xdp_qps" "$rounds" "$seconds" \
        "$(awk -v q="$ours_q" 'BEGIN { print 1e9 / q }')" "$2" \
        "$(awk -v q="$peer_q" 'BEGIN { print 1e9 / q }')" "$(awk -v a="$ours_q" -v b="$peer_q" 'BEGIN { print b / a }')" \
        "$ours_q" "$peer_q" "$(awk -v a="$ours_q" -v b="$peer_q" 'BEGIN { print a / b }')" "$3" \
        "$(spread "$work/vqps.afxdp")" "$(spread "$work/vqps.$4")" \
        "$ours_x" "$peer_x" "$(awk -v a="$ours_x" -v b="$peer_x" 'BEGIN { print a / b }')" "$3" \
        "$(spread "$work/xdp.afxdp")" "$(spread "$work/xdp.$4")" "$5"
}

baseline_ours=
baseline_nsd=
for n in "${sizes[@]}"; do
    generate "$n"
    records=$((n + 3))
    rm -f "$work"/{qps,cpu,xdp}.{ours,nsd} "$work"/{vqps,xdp}.{afxdp,nsd,knot}
    for round in $(seq 1 "$rounds"); do
        echo "dns: $n names, round $round: oasis dns" >&2
        # shellcheck disable=SC2086  # OASIS_ARGS: extra options, split on purpose
        "${in_ns[@]}" "$oasis" dns --zone "$work/bench.test.zone" --listen "$listen:$port" --workers 1 ${OASIS_ARGS:-} \
            >"$work/oasis.log" 2>&1 &
        server_pid=$!
        load_ours=$(wait_answering)
        pss_ours=$(pss_kib "$server_pid")
        measure "$server_pid" "$work/cpu.ours" "$work/qps.ours" "$work/xdp.ours"
        kill -TERM "$server_pid"
        wait "$server_pid" || true
        server_pid=
        sed 's/^/    /' "$work/oasis.log" >&2
        sleep 0.3

        echo "dns: $n names, round $round: NSD" >&2
        start_nsd
        load_nsd=$(wait_answering)
        pss_nsd=$(pss_kib "$nsd_pid")
        measure "$nsd_pid" "$work/cpu.nsd" "$work/qps.nsd" "$work/xdp.nsd"
        [ -n "$xdp_skip" ] || veth_runs "$work/vqps.nsd"
        stop_nsd

        [ -z "$xdp_skip" ] || continue
        echo "dns: $n names, round $round: oasis dns on AF_XDP" >&2
        # shellcheck disable=SC2086  # OASIS_ARGS: extra options, split on purpose
        "${in_ns[@]}" "$oasis" dns --zone "$work/bench.test.zone" --backend xdp --xdp oasis-dns-s \
            --ip 10.77.0.1/24 --listen "$port" ${OASIS_ARGS:-} >"$work/oasis.log" 2>&1 &
        server_pid=$!
        wait_answering veth >/dev/null
        veth_runs "$work/vqps.afxdp"
        xdp_runs "$work/xdp.afxdp"
        kill -TERM "$server_pid"
        wait "$server_pid" || true
        server_pid=
        sed 's/^/    /' "$work/oasis.log" >&2
        sleep 0.3

        [ -z "$knot_skip" ] || continue
        echo "dns: $n names, round $round: Knot DNS on AF_XDP" >&2
        start_knot
        wait_answering veth >/dev/null
        veth_runs "$work/vqps.knot"
        xdp_runs "$work/xdp.knot"
        stop_knot
    done
    qps_ours=$(median "$work/qps.ours")
    qps_nsd=$(median "$work/qps.nsd")
    cpu_ours=$(median "$work/cpu.ours")
    cpu_nsd=$(median "$work/cpu.nsd")
    echo "    q/s oasis: $(tr '\n' ' ' <"$work/qps.ours"); NSD: $(tr '\n' ' ' <"$work/qps.nsd")" >&2
    echo "    ns CPU/query at $rate q/s oasis: $(tr '\n' ' ' <"$work/cpu.ours"); NSD: $(tr '\n' ' ' <"$work/cpu.nsd")" >&2

    [ -n "$baseline_ours" ] || { baseline_ours=$pss_ours; baseline_nsd=$pss_nsd; baseline_n=$n; }
    ns_ours=$(awk -v q="$qps_ours" 'BEGIN { printf "%.0f", 1e9 / q }')
    ns_nsd=$(awk -v q="$qps_nsd" 'BEGIN { printf "%.0f", 1e9 / q }')
    ratio=$(awk -v a="$ns_ours" -v b="$ns_nsd" 'BEGIN { printf "%.2f×", a / b }')
    qps_ratio=$(awk -v a="$qps_ours" -v b="$qps_nsd" 'BEGIN { printf "%.2f", a / b }')
    cpu_ratio=$(awk -v a="$cpu_ours" -v b="$cpu_nsd" 'BEGIN { printf "%.2f", a / b }')
    # Below 100 000 names the difference is lost in allocator and buffer noise.
    if [ "$n" -ge 100000 ] && [ "$n" -gt "$baseline_n" ]; then
        per_record=$(awk -v a="$pss_ours" -v b="$baseline_ours" -v a2="$pss_nsd" -v b2="$baseline_nsd" -v r="$((n - baseline_n))" \
            'BEGIN { printf "memory per record %.0f B vs NSD %.0f B (%.2f×)", (a - b) * 1024 / r, (a2 - b2) * 1024 / r, (a - b) / (a2 - b2) }')
    else
        per_record="resident ${pss_ours} KiB vs NSD ${pss_nsd} KiB"
    fi
    printf '| dns | `oasis dns%s` (kernel sockets), zone of %s names, dnsperf %s, median of %s × 3 runs of %s s | %s | n/a | NSD %s | %s | %s | %.0f vs %.0f q/s: **%s of NSD'"'"'s q/s** (runs %s vs %s); CPU per query at %s q/s %s vs %s ns (**%s×**); %s; loaded in %s s vs %s s |\n' \
        "${OASIS_ARGS:+ $OASIS_ARGS}" "$n" "${load_flags[*]}" "$rounds" "$seconds" "$ns_ours" "$nsd_version" "$ns_nsd" "$ratio" \
        "$qps_ours" "$qps_nsd" "$qps_ratio" "$(spread "$work/qps.ours")" "$(spread "$work/qps.nsd")" "$rate" "$cpu_ours" "$cpu_nsd" "$cpu_ratio" \
        "$per_record" "$load_ours" "$load_nsd"
    [ -z "$xdp_skip" ] || continue
    if [ ! -s "$work/xdp.ours" ] || [ ! -s "$work/xdp.nsd" ]; then
        echo "dns: $n names: no kxdpgun run succeeded against one of the servers, no row" >&2
        continue
    fi
    xdp_ours=$(median "$work/xdp.ours")
    xdp_nsd=$(median "$work/xdp.nsd")
    echo "    answers/s under kxdpgun oasis: $(tr '\n' ' ' <"$work/xdp.ours"); NSD: $(tr '\n' ' ' <"$work/xdp.nsd")" >&2
    printf '| dns | `oasis dns%s` (kernel sockets), zone of %s names, kxdpgun offering %s q/s over a veth, median of %s × 3 runs of %s s | %.0f | n/a | NSD %s | %.0f | %.2f× | %.0f vs %.0f answers/s: **%.2f of NSD'"'"'s** (runs %s vs %s)%s |\n' \
        "${OASIS_ARGS:+ $OASIS_ARGS}" "$n" "$xdp_qps" "$rounds" "$seconds" \
        "$(awk -v q="$xdp_ours" 'BEGIN { print 1e9 / q }')" "$nsd_version" \
        "$(awk -v q="$xdp_nsd" 'BEGIN { print 1e9 / q }')" "$(awk -v a="$xdp_ours" -v b="$xdp_nsd" 'BEGIN { print b / a }')" \
        "$xdp_ours" "$xdp_nsd" "$(awk -v a="$xdp_ours" -v b="$xdp_nsd" 'BEGIN { print a / b }')" \
        "$(spread "$work/xdp.ours")" "$(spread "$work/xdp.nsd")" \
        "${xdp_floor:+$(awk -v f="$xdp_floor" -v a="$xdp_ours" -v b="$xdp_nsd" 'BEGIN { printf "; floor (bench/peers/dns-reflect.c) %.0f answers/s: oasis at %.2f of it, NSD at %.2f", f, a / f, b / f }')}"
    if [ ! -s "$work/vqps.afxdp" ] || [ ! -s "$work/xdp.afxdp" ] || [ ! -s "$work/vqps.nsd" ]; then
        echo "dns: $n names: no AF_XDP row (a load failed; see above)" >&2
        continue
    fi
    echo "    over the veth, dnsperf q/s oasis on AF_XDP: $(tr '\n' ' ' <"$work/vqps.afxdp"); NSD: $(tr '\n' ' ' <"$work/vqps.nsd")" >&2
    echo "    answers/s under kxdpgun oasis on AF_XDP: $(tr '\n' ' ' <"$work/xdp.afxdp")" >&2
    afxdp_row "(the Oasis stack on AF_XDP)" "NSD $nsd_version (kernel sockets, same veth)" NSD nsd \
        "${xdp_floor:+$(awk -v f="$xdp_floor" -v a="$(median "$work/xdp.afxdp")" 'BEGIN { printf "; at %.2f of the kernel-socket floor", a / f }')}"
    [ -z "$knot_skip" ] || continue
    if [ ! -s "$work/vqps.knot" ] || [ ! -s "$work/xdp.knot" ]; then
        echo "dns: $n names: no Knot row (a load failed; see above)" >&2
        continue
    fi
    echo "    Knot on AF_XDP: dnsperf q/s $(tr '\n' ' ' <"$work/vqps.knot"); kxdpgun answers/s $(tr '\n' ' ' <"$work/xdp.knot")" >&2
    afxdp_row "beside Knot DNS on AF_XDP" "Knot DNS $knot_version (its AF_XDP mode, one UDP worker, same veth)" Knot knot ""
done
