#!/usr/bin/env bash
# The benchmark harness entry point (`make bench`). Builds in release mode, preloads
# malloc-interposer and bench/retain-counter so that heap allocations and Swift
# retains per operation are counted, runs every
# figure beside its floor or peer in one run, and writes bench/out/results.md with
# the machine, the date and the command. Copy what you quote into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH

swift build -c release --product oasis-bench >/dev/null
swift build -c release --product oasis >/dev/null
bin=$(swift build -c release --show-bin-path)
mkdir -p bench/out
# Progress: which step of how many, the time so far, and about how long the step takes
# on a 2-core machine (what is left is the sum of the steps to come).
steps=(figures:3 devices:4 tcp:8 switch:6 openflow:4 flowsetup:3 dns:15 dns-workers:3)
started=$SECONDS
step() {  # NAME
    local index=0 left=0 minutes=0 entry found=0
    for entry in "${steps[@]}"; do
        index=$((index + (found ? 0 : 1)))
        if [ "${entry%%:*}" = "$1" ]; then found=1; minutes=${entry##*:}; fi
        [ $found = 1 ] && left=$((left + ${entry##*:}))
    done
    printf 'bench: step %d of %d: %s, about %d min (%d min so far, about %d left)\n' \
        "$index" "${#steps[@]}" "$1" "$minutes" $(((SECONDS - started) / 60)) "$left" >&2
}
out=bench/out/results.md
{
    echo "# Oasis bench run"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "- kernel: $(uname -r); $(swift --version 2>&1 | head -n1)"
    echo "- command: make bench ($*)"
    echo
} > "$out"
# Swift retains per operation: an LD_PRELOAD counter of swift_retain and its kin.
gcc -O2 -Wall -shared -fPIC -o bench/out/retain-counter.so bench/retain-counter/retain-counter.c -ldl
step figures
LD_PRELOAD="$bin/libMallocInterposerSwift.so $(pwd)/bench/out/retain-counter.so" \
    "$bin/oasis-bench" --out bench/out/figures.md "$@"
cat bench/out/figures.md >> "$out"
# The specialised receive and send path of `oasis` on AF_XDP: no dynamic dispatch.
{
    echo
    echo "Dispatch on the per-packet path of \`oasis\` over AF_XDP (bench/dispatch.sh):"
    echo
    bash bench/dispatch.sh "$bin/oasis" XdpDevice
} | tee -a "$out"
# The real backends against their C floors and the kernel: needs root and namespaces.
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
    step devices
    echo "devices: tap, pcap, xdp and the kernel (bench/devices.sh)"
    bash bench/devices.sh "$bin/oasis" "${DEVICE_ECHOES:-200000}" 32 64 | tee -a "$out"
else
    echo "devices: skipped (needs root for namespaces and TAP)" | tee -a "$out"
fi
# TCP: `oasis stack` on a TAP beside the kernel over a veth (and lwIP on the same TAP).
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v nft >/dev/null \
    && command -v ethtool >/dev/null; then
    step tcp
    echo "tcp: oasis stack beside the kernel and lwIP (bench/tcp.sh)"
    bash bench/tcp.sh "$bin/oasis" "${TCP_SECONDS:-5}" | tee -a "$out"
else
    echo "tcp: skipped (needs root, nft and ethtool)" | tee -a "$out"
fi
# OpenFlow: `oasis openflow switch` on AF_XDP ports beside Open vSwitch's userspace
# datapath (afxdp ports) and a C floor, forwarding 64-byte frames between two veths.
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v ovs-ofctl >/dev/null; then
    step switch
    echo "switch: oasis openflow switch beside Open vSwitch and a C floor (bench/switch.sh)"
    bash bench/switch.sh "$bin/oasis" "${SWITCH_SECONDS:-5}" | tee -a "$out"
else
    echo "switch: skipped (needs root and ovs-ofctl)" | tee -a "$out"
fi
# OpenFlow controllers: ours, ovs-testcontroller and os-ken under a cbench-like load.
if command -v ovs-testcontroller >/dev/null; then
    step openflow
    echo "openflow: oasis openflow controller beside ovs-testcontroller and os-ken (bench/openflow.sh)"
    bash bench/openflow.sh "$bin/oasis" "${OPENFLOW_SECONDS:-5}" | tee -a "$out"
else
    echo "openflow: skipped (needs ovs-testcontroller)" | tee -a "$out"
fi
# Flow setup: PACKET_IN to installed flow through ovs-testcontroller, beside OVS.
if [ "$(id -u)" -eq 0 ] && command -v ovs-testcontroller >/dev/null && command -v ovs-vswitchd >/dev/null; then
    step flowsetup
    echo "flowsetup: oasis openflow switch beside Open vSwitch, driven by ovs-testcontroller (bench/flowsetup.sh)"
    bash bench/flowsetup.sh "$bin/oasis" | tee -a "$out"
else
    echo "flowsetup: skipped (needs root, ovs-testcontroller and ovs-vswitchd)" | tee -a "$out"
fi
# DNS: `oasis dns` beside NSD under dnsperf, at four zone sizes.
if [ "$(id -u)" -eq 0 ] && command -v dnsperf >/dev/null && command -v nsd >/dev/null \
    && command -v dig >/dev/null; then
    step dns
    echo "dns: oasis dns and NSD under dnsperf (bench/dns.sh)"
    bash bench/dns.sh "$bin/oasis" "${DNS_SECONDS:-4}" | tee -a "$out"
else
    echo "dns: skipped (needs root, dnsperf, nsd and dig)" | tee -a "$out"
fi
# DNS by workers: oasis dns --workers W beside NSD server-count W and Knot udp-workers W.
if [ "$(id -u)" -eq 0 ] && command -v dnsperf >/dev/null && command -v nsd >/dev/null; then
    step dns-workers
    echo "dns-workers: queries per second by workers (bench/dns-workers.sh)"
    bash bench/dns-workers.sh "$bin/oasis" "${DNS_SECONDS:-4}" | tee -a "$out"
else
    echo "dns-workers: skipped (needs root, dnsperf and nsd)" | tee -a "$out"
fi
# Pictures of this run beside its tables.
bash bench/plot.sh "$out" bench/out/plots | tee -a "$out"
echo
echo "written: $out (plots in bench/out/plots)"
