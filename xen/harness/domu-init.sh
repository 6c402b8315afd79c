#!/bin/sh
# The PV domU's /init in the QEMU harness (busybox sh). The domU has two vifs and two
# disks (harness/domu.cfg): vif 1 and xvda (51712) are the Oasis frontends', vif 0
# and xvdb (51728) are Linux's own xen-netfront and xen-blkfront, the yardstick. It
# loads xen-evtchn, xen-gntalloc and xen-gntdev for the userspace frontends, and the
# kernel's frontends with the xen bus's drivers_autoprobe off, binding them to vif 0
# and xvdb only. Then: the Oasis block steps on xvda ("frontend done"), and once dom0
# has checked them against the backing file (data/oasis-verified), fio and oasis
# block bench; then the echo services: the Oasis stack on vif 1, UDP echo on kernel
# sockets behind eth0 (vif 0). Its console is logged by dom0's xenconsoled; dom0 reads
# the "OASIS-DOMU: ..." lines to follow it.
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
now_s() { cut -d. -f1 /proc/uptime; }
wait_until() {
    deadline=$(($(now_s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(now_s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
echo "OASIS-DOMU: kernel up ($(uname -r))"

kver=$(uname -r)
for m in xen-evtchn xen-gntalloc xen-gntdev; do
    insmod "/lib/modules/$kver/$m.ko" || echo "OASIS-DOMU: insmod $m failed"
done
# The kernel's frontends drive only what they are bound to.
echo 0 >/sys/bus/xen/drivers_autoprobe
insmod "/lib/modules/$kver/xen-netfront.ko" || echo "OASIS-DOMU: insmod xen-netfront failed"
insmod "/lib/modules/$kver/xen-blkfront.ko" || echo "OASIS-DOMU: insmod xen-blkfront failed"
echo vif-0 >/sys/bus/xen/drivers/vif/bind
echo vbd-51728 >/sys/bus/xen/drivers/vbd/bind
bound() { [ -e "/sys/bus/xen/devices/$1/driver" ]; }
wait_until 30 test -b /dev/xvdb
eth=""
for n in /sys/class/net/*; do
    case ${n##*/} in lo) ;; *) eth=${n##*/} ;; esac
done
if bound vif-0 && bound vbd-51728 && ! bound vif-1 && ! bound vbd-51712 && [ -b /dev/xvdb ] && [ -n "$eth" ]; then
    mark "domu-frontends PASS Linux's xen-netfront drives vif 0 ($eth), its xen-blkfront xvdb; vif 1 and xvda are left to Oasis"
else
    mark "domu-frontends FAIL bound: vif-0 $(bound vif-0 && echo yes || echo no), vbd-51728 $(bound vbd-51728 && echo yes || echo no), vif-1 $(bound vif-1 && echo yes || echo no), vbd-51712 $(bound vbd-51712 && echo yes || echo no); /dev/xvdb $([ -b /dev/xvdb ] && echo yes || echo no), eth '$eth'"
fi
echo "/dev/xen:" /dev/xen/*
missing=""
for d in evtchn gntalloc xenbus; do [ -e "/dev/xen/$d" ] || missing="$missing $d"; done
if [ -z "$missing" ]; then mark "domu-dev-xen PASS"; else mark "domu-dev-xen FAIL missing:$missing"; fi
echo "vif 1: $(xenstore-read device/vif/1/backend 2>&1) mac $(xenstore-read device/vif/1/mac 2>&1)"
echo "vbd 51712: $(xenstore-read device/vbd/51712/backend 2>&1)"

hello=$(oasis hello 2>&1)
echo "$hello"
case $hello in
*"Hello World"*) mark "domu-hello PASS" ;;
*) mark "domu-hello FAIL oasis hello printed: $hello" ;;
esac

# The Oasis blkfront on xvda; dom0 checks what it wrote and read in the backing file.
oasis-block-test frontend domu 51712
echo "OASIS-DOMU: frontend done"
verified() { [ "$(xenstore-read data/oasis-verified 2>/dev/null)" = 1 ]; }
wait_until 60 verified ||
    echo "OASIS-DOMU: dom0 did not say it checked the disk; benchmarking anyway"
oasis-block-test bench domu 51712 /dev/xvdb
echo "OASIS-DOMU: bench done"

# UDP echo on kernel sockets behind Linux's xen-netfront (vif 0)
ip addr add 198.51.100.2/24 dev "$eth"
ip link set "$eth" up
oasis stack --backend socket --ip 198.51.100.2/24 >/tmp/socket-echo.log 2>&1 &

stack_args=$(cat /etc/oasis/stack-args)
echo "payload: oasis stack $stack_args --vif 1"
# shellcheck disable=SC2086 # the arguments are words on purpose
oasis stack $stack_args --vif 1 2>&1 &
payload=$!
sleep 2
if kill -0 "$payload" 2>/dev/null; then
    echo "OASIS-DOMU: payload running"
fi
wait "$payload"
echo "OASIS-DOMU: payload exited with status $?"
sync
poweroff -f
