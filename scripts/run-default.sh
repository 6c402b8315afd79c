#!/usr/bin/env bash
# The main job on its built-in default (`make run`): the Oasis stack on a TAP device in
# a network namespace of its own, with a ping responder, UDP echo on port 7 and TCP
# echo, discard and chargen on 7, 9 and 19. This
# script pings it once from the kernel's side to show it answering, then leaves it
# serving until Ctrl-C (the stack removes its namespace on the way out).
# Without root (no namespaces), it runs the two stacks of the memory backend instead.
set -euo pipefail
oasis=${1:-.build/release/oasis}

if [ "$(id -u)" -ne 0 ]; then
    echo "run: not root, so no TAP or namespace: running the memory backend instead"
    exec "$oasis" stack --backend memory
fi

log=$(mktemp)
"$oasis" stack --backend tap --ip 192.0.2.2/24 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; cat "$log"; rm -f "$log"' EXIT
trap 'exit 0' INT TERM
for _ in $(seq 50); do
    grep -q "ping it with" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
done
cat "$log"
namespace=$(sed -n 's/.*ip netns exec \([^ ]*\) ping.*/\1/p' "$log")
echo "== the kernel pings the Oasis stack from $namespace:"
ip netns exec "$namespace" ping -c 3 -i 0.2 192.0.2.2
echo "== UDP echo from a kernel socket:"
echo "hello, oasis" | ip netns exec "$namespace" nc -u -w 1 192.0.2.2 7 || true
echo "== TCP echo from a kernel socket (the Oasis stack's own TCP):"
echo "hello over TCP" | ip netns exec "$namespace" nc -N -w 2 192.0.2.2 7 || true
echo "== serving until Ctrl-C (try: ip netns exec $namespace ping 192.0.2.2)"
: >"$log"
wait "$pid"
