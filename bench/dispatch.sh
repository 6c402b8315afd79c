#!/usr/bin/env bash
# Shows that the stack's per-packet path is specialised for its device and makes no
# dynamic dispatch: disassembles the layers' functions specialised for DEVICE (and
# not for a CapturingDevice around it), and the DNS server's batch that sends its
# answers down them, in a release binary and lists, per function,
# every indirect call or jump (a closure, a witness table, a vtable, a merged
# function's callee) and every direct call to a protocol witness thunk. What should be
# left: nothing in the layers (the listener's callback is called from the UDP
# layer's batch delivery, by design).
#   bench/dispatch.sh BINARY DEVICE   e.g. .build/release/oasis XdpDevice
set -euo pipefail
binary=${1:-.build/release/oasis-bench}
device=${2:-MemoryDevice}
export PATH=/opt/swift/usr/bin:$PATH
listing=$(mktemp)
trap 'rm -f "$listing"' EXIT
objdump -d --no-show-raw-insn "$binary" | swift demangle > "$listing"
# The layers' receive and send functions specialised for the device itself, as
# `generic specialization <…OasisDevices.DEVICE…> of OasisNet.LAYER.FUNCTION…`, and
# DNSService.serve specialised for the stack on DEVICE.
pattern="^[0-9a-f]+ <generic specialization <[^>]*[<, ]?OasisDevices\\.$device[>,].* of (OasisNet\\.(IPv4Stack|EthernetLink|IPv4Layer|UDPLayer|ICMPv4Layer)\\.(receive|send|route|transmit|deliver|start)|OasisServices\\.DNSService\\.serve<)"
functions=$(grep -E "$pattern" "$listing" | grep -v "CapturingDevice<OasisDevices.$device" \
    | sed -E 's/^[0-9a-f]+ <(.*)>:$/\1/' | sort -u)
if [ -z "$functions" ]; then
    echo "dispatch: no function of the layers specialised for $device in $binary" >&2
    exit 1
fi
# A short name: LAYER.FUNCTION, from `… of OasisNet.LAYER.FUNCTION<…>(…` or `…(…`.
short() { sed -E 's/.* of Oasis(Net|Services)\.([A-Za-z0-9]+)\.([a-zA-Z]+).*/\2.\3/' <<< "$1"; }
echo "| specialised for $device | instructions | indirect calls | indirect jumps (switch tables) | calls to witness thunks |"
echo "| --- | ---: | ---: | ---: | ---: |"
while IFS= read -r name; do
    body=$(awk -v name="<$name>:" 'index($0, name) { on = 1; next } on && /^$/ { exit } on' "$listing")
    instructions=$(printf '%s\n' "$body" | grep -c $'\t' || true)
    calls=$(printf '%s\n' "$body" | grep -cE $'\tcall[[:space:]]+\\*' || true)
    jumps=$(printf '%s\n' "$body" | grep -cE $'\tjmp[[:space:]]+\\*' || true)
    witness=$(printf '%s\n' "$body" | grep -cE 'call.*<protocol witness for' || true)
    printf '| %s | %s | %s | %s | %s |\n' "$(short "$name")" "$instructions" "$calls" "$jumps" "$witness"
done <<< "$functions"
echo
echo "Indirect calls, with the instruction before each (what is loaded and called):"
while IFS= read -r name; do
    awk -v name="<$name>:" 'index($0, name) { on = 1; next } on && /^$/ { exit } on' "$listing" \
        | grep -B1 -E $'\tcall[[:space:]]+\\*' | sed "s|^|  $(short "$name"): |" || true
done <<< "$functions"
