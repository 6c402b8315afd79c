#!/usr/bin/env bash
# Queries per second of `oasis dns --backend socket` beside NSD's, under the same
# dnsperf load, on the same generated zone and query file, one server after the other
# in the same run, at several zone sizes; with resident memory per record and load time.
# Memory is the proportional set size (Pss) of the server's processes after loading,
# per record above the smallest zone's. Needs dnsperf, nsd and dig installed; runs on
# loopback only. Prints Markdown rows like oasis-bench's (ns/op = 1 s / queries per s).
#   bench/dns.sh OASIS_BINARY [SECONDS] [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-4}
shift 2 || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 1000 100000 1000000)
load_flags=(-c 4 -q 500)

work=$(mktemp -d /tmp/oasis-bench-dns.XXXXXX)
port=$((25000 + $$ % 5000))
server_pid=
nsd_pid=
cleanup() {
    [ -n "$server_pid" ] && { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    [ -n "$nsd_pid" ] && stop_nsd
    rm -rf "$work"
}
trap cleanup EXIT

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

# Proportional set size of PID and its children, in KiB (shared pages split fairly:
# NSD's server child shares the zone with its parent).
pss_kib() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Seconds until the server on $port answers (gives up after 120 s).
wait_answering() {
    local start=$EPOCHREALTIME
    for _ in $(seq 1 1200); do
        if dig @127.0.0.1 -p "$port" +tries=1 +time=1 +short bench.test SOA >/dev/null 2>&1 \
            && [ -n "$(dig @127.0.0.1 -p "$port" +tries=1 +time=1 +short bench.test SOA)" ]; then
            awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
            return 0
        fi
        sleep 0.1
    done
    echo "dns: no answer on port $port" >&2
    return 1
}

# dnsperf's queries per second against $port (warm-up of 1 s first).
measure() {
    dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 1 "${load_flags[@]}" >/dev/null 2>&1 || true
    local out
    out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$seconds" "${load_flags[@]}" 2>&1)
    echo "$out" | grep -E "Queries (sent|completed|lost)|Response codes" | sed 's/^ */    /' >&2
    echo "$out" | awk '/Queries per second:/ {print $4}'
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
  ip-address: 127.0.0.1@$port
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
    nsd -c "$work/nsd.conf"
    for _ in $(seq 1 100); do [ -s "$work/nsd.pid" ] && break; sleep 0.05; done
    nsd_pid=$(cat "$work/nsd.pid")
}

stop_nsd() {
    kill -TERM "$nsd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$nsd_pid" 2>/dev/null || break; sleep 0.05; done
    nsd_pid=
    sleep 0.3
}

nsd_version=$( (nsd -v 2>&1 || true) | awk 'NR == 1 {print $3}')
baseline_ours=
baseline_nsd=
for n in "${sizes[@]}"; do
    generate "$n"
    records=$((n + 3))
    echo "dns: $n names: oasis dns" >&2
    "$oasis" dns --zone "$work/bench.test.zone" --listen "127.0.0.1:$port" >"$work/oasis.log" 2>&1 &
    server_pid=$!
    load_ours=$(wait_answering)
    pss_ours=$(pss_kib "$server_pid")
    qps_ours=$(measure)
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
    sed 's/^/    /' "$work/oasis.log" >&2
    sleep 0.3

    echo "dns: $n names: NSD" >&2
    start_nsd
    load_nsd=$(wait_answering)
    pss_nsd=$(pss_kib "$nsd_pid")
    qps_nsd=$(measure)
    stop_nsd

    [ -n "$baseline_ours" ] || { baseline_ours=$pss_ours; baseline_nsd=$pss_nsd; baseline_n=$n; }
    ns_ours=$(awk -v q="$qps_ours" 'BEGIN { printf "%.0f", 1e9 / q }')
    ns_nsd=$(awk -v q="$qps_nsd" 'BEGIN { printf "%.0f", 1e9 / q }')
    ratio=$(awk -v a="$ns_ours" -v b="$ns_nsd" 'BEGIN { printf "%.2f×", a / b }')
    qps_ratio=$(awk -v a="$qps_ours" -v b="$qps_nsd" 'BEGIN { printf "%.2f", a / b }')
    # Below 100 000 names the difference is lost in allocator and buffer noise.
    if [ "$n" -ge 100000 ] && [ "$n" -gt "$baseline_n" ]; then
        per_record=$(awk -v a="$pss_ours" -v b="$baseline_ours" -v a2="$pss_nsd" -v b2="$baseline_nsd" -v r="$((n - baseline_n))" \
            'BEGIN { printf "memory per record %.0f B vs NSD %.0f B (%.2f×)", (a - b) * 1024 / r, (a2 - b2) * 1024 / r, (a - b) / (a2 - b2) }')
    else
        per_record="resident ${pss_ours} KiB vs NSD ${pss_nsd} KiB"
    fi
    printf '| dns | `oasis dns` (kernel sockets), zone of %s names, dnsperf %s, %s s | %s | n/a | NSD %s | %s | %s | %.0f vs %.0f q/s: **%s of NSD'"'"'s q/s**; %s; loaded in %s s vs %s s |\n' \
        "$n" "${load_flags[*]}" "$seconds" "$ns_ours" "$nsd_version" "$ns_nsd" "$ratio" \
        "$qps_ours" "$qps_nsd" "$qps_ratio" "$per_record" "$load_ours" "$load_nsd"
done
