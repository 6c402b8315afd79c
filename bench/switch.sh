#!/usr/bin/env bash
# OpenFlow forwarding: `oasis openflow switch` beside Open vSwitch's userspace datapath
# and a C floor, measured in one run on the same veths with one generator:
#   - a generator namespace (g0) and a sink namespace (k0), each joined by a veth to a
#     switch namespace (s0 = OpenFlow port 1, s1 = port 2);
#   - bench/peers/frame-blast.c on g0 (pinned to CPU 0): one 64-byte UDP frame (60 B
#     before the FCS) again and again on AF_PACKET with PACKET_QDISC_BYPASS, sendmmsg
#     in batches of 64; the sink counts the frames that arrive by k0's rx_packets;
#   - on CPU 1: `oasis openflow switch --port xdp:s0 --port xdp:s1`; ovs-vswitchd on a
#     `datapath_type=netdev` bridge with `type=afxdp` ports on s0 and s1 (native XDP,
#     copy mode on a veth), its PMD thread on CPU 1 (pmd-cpu-mask 0x2) and the daemon
#     pinned there too; and bench/peers/xdp-forward.c, the C floor: frames copied from
#     one AF_XDP socket to the other through the same C shim (CShims/CXdp), no lookup;
#   - three flow sets, installed with ovs-ofctl (OpenFlow 1.0) on each switch's passive
#     listener (ours through bench/peers/of-relay.py, a controller session that stays
#     open): (a) one exact-match flow (wildcards 0, an untagged frame: dl_vlan 0xffff,
#     PCP 0; sent as a raw FLOW_MOD by of-relay.py, as ovs-ofctl cannot write it);
#     (b) 1 000 wildcard flows: 999 that do not match at priorities 2..1000, in four
#     shapes (nw_dst /32, tp_dst, nw_src /24, dl_src), and the matching one
#     `in_port=1` at the LOWEST priority (1); (c) one flow `actions=NORMAL` (the
#     sink's MAC learned first from 32 frames it sends).
# Each figure is the median of ROUNDS rounds (default 3) of SECONDS (default 5) after a
# 0.5 s warm-up, the three switches taking turns within a round. Then (TAP=0: left
# out) the same with TAP ports, ours `--port tap:t0 --port tap:t1` and OVS `type=tap`,
# the generator and the sink on the TAPs in the switch's namespace (no C floor).
# Needs root.
#   bench/switch.sh OASIS_BINARY [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-5}
rounds=${ROUNDS:-3}
bin=bench/out/bin
mkdir -p "$bin"
gcc -O2 -Wall -Wextra -o "$bin/frame-blast" bench/peers/frame-blast.c
gcc -O2 -Wall -Wextra -I CShims/CXdp/include -o "$bin/xdp-forward" bench/peers/xdp-forward.c \
    CShims/CXdp/cxdp.c
blast=$bin/frame-blast
ofctl=(ovs-ofctl -O OpenFlow10 -F openflow10 --timeout=20)
ovs=1
for tool in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl; do
    command -v "$tool" >/dev/null || { echo "switch: $tool is not installed (scripts/setup.sh installs openvswitch-switch): Open vSwitch left out" >&2; ovs=""; }
done
command -v ovs-ofctl >/dev/null || { echo "switch: ovs-ofctl is needed to install flows" >&2; exit 1; }

# NICE=-10 (say) runs the generator and every switch at that priority where other
# work shares the machine; the default leaves the priority alone.
priority=(nice -n "${NICE:-0}")
if [ "$(nproc)" -ge 2 ]; then
    gen_cpu=("${priority[@]}" taskset -c 0)
    switch_cpu=("${priority[@]}" taskset -c 1)
    pinning="generator on CPU 0, switches (oasis, ovs-vswitchd and its PMD thread, xdp-forward) on CPU 1"
else
    gen_cpu=("${priority[@]}")
    switch_cpu=("${priority[@]}")
    pinning="one CPU: nothing pinned"
fi
[ "${NICE:-0}" != 0 ] && pinning="$pinning, all at nice ${NICE}"
# OASIS_BUSY_POLL=µs: the Oasis switch's loop polls that long before it sleeps (as OVS's
# PMD thread polls without a pause); 0, the default, sleeps at once.
[ "${OASIS_BUSY_POLL:-0}" != 0 ] && pinning="$pinning, oasis with --busy-poll ${OASIS_BUSY_POLL}"
rm -f bench/out/switch-*.log bench/out/switch-*.txt

gmac=02:00:00:00:01:01
kmac=02:00:00:00:02:02
tag=swb-$$
namespaces=()
pids=()
ovsdir=""
ovs_stop() {
    [ -n "$ovsdir" ] || return 0
    local pid
    for daemon in ovs-vswitchd ovsdb-server; do
        pid=$(cat "$ovsdir/$daemon.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    # Bounded: the daemons are not our children, so poll for them to go.
    for _ in $(seq 50); do
        local alive=""
        for daemon in ovs-vswitchd ovsdb-server; do
            pid=$(cat "$ovsdir/$daemon.pid" 2>/dev/null || true)
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ] && alive=1
        done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    rm -rf "$ovsdir"
    ovsdir=""
}
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    ovs_stop
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

new_namespace() {
    ip netns add "$1"
    namespaces+=("$1")
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" sysctl -q -w net.ipv6.conf.default.disable_ipv6=1
    ip netns exec "$1" ip link set lo up
}
sw=$tag-sw
gen=$tag-gen
sink=$tag-sink
new_namespace "$sw"
new_namespace "$gen"
new_namespace "$sink"
ip link add s0 netns "$sw" type veth peer name g0 netns "$gen"
ip link add s1 netns "$sw" type veth peer name k0 netns "$sink"
ip netns exec "$gen" ip link set g0 address $gmac
ip netns exec "$sink" ip link set k0 address $kmac
for end in "$sw s0" "$sw s1" "$gen g0" "$sink k0"; do
    set -- $end
    ip netns exec "$1" ip link set "$2" up
done
set -- "$oasis" "$seconds"
# The sink has no address: what arrives is counted by the veth and dropped by IPv4.
# Where the generator sends and the sink counts: the veths' far ends, or (TAP ports)
# the TAPs themselves, in the switch's namespace.
gns=$gen gif=g0 kns=$sink kif=k0 ports=xdp
rx() { ip netns exec "$kns" cat /sys/class/net/$kif/statistics/rx_packets; }
gen_dropped() { ip netns exec "$gns" cat /sys/class/net/$gif/statistics/tx_dropped; }
# Frames s0's XDP program could not hand to the switch's socket (its receive ring full
# or its fill ring empty): the veth's rx_queue_0_drops.
socket_drops() { [ "$ports" = xdp ] || { echo 0; return; }; ip netns exec "$sw" ethtool -S s0 2>/dev/null | awk '/rx_queue_0_drops/ { print $2; f = 1 } END { if (!f) print 0 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Flow sets, written as ovs-ofctl add-flows files.
flows=bench/out/switch-flows
mkdir -p "$flows"
# (a) as ovs-ofctl prints it; sent as a raw FLOW_MOD (of-relay.py --exact-flow).
echo "in_port=1,vlan_tci=0x0000,dl_src=$gmac,dl_dst=$kmac,dl_type=0x0800,nw_tos=0,nw_proto=17,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=12345,tp_dst=9,actions=output:2" >"$flows/exact"
{
    for i in $(seq 2 1000); do
        case $((i % 4)) in
            0) echo "priority=$i,udp,nw_dst=10.1.$((i / 256)).$((i % 256)),actions=output:2" ;;
            1) echo "priority=$i,udp,tp_dst=$((1000 + i)),actions=output:2" ;;
            2) echo "priority=$i,ip,nw_src=10.2.$((i % 256)).0/24,actions=output:2" ;;
            3) echo "priority=$i,dl_src=02:00:00:aa:$(printf %02x $((i / 256))):$(printf %02x $((i % 256))),actions=output:2" ;;
        esac
    done
    echo "priority=1,in_port=1,actions=output:2"
} >"$flows/wild1000"
echo "actions=NORMAL" >"$flows/normal"

# Waits (TIMEOUT tenths of a second at most) until ovs-ofctl shows two ports at TARGET.
wait_for_ports() {  # TARGET PID LOG
    for _ in $(seq 100); do
        if ip netns exec "$sw" "${ofctl[@]}" show "$1" 2>/dev/null | grep -q '^ 2('; then return 0; fi
        if [ -n "$2" ] && ! kill -0 "$2" 2>/dev/null; then
            echo "switch: gave up waiting for $1: the switch exited; its log:" >&2
            cat "$3" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "switch: gave up waiting for $1: no port 2 in ovs-ofctl show after 10 s; log $3:" >&2
    tail -n 20 "$3" >&2 || true
    ip netns exec "$sw" "${ofctl[@]}" show "$1" >&2 || true
    return 1
}
install() {  # TARGET SET
    ip netns exec "$sw" "${ofctl[@]}" del-flows "$1"
    if [ "$2" = exact ]; then
        # wildcards 0, dl_vlan 0xffff: ovs-ofctl cannot write this (it reads a PCP as
        # "a VLAN tag is present"), so of-relay.py sends the FLOW_MOD itself.
        ip netns exec "$sw" python3 bench/peers/of-relay.py --exact-flow "${1##*:}" 1 2 $gmac $kmac \
            10.0.0.1 10.0.0.2 12345 9
    else
        ip netns exec "$sw" "${ofctl[@]}" add-flows "$1" "$flows/$2"
    fi
    local count
    # dump-aggregate: our switch does not finish a dump-flows of 700 flows or more.
    count=$(ip netns exec "$sw" "${ofctl[@]}" dump-aggregate "$1" | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p')
    local want
    want=$(wc -l <"$flows/$2")
    [ "$count" = "$want" ] || { echo "switch: $1 holds $count flows after installing $want ($2)" >&2; return 1; }
}

switch_pid=""
switch_log=""
target=""
relay_pid=""
start_oasis() {
    # Through bench/peers/of-relay.py: one controller session that stays open (a
    # release build of the switch crashes when an ovs-ofctl session on its passive
    # listener closes; see bench/RESULTS.md).
    local relay_log=bench/out/switch-relay.log
    ip netns exec "$sw" python3 bench/peers/of-relay.py 6653 6636 >"$relay_log" 2>&1 &
    relay_pid=$!
    pids+=("$relay_pid")
    for _ in $(seq 50); do grep -q ready "$relay_log" && break; sleep 0.1; done
    grep -q ready "$relay_log" || { echo "switch: gave up on of-relay.py: not listening after 5 s" >&2; cat "$relay_log" >&2; return 1; }
    switch_log=bench/out/switch-oasis.log
    local a=s0 b=s1
    [ "$ports" = tap ] && a=t0 b=t1
    ip netns exec "$sw" "${switch_cpu[@]}" "$oasis" openflow switch --port $ports:$a --port $ports:$b \
        --controller tcp:127.0.0.1:6653 --busy-poll "${OASIS_BUSY_POLL:-0}" >"$switch_log" 2>&1 &
    switch_pid=$!
    pids+=("$switch_pid")
    target=tcp:127.0.0.1:6636
    wait_for_ports "$target" "$switch_pid" "$switch_log"
}
start_floor() {
    switch_log=bench/out/switch-floor.log
    ip netns exec "$sw" "${switch_cpu[@]}" "$bin/xdp-forward" s0 s1 >"$switch_log" 2>&1 &
    switch_pid=$!
    pids+=("$switch_pid")
    for _ in $(seq 100); do
        grep -q ready "$switch_log" && return 0
        kill -0 "$switch_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "switch: gave up waiting for xdp-forward: not ready after 10 s or exited; its log:" >&2
    cat "$switch_log" >&2
    return 1
}
stop_switch() {
    kill -TERM "$switch_pid" 2>/dev/null || true
    wait "$switch_pid" 2>/dev/null || true
    if [ -n "$relay_pid" ]; then
        kill -TERM "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
        relay_pid=""
    fi
    sleep 0.5  # the kernel frees a closed socket's queue a moment later
}
vsctl() { ip netns exec "$sw" ovs-vsctl --db="unix:$ovsdir/db.sock" --timeout=10 "$@"; }
start_ovs() {
    ovsdir=$(mktemp -d /tmp/swbench-ovs.XXXXXX)
    export OVS_RUNDIR=$ovsdir OVS_DBDIR=$ovsdir OVS_LOGDIR=$ovsdir OVS_SYSCONFDIR=$ovsdir
    ovsdb-tool create "$ovsdir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec "$sw" ovsdb-server "$ovsdir/conf.db" --remote="punix:$ovsdir/db.sock" \
        --pidfile="$ovsdir/ovsdb-server.pid" --detach --log-file="$ovsdir/ovsdb-server.log" \
        2>>"$ovsdir/console.log"
    vsctl --no-wait init
    vsctl --no-wait set Open_vSwitch . other_config:pmd-cpu-mask=0x2
    ip netns exec "$sw" "${switch_cpu[@]}" ovs-vswitchd "unix:$ovsdir/db.sock" \
        --pidfile="$ovsdir/ovs-vswitchd.pid" --detach --log-file="$ovsdir/ovs-vswitchd.log" \
        2>>"$ovsdir/console.log"
    switch_pid=$(cat "$ovsdir/ovs-vswitchd.pid")
    switch_log=$ovsdir/ovs-vswitchd.log
    vsctl add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow10 fail-mode=secure
    if [ "$ports" = tap ]; then
        vsctl add-port br0 t0 -- set interface t0 type=tap ofport_request=1
        vsctl add-port br0 t1 -- set interface t1 type=tap ofport_request=2
    else
        vsctl add-port br0 s0 -- set interface s0 type=afxdp ofport_request=1 options:xdp-mode=native
        vsctl add-port br0 s1 -- set interface s1 type=afxdp ofport_request=2 options:xdp-mode=native
    fi
    vsctl set-controller br0 ptcp:6635:127.0.0.1
    target=tcp:127.0.0.1:6635
    wait_for_ports "$target" "$switch_pid" "$switch_log"
    local error
    for port in $([ "$ports" = tap ] && echo t0 t1 || echo s0 s1); do
        error=$(vsctl get interface "$port" error 2>/dev/null || true)
        [ -n "$error" ] && [ "$error" != '[]' ] && { echo "switch: ovs $port: $error" >&2; return 1; }
    done
    return 0
}

declare -A results
record() { results[$1]="${results[$1]:-} $2"; }
# The sink's MAC, for NORMAL: 32 frames from k0 (to the generator's MAC).
learn() { ip netns exec "$kns" "$blast" $kif $kmac $gmac 10.0.0.2 10.0.0.1 1 32 >/dev/null; sleep 0.1; }
# Waits until frames cross the switch (the ports may still be coming up): 64 frames
# at a time, 20 tries over about 10 s at most.
wait_for_forwarding() {  # KEY
    local before
    for _ in $(seq 20); do
        before=$(rx)
        ip netns exec "$gns" "$blast" $gif $gmac $kmac 10.0.0.1 10.0.0.2 1 64 >/dev/null
        sleep 0.5
        [ "$(rx)" -gt "$before" ] && return 0
    done
    echo "switch: gave up on $1: no frame reached the sink in 20 tries of 64 frames over 10 s" >&2
    ip netns exec "$sw" "${ofctl[@]}" dump-flows "$target" | head -n 5 >&2 || true
    return 1
}
measure() {  # KEY
    wait_for_forwarding "$1" || { record "$1" fail; return 0; }
    ip netns exec "$gns" "${gen_cpu[@]}" "$blast" $gif $gmac $kmac 10.0.0.1 10.0.0.2 0.5 >/dev/null
    sleep 0.1
    local before dropped ticks line after
    before=$(rx)
    dropped=$(gen_dropped)
    local missed
    missed=$(socket_drops)
    ticks=$(cpu_ticks "$switch_pid")
    [ "$kind" = ovs ] && [ "$ports" = xdp ] && ovs-appctl -t ovs-vswitchd dpif-netdev/pmd-stats-clear >/dev/null
    line=$(ip netns exec "$gns" "${gen_cpu[@]}" "$blast" $gif $gmac $kmac 10.0.0.1 10.0.0.2 "$seconds")
    sleep 0.1
    after=$(rx)
    local sent elapsed
    sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$line")
    elapsed=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
    local fps
    fps=$(awk -v n=$((after - before)) -v t="$elapsed" 'BEGIN { printf "%.0f", n / t }')
    local cpu
    if [ "$kind" = ovs ] && [ "$ports" = xdp ]; then
        # The PMD thread polls without a pause: its busy cycles per packet, from
        # OVS's own counters (TSC cycles at the CPU's nominal MHz).
        cpu=$(ovs-appctl -t ovs-vswitchd dpif-netdev/pmd-stats-show 2>/dev/null |
            sed -n 's/.*avg processing cycles per packet: *\([0-9.]*\).*/\1/p' | head -n1 |
            awk -v mhz="$mhz" '{ printf "%.0f", $1 / mhz * 1000 }')
        [ -z "$cpu" ] && cpu=n/a
    else
        cpu=$(awk -v t=$(($(cpu_ticks "$switch_pid") - ticks)) -v hz="$(getconf CLK_TCK)" -v n=$((after - before)) \
            'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e9 / n; else print "n/a" }')
    fi
    missed=$(($(socket_drops) - missed))
    echo "  $1: $line; delivered $((after - before)) ($fps/s); refused at g0 (veth full) $(($(gen_dropped) - dropped)); not taken by the switch's socket on s0 $missed; switch CPU ${cpu} ns/frame" >&2
    record "$1-missed" "$(awk -v n="$missed" -v s="$sent" 'BEGIN { if (s > 0) printf "%.0f", 100 * n / s; else print "n/a" }')"
    record "$1" "$fps"
    # On a TAP a full queue refuses the send (sendmmsg fails, and counts tx_dropped
    # too); on a veth the send succeeds and the peer's full ring drops it.
    local refused=$(($(gen_dropped) - dropped))
    [ "$ports" = tap ] && refused=0
    record "$1-offered" "$(awk -v n="$sent" -v d=$refused -v t="$elapsed" 'BEGIN { printf "%.0f", (n - d) / t }')"
    record "$1-cpu" "$cpu"
}

# SWITCHES="floor oasis ovs" (the default) chooses which take turns.
wanted() { [[ " ${SWITCHES:-floor oasis ovs} " == *" $1 "* ]]; }
mhz=$(awk -F: '/cpu MHz/ { printf "%.0f", $2; exit }' /proc/cpuinfo)
kind=""
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "switch: $rounds rounds of $seconds s per figure; $pinning; load average $load" >&2
# The TAPs, once a switch has made them: up, in the switch's namespace.
taps_up() {
    [ "$ports" = tap ] || return 0
    for tap in t0 t1; do
        ip netns exec "$sw" ip link set "$tap" up
        ip netns exec "$sw" sysctl -q -w net.ipv6.conf.$tap.disable_ipv6=1 2>/dev/null || true
    done
}
kinds=xdp
[ "${TAP:-1}" = 1 ] && kinds="xdp tap"
kinds=${PORTS:-$kinds}
for ports in $kinds; do
if [ "$ports" = tap ]; then
    gns=$sw gif=t0 kns=$sw kif=t1
    p=tap-
else
    gns=$gen gif=g0 kns=$sink kif=k0
    p=""
fi
for round in $(seq "$rounds"); do
    echo "round $round ($ports ports)" >&2
    if wanted floor && [ "$ports" = xdp ]; then
        kind=floor
        start_floor
        measure floor
        stop_switch
    fi

    if wanted oasis; then
        kind=oasis
        start_oasis
        taps_up
        for set in exact wild1000 normal; do
            install "$target" "$set"
            [ "$set" = normal ] && learn
            measure "${p}oasis-$set"
        done
        ip netns exec "$sw" "${ofctl[@]}" dump-flows "$target" >bench/out/switch-oasis-flows.txt 2>&1 || true
        stop_switch
    fi

    if [ -n "$ovs" ] && wanted ovs; then
        kind=ovs
        start_ovs
        taps_up
        for set in exact wild1000 normal; do
            install "$target" "$set"
            [ "$set" = normal ] && learn
            measure "${p}ovs-$set"
        done
        ip netns exec "$sw" "${ofctl[@]}" dump-flows "$target" >bench/out/switch-ovs-flows.txt || true
        cp "$switch_log" bench/out/switch-ovs-vswitchd.log 2>/dev/null || true
        ovs_stop
        sleep 0.5
    fi
done
done

median() {
    local sorted
    sorted=$(printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g || true)
    [ -z "$sorted" ] && { echo fail; return; }
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$sorted"
}
spread() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f×", a / b }'; }
value() { median ${results[$1]:-}; }
ns() { awk -v f="$1" 'BEGIN { if (f == "fail" || f == 0) print "n/a"; else printf "%.0f", 1e9 / f }'; }
row() {  # FIGURE OURS PEER-NAME PEER TARGET
    local a b
    a=$(value "$2")
    b=$(value "$4")
    echo "| switch | $1 | $a/s ($(ns "$a") ns) | $3 | $b/s ($(ns "$b") ns) | $(ratio "$a" "$b") | $5 | runs $(spread ${results[$2]:-}) vs $(spread ${results[$4]:-}); offered $(value "$2-offered") vs $(value "$4-offered")/s; not taken by the socket $(value "$2-missed") vs $(value "$4-missed") %; switch CPU per frame $(value "$2-cpu") vs $(value "$4-cpu") ns |"
}
echo
echo "OpenFlow 1.0 forwarding of 64-byte UDP frames between two AF_XDP ports on veths (bench/switch.sh, frames/s delivered at the sink and ns per frame, median of $rounds × $seconds s; ratio = Oasis / peer; $pinning; load average before: $load):"
echo
echo "| group | figure | Oasis | peer | its value | ratio | target | note |"
echo "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |"
if [ -n "$ovs" ]; then
    row "(a) one exact-match flow, AF_XDP ports" oasis-exact "Open vSwitch $(ovs-vswitchd --version | sed -n '1s/.* //p') userspace, afxdp ports" ovs-exact "≥ 1.5×"
    row "(b) 1 000 wildcard flows, the match lowest, AF_XDP ports" oasis-wild1000 "Open vSwitch userspace, afxdp ports" ovs-wild1000 "≥ 1.5×"
    row "(c) actions=NORMAL, AF_XDP ports" oasis-normal "Open vSwitch userspace, afxdp ports" ovs-normal "≥ 1.5×"
fi
if [ "${TAP:-1}" = 1 ] && [ -n "$ovs" ]; then
    row "(a) one exact-match flow, TAP ports" tap-oasis-exact "Open vSwitch userspace, type=tap ports" tap-ovs-exact "≥ 1.5×"
    row "(b) 1 000 wildcard flows, the match lowest, TAP ports" tap-oasis-wild1000 "Open vSwitch userspace, type=tap ports" tap-ovs-wild1000 "≥ 1.5×"
    row "(c) actions=NORMAL, TAP ports" tap-oasis-normal "Open vSwitch userspace, type=tap ports" tap-ovs-normal "≥ 1.5×"
fi
row "(a) one exact-match flow, AF_XDP ports" oasis-exact "C floor: xdp-forward (copy between two AF_XDP sockets)" floor "≥ 0.9×"
row "(b) 1 000 wildcard flows, AF_XDP ports" oasis-wild1000 "C floor: xdp-forward" floor ""
row "(c) actions=NORMAL, AF_XDP ports" oasis-normal "C floor: xdp-forward" floor ""
echo
echo "Offered = frames the generator got into g0 (sent minus the veth's tx_dropped) per second (on a TAP: the frames sendmmsg took; a full TAP queue refuses the rest); not taken by the socket = the share of the frames sent that s0's XDP program could not put in the switch's socket (receive ring full or fill ring empty; ethtool -S s0: rx_queue_0_drops); when the offered rate is near the delivered rate, the generator (CPU 0, which also runs s0's XDP program and the copy into the socket) is the limit, not the switch. Switch CPU per frame = the switch process's user+system time over the run per delivered frame (oasis, xdp-forward, and ovs-vswitchd with TAP ports, which its main thread serves); for Open vSwitch on afxdp ports, whose PMD thread polls without a pause, its \`pmd-stats-show\` \"avg processing cycles per packet\" at ${mhz:-?} MHz."
[ -f bench/out/switch-oasis.log ] && echo "oasis said on exit (last round): $(tail -n 6 bench/out/switch-oasis.log | tr '\n' ' ')"
exit 0
