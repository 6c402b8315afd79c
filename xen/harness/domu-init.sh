#!/bin/sh
# The PV domU's /init in the QEMU harness (busybox sh). Loads only what a userspace
# netfront needs (xen-evtchn, xen-gntalloc, xen-gntdev; never xen-netfront, which
# would claim the vif first), shows that the payload runs, then starts the Oasis stack
# on the domU's vif 0. Its console is logged by dom0's xenconsoled; dom0 reads the
# "OASIS-DOMU: payload ..." line to know the stack started or exited.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
set -u
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ip link set lo up

uptime_s() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "OASIS-XEN-TEST: domu $* (domU uptime $(uptime_s) s)"; }
echo "OASIS-DOMU: kernel up ($(uname -r))"

kver=$(uname -r)
for m in xen-evtchn xen-gntalloc xen-gntdev; do
    insmod "/lib/modules/$kver/$m.ko" || echo "OASIS-DOMU: insmod $m failed"
done
if [ -e /sys/module/xen_netfront ]; then
    mark "domu-no-netfront FAIL the kernel's xen-netfront is loaded"
else
    mark "domu-no-netfront PASS"
fi
echo "/dev/xen:" /dev/xen/*
missing=""
for d in evtchn gntalloc xenbus; do [ -e "/dev/xen/$d" ] || missing="$missing $d"; done
if [ -z "$missing" ]; then mark "domu-dev-xen PASS"; else mark "domu-dev-xen FAIL missing:$missing"; fi
echo "vif: $(xenstore-read device/vif/0/backend 2>&1) mac $(xenstore-read device/vif/0/mac 2>&1)"

hello=$(oasis hello 2>&1)
echo "$hello"
case $hello in
*"Hello World"*) mark "domu-hello PASS" ;;
*) mark "domu-hello FAIL oasis hello printed: $hello" ;;
esac

stack_args=$(cat /etc/oasis/stack-args)
echo "payload: oasis stack $stack_args"
# shellcheck disable=SC2086 # the arguments are words on purpose
oasis stack $stack_args 2>&1 &
payload=$!
sleep 2
if kill -0 "$payload" 2>/dev/null; then
    echo "OASIS-DOMU: payload running"
fi
wait "$payload"
echo "OASIS-DOMU: payload exited with status $?"
sync
poweroff -f
