#!/bin/sh
# The network test, run in dom0 once the Oasis netfront is Connected (busybox sh):
# 20 pings 50 ms apart, 20 UDP echo datagrams to port 7, 5 UDP datagrams of 3000
# bytes (IP fragments both ways), and 2 MiB through the stack's TCP echo (port 7) with
# busybox nc: with `--offload` the kernel's TSO segments reach the netfront whole
# (netback's feature-gso-tcpv4 extra slot) and the stack's 64 KiB segments leave the
# same way. Prints "OASIS-XEN-TEST: MODE ping|udp|udp-large|tcp[SUFFIX] PASS|FAIL
# ..." with the round-trip times; under QEMU's software emulation those times say
# little in absolute terms.
#   oasis-net-test MODE ADDRESS [SUFFIX]
mode=$1 address=$2 suffix=${3:-}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "OASIS-XEN-TEST: $mode $* (dom0 uptime $(uptime_s) s)"; }

# iputils ping by its path (busybox sh would run its own applet for a bare "ping");
# one ping to settle ARP before the measured run (the stack also announces itself)
/usr/bin/ping -c 1 -W 5 "$address" >/dev/null 2>&1
/usr/bin/ping -c 20 -i 0.05 -W 2 "$address" >/tmp/ping.log 2>&1
sed 's/^/ping| /' /tmp/ping.log
rtt=$(grep -E '^(rtt|round-trip)' /tmp/ping.log)
if grep -q ' 0% packet loss' /tmp/ping.log; then
    mark "ping$suffix PASS 20/20, $rtt (emulated: not a real-hardware figure)"
else
    mark "ping$suffix FAIL $(grep 'packet loss' /tmp/ping.log)"
fi

if udp-echo-client "$address" 7 20 64 2000 >/tmp/udp.log 2>&1; then
    mark "udp$suffix PASS $(tail -n1 /tmp/udp.log) (emulated: not a real-hardware figure)"
else
    sed 's/^/udp| /' /tmp/udp.log
    mark "udp$suffix FAIL $(tail -n1 /tmp/udp.log)"
fi

if udp-echo-client "$address" 7 5 3000 3000 >/tmp/udp-large.log 2>&1; then
    mark "udp-large$suffix PASS $(tail -n1 /tmp/udp-large.log) (IP fragments each way)"
else
    sed 's/^/udp-large| /' /tmp/udp-large.log
    mark "udp-large$suffix FAIL $(tail -n1 /tmp/udp-large.log)"
fi

# busybox nc does not half-close at the end of its input: -w ends it once the echo
# has been idle for 5 s.
want=2097152
got=$(head -c "$want" /dev/urandom | timeout 120 nc -w 5 "$address" 7 | wc -c)
if [ "$got" = "$want" ]; then
    mark "tcp$suffix PASS $got bytes echoed by the stack's TCP"
else
    mark "tcp$suffix FAIL $got of $want bytes echoed"
fi
