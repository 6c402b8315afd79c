#!/usr/bin/env bash
# Shows that the stack's per-packet path is specialised for its device and makes no
# dynamic dispatch: disassembles the specialised receive and send functions of a
# release binary and lists, per function, every indirect call or jump (a closure,
# a witness table, a vtable) and every direct call to a protocol witness thunk.
# What should be left: the listener's callback (the application, by design) and
# nothing else.
#   bench/dispatch.sh BINARY DEVICE   e.g. .build/release/oasis-bench MemoryDevice
set -euo pipefail
binary=${1:-.build/release/oasis-bench}
device=${2:-MemoryDevice}
export PATH=/opt/swift/usr/bin:$PATH
listing=$(mktemp)
trap 'rm -f "$listing"' EXIT
objdump -d --no-show-raw-insn "$binary" | swift demangle --simplified > "$listing"
# The specialised functions of the layers, as the optimiser named them.
functions=$(grep -E "^[0-9a-f]+ <specialized (IPv4Stack|EthernetLink|IPv4Layer|UDPLayer|ICMPv4Layer)\.(receive|send|route|transmit|deliver|start|receiveIPv4|accepts)" "$listing" \
    | grep -E "$device|>:$" | sed -E 's/^[0-9a-f]+ <(.*)>:$/\1/' | sort -u)
echo "| specialised function | instructions | indirect calls | indirect jumps (switch tables) | calls to witness thunks |"
echo "| --- | ---: | ---: | ---: | ---: |"
while IFS= read -r name; do
    [ -n "$name" ] || continue
    body=$(awk -v name="<$name>:" '$2 == name || index($0, name) { on = 1; next } on && /^$/ { exit } on' "$listing")
    instructions=$(printf '%s\n' "$body" | grep -c $'\t' || true)
    calls=$(printf '%s\n' "$body" | grep -cE $'\tcall[[:space:]]+\\*' || true)
    jumps=$(printf '%s\n' "$body" | grep -cE $'\tjmp[[:space:]]+\\*' || true)
    witness=$(printf '%s\n' "$body" | grep -cE 'call.*<protocol witness for' || true)
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$instructions" "$calls" "$jumps" "$witness"
done <<< "$functions"
echo
echo "Indirect calls, with the instruction before each (what is loaded and called):"
while IFS= read -r name; do
    [ -n "$name" ] || continue
    awk -v name="<$name>:" 'index($0, name) { on = 1; next } on && /^$/ { exit } on' "$listing" \
        | grep -B1 -E $'\tcall[[:space:]]+\\*' | sed "s|^|  $name: |" || true
done <<< "$functions"
