#!/usr/bin/env bash
# OpenFlow controllers under a cbench-like load (bench/peers/of-load.c: emulated
# switches complete the handshake, then send PACKET_INs; every FLOW_MOD and PACKET_OUT
# that comes back counts as a response, as cbench counts). Three controllers, each a
# learning switch, on kernel sockets over loopback, one fresh process per run:
#   - `oasis openflow controller --app learning` (OASIS_BINARY; a release build);
#   - the same with `--busy-poll 200` ("oasis+poll": its loop polls 200 µs before it
#     sleeps, trading idle CPU for a wake-up per round trip; the CPU column shows it);
#   - `ovs-testcontroller` (Debian openvswitch-testcontroller; one FLOW_MOD carrying
#     the buffer id per PACKET_IN, as ours);
#   - os-ken's simple_switch shape (bench/peers/osken_simple_switch.py, PyPI os-ken<3
#     in OSKEN_PYTHON's environment; FLOW_MOD *and* PACKET_OUT per PACKET_IN: it
#     scores twice per probe).
# Latency mode (one PACKET_IN outstanding per switch) and throughput mode (as many as
# the socket takes), with 1, 4 and 16 switches (SWITCHES="1 4 16"). The controller runs
# on core 1 and the generator on core 0 (taskset). Besides responses/s: the
# controller's CPU time per response (utime+stime over the run) and its resident
# memory after the run over its memory before the switches connected, per switch.
# A peer that is not installed, or that does not listen within 10 s, is left out with
# the reason printed; every run is bounded by `timeout`. OF_LOAD_SPIN=1 has the
# generator poll without sleeping (its own wake-up then leaves the latency figures).
#   bench/openflow.sh OASIS_BINARY [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-5}
switch_counts=${SWITCHES:-1 4 16}
osken_python=${OSKEN_PYTHON:-/opt/oasis-peers/osken/bin/python}  # scripts/setup.sh makes it
out=bench/out
mkdir -p "$out/bin" "$out/ovs"
gcc -O2 -Wall -o "$out/bin/of-load" bench/peers/of-load.c || exit 1
gcc -O2 -Wall -o "$out/bin/tcp-pingpong" bench/peers/tcp-pingpong.c || exit 1
port=16653
hz=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Starts controller $1 on $port in the background; echoes its pid, or nothing.
start_controller() {
    case $1 in
    oasis)
        taskset -c 1 "$oasis" openflow controller --listen "127.0.0.1:$port" --app learning \
            >"$out/controller.log" 2>&1 &
        ;;
    oasis+poll)
        taskset -c 1 "$oasis" openflow controller --listen "127.0.0.1:$port" --app learning \
            --busy-poll "${BUSY_POLL:-200}" >"$out/controller.log" 2>&1 &
        ;;
    ovs-testcontroller)
        OVS_RUNDIR=$PWD/$out/ovs taskset -c 1 ovs-testcontroller -O OpenFlow10 \
            "ptcp:$port:127.0.0.1" >"$out/controller.log" 2>&1 &
        ;;
    os-ken)
        taskset -c 1 "$osken_python" bench/peers/osken_simple_switch.py "$port" \
            >"$out/controller.log" 2>&1 &
        ;;
    esac
    local pid=$!
    for _ in $(seq 100); do
        if ss -ltn "sport = :$port" | grep -q LISTEN; then
            echo "$pid"
            return
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

available=()
command -v "$oasis" >/dev/null || [ -x "$oasis" ] && available+=(oasis oasis+poll)
if command -v ovs-testcontroller >/dev/null; then
    available+=(ovs-testcontroller)
else
    echo "left out: ovs-testcontroller is not installed (Debian openvswitch-testcontroller)"
fi
if "$osken_python" -c "import os_ken" 2>/dev/null; then
    available+=(os-ken)
else
    echo "left out: os-ken: '$osken_python' cannot import os_ken (pip install 'os-ken<3'; OSKEN_PYTHON=...)"
fi

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $seconds s per run, generator spinning: ${OF_LOAD_SPIN:-0}, load average $(cut -d" " -f1-3 /proc/loadavg)"
# The floor under latency mode with one switch: one 82-byte message there and back over
# loopback TCP, both ends polling; no controller answers one outstanding request faster.
echo "# floor: $(timeout 20 "$out/bin/tcp-pingpong" 3 82) (bench/peers/tcp-pingpong.c: loopback TCP, both ends polling, CPU 0 and 1)"
printf "%-20s %-10s %8s %12s %10s %12s %12s %11s\n" controller mode switches responses/s flow-mods packet-outs "µs CPU/resp" "KiB/switch"
for controller in "${available[@]}"; do
    for mode in latency throughput; do
        for switches in $switch_counts; do
            pid=$(start_controller "$controller")
            if [ -z "$pid" ]; then
                echo "$controller: did not listen on $port within 10 s: left out ($(tail -n 2 "$out/controller.log" | tr '\n' ' '))"
                continue
            fi
            rss_before=$(rss_kib "$pid")
            ticks_before=$(cpu_ticks "$pid")
            result=$(timeout $((seconds + 20)) taskset -c 0 "$out/bin/of-load" 127.0.0.1 "$port" \
                "$switches" "$seconds" "$mode" 2>&1 | tail -n 1)
            ticks_after=$(cpu_ticks "$pid")
            rss_after=$(rss_kib "$pid")
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            responses=$(sed -n 's/.*responses=\([0-9]*\).*/\1/p' <<<"$result")
            rate=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' <<<"$result")
            flowmods=$(sed -n 's/.*flowmods=\([0-9]*\).*/\1/p' <<<"$result")
            packetouts=$(sed -n 's/.*packetouts=\([0-9]*\).*/\1/p' <<<"$result")
            if [ -z "$rate" ]; then
                echo "$controller $mode $switches: no result: $result"
                continue
            fi
            # CPU over the whole run (warm-up second included), per response measured.
            cpu=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$hz" -v r="$responses" \
                'BEGIN { if (r > 0) printf "%.2f", t / hz * 1e6 / r; else print "-" }')
            memory=$(awk -v a="$rss_after" -v b="$rss_before" -v s="$switches" \
                'BEGIN { printf "%.0f", (a - b) / s }')
            printf "%-20s %-10s %8s %12s %10s %12s %12s %11s\n" "$controller" "$mode" "$switches" \
                "$rate" "$flowmods" "$packetouts" "$cpu" "$memory"
            sleep 0.5
        done
    done
done
