#!/bin/sh
# The network test, run in dom0 once the Oasis netfront is Connected (busybox sh):
# 20 pings 50 ms apart, then 20 UDP echo datagrams to port 7, both to the Oasis stack.
# Prints "OASIS-XEN-TEST: MODE ping|udp PASS|FAIL ..." with the round-trip times;
# under QEMU's software emulation those times say little in absolute terms.
#   oasis-net-test MODE ADDRESS
mode=$1 address=$2
uptime_s() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "OASIS-XEN-TEST: $mode $* (dom0 uptime $(uptime_s) s)"; }

# iputils ping by its path (busybox sh would run its own applet for a bare "ping");
# one ping to settle ARP before the measured run (the stack also announces itself)
/usr/bin/ping -c 1 -W 5 "$address" >/dev/null 2>&1
/usr/bin/ping -c 20 -i 0.05 -W 2 "$address" >/tmp/ping.log 2>&1
sed 's/^/ping| /' /tmp/ping.log
rtt=$(grep -E '^(rtt|round-trip)' /tmp/ping.log)
if grep -q ' 0% packet loss' /tmp/ping.log; then
    mark "ping PASS 20/20, $rtt (emulated: not a real-hardware figure)"
else
    mark "ping FAIL $(grep 'packet loss' /tmp/ping.log)"
fi

if udp-echo-client "$address" 7 20 64 2000 >/tmp/udp.log 2>&1; then
    mark "udp PASS $(tail -n1 /tmp/udp.log) (emulated: not a real-hardware figure)"
else
    sed 's/^/udp| /' /tmp/udp.log
    mark "udp FAIL $(tail -n1 /tmp/udp.log)"
fi
