#!/usr/bin/env bash
# Flow setup rate: PACKET_IN to installed flow, `oasis openflow switch` beside Open
# vSwitch's userspace datapath, both driven by ovs-testcontroller (a learning switch
# that answers a frame to a known MAC with a FLOW_MOD naming the buffered frame).
#
# Topology (namespaces made and removed here): gen:g0 — sw:s0, sink:k0 — sw:s1; the
# switch owns s0 and s1 (ours by pcap, OVS's netdev datapath by its AF_PACKET "system"
# ports: the same kind of port), ovs-testcontroller on 127.0.0.1:6653 in sw. The sink
# says hello once (the controller learns its MAC), then frame-blast sends frames from g0
# to the sink for 2 s at an offered RATE, each from a new source MAC: RATE new flows a
# second. The flow count (ovs-ofctl dump-aggregate through a passive listener) is read
# every 0.1 s until it stops growing for 2 s or SECONDS pass; the setup rate is the flows
# installed over the time until the last one was. For each rate in RATES (default
# "2000 8000 32000"), rounds alternate the switches, each run on a fresh switch; medians.
#   bench/flowsetup.sh OASIS_BINARY [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
oasis=$1
limit=${2:-20}
offered_rates=${RATES:-2000 8000 32000}
burst=2
rounds=${ROUNDS:-3}
out=bench/out
mkdir -p "$out/bin"
gcc -O2 -Wall -o "$out/bin/frame-blast" bench/peers/frame-blast.c || exit 1
for tool in ovs-testcontroller ovs-ofctl ovs-vswitchd ovsdb-server; do
    command -v $tool >/dev/null || { echo "flowsetup: $tool is not installed (scripts/setup.sh)"; exit 1; }
done
sw=fs-sw-$$ gen=fs-gen-$$ sink=fs-sink-$$
pids=()
ovsdir=""
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    pids=()
    if [ -n "$ovsdir" ]; then
        for f in "$ovsdir"/ovs-vswitchd.pid "$ovsdir"/ovsdb-server.pid; do
            [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
        done
        rm -rf "$ovsdir"
        ovsdir=""
    fi
}
teardown() { cleanup; rm -rf /tmp/fs-ctl-$$; for ns in $sw $gen $sink; do ip netns del $ns 2>/dev/null; done; }
trap teardown EXIT
for ns in $sw $gen $sink; do
    ip netns add $ns
    ip -n $ns link set lo up
    ip netns exec $ns sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n $sw link add s0 type veth peer name g0 netns $gen
ip -n $sw link add s1 type veth peer name k0 netns $sink
for l in "$sw s0" "$sw s1" "$gen g0" "$sink k0"; do set -- $l; ip -n $1 link set $2 up; done
gmac=02:00:00:00:00:00 kmac=$(ip netns exec $sink cat /sys/class/net/k0/address)
ofctl=(ip netns exec $sw ovs-ofctl -O OpenFlow10)

start_controller() {
    mkdir -p /tmp/fs-ctl-$$
    OVS_RUNDIR=/tmp/fs-ctl-$$ ip netns exec $sw ovs-testcontroller -O OpenFlow10 ptcp:6653:127.0.0.1 \
        >"$out/flowsetup-controller.log" 2>&1 &
    pids+=($!)
    sleep 0.3
}
start_oasis() {
    ip netns exec $sw taskset -c 1 "$oasis" openflow switch --port pcap:s0 --port pcap:s1 \
        --controller tcp:127.0.0.1:6653 --listen ptcp:6634 >"$out/flowsetup-oasis.log" 2>&1 &
    pids+=($!)
}
start_ovs() {
    ovsdir=$(mktemp -d /tmp/fs-ovs.XXXXXX)
    local env=(env OVS_RUNDIR=$ovsdir OVS_DBDIR=$ovsdir OVS_LOGDIR=$ovsdir)
    "${env[@]}" ovsdb-tool create "$ovsdir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec $sw "${env[@]}" ovsdb-server "$ovsdir/conf.db" --remote="punix:$ovsdir/db.sock" \
        --pidfile="$ovsdir/ovsdb-server.pid" --detach --log-file="$ovsdir/ovsdb-server.log"
    local vsctl=(ip netns exec $sw "${env[@]}" ovs-vsctl --db="unix:$ovsdir/db.sock" --timeout=10)
    "${vsctl[@]}" --no-wait init
    ip netns exec $sw "${env[@]}" taskset -c 1 ovs-vswitchd "unix:$ovsdir/db.sock" \
        --pidfile="$ovsdir/ovs-vswitchd.pid" --detach --log-file="$ovsdir/ovs-vswitchd.log"
    "${vsctl[@]}" add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow10 fail-mode=secure
    "${vsctl[@]}" add-port br0 s0 -- set interface s0 ofport_request=1
    "${vsctl[@]}" add-port br0 s1 -- set interface s1 ofport_request=2
    "${vsctl[@]}" set-controller br0 tcp:127.0.0.1:6653 ptcp:6634:127.0.0.1
}
flow_count() {
    "${ofctl[@]}" dump-aggregate tcp:127.0.0.1:6634 2>/dev/null | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p'
}
# One run: the switch up and connected, the sink learned, the burst, the count.
measure() {
    local kind=$1
    start_controller
    "start_$kind"
    local deadline=$((SECONDS + 10))
    until [ -n "$(flow_count)" ]; do
        [ $SECONDS -ge $deadline ] && { echo "flowsetup: $kind: no listener on ptcp:6634 within 10 s" >&2; cleanup; return 1; }
        sleep 0.1
    done
    sleep 1  # the controller's handshake
    ip netns exec $sink "$out/bin/frame-blast" k0 "$kmac" ff:ff:ff:ff:ff:ff 10.0.0.2 10.0.0.255 1 1 >/dev/null
    sleep 0.5
    local before start last count previous=-1 stable
    before=$(flow_count)
    start=$(date +%s.%N)
    ip netns exec $gen taskset -c 0 "$out/bin/frame-blast" g0 "$gmac" "$kmac" 10.0.0.1 10.0.0.2 \
        $((burst + 1)) "$flows" "$flows" "$rate" >/dev/null
    last=$start stable=$(date +%s.%N)
    while :; do
        count=$(flow_count)
        local t
        t=$(date +%s.%N)
        if [ "${count:-0}" != "$previous" ]; then previous=${count:-0}; last=$t; stable=$t; fi
        awk -v t="$t" -v s="$stable" -v st="$start" -v l="$limit" 'BEGIN { exit !((t - s) >= 2 || (t - st) >= l) }' && break
        [ "$previous" -ge $((before + flows)) ] && break
        sleep 0.1
    done
    local installed=$((previous - before))
    awk -v n="$installed" -v a="$start" -v b="$last" -v k="$kind" -v f="$flows" \
        'BEGIN { d = b - a; if (d <= 0) d = 0.1; printf "%s installed=%d of %d seconds=%.2f rate=%.0f\n", k, n, f, d, n / d }'
    cleanup
}
declare -A results
echo "flowsetup: offered rates $offered_rates flows/s for $burst s each, $rounds rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for rate in $offered_rates; do
    flows=$((rate * burst))
    for round in $(seq "$rounds"); do
        for kind in oasis ovs; do
            line=$(measure $kind) || continue
            echo "offered $rate/s, round $round: $line" >&2
            results[$kind-$rate]="${results[$kind-$rate]:-} $(sed -n 's/.*rate=\([0-9]*\).*/\1/p' <<<"$line")"
            results[$kind-$rate-n]="${results[$kind-$rate-n]:-} $(sed -n 's/.*installed=\([0-9]*\).*/\1/p' <<<"$line")"
        done
    done
done
median() { printf '%s\n' "$@" | grep -E '^[0-9]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "fail"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "Flow setup (PACKET_IN to installed flow) through ovs-testcontroller on pcap / AF_PACKET ports on veths, new flows offered for $burst s at each rate, switch on CPU 1, generator on CPU 0 ($rounds rounds, medians; $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
echo "| offered flows/s | oasis: installed/s | flows installed (rounds) | Open vSwitch $(ovs-vswitchd --version | sed -n '1s/.* //p') userspace: installed/s | flows installed (rounds) | ratio |"
echo "| ---: | ---: | --- | ---: | --- | ---: |"
for rate in $offered_rates; do
    a=$(median ${results[oasis-$rate]:-}) b=$(median ${results[ovs-$rate]:-})
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f×", a / b }')
    echo "| $rate | $a | ${results[oasis-$rate-n]:-} of $((rate * burst)) | $b | ${results[ovs-$rate-n]:-} of $((rate * burst)) | $ratio |"
done
