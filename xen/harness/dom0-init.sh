#!/bin/sh
# dom0's /init in the QEMU harness (busybox sh). Brings up the Xen toolstack's minimum
# (xenfs, xenstored, xen-init-dom0, xenconsoled), then runs one mode, chosen by
# oasis.mode= on the kernel command line:
#   selfloop  the Oasis netfront as a process in dom0, against dom0's own netback
#   domu      the Oasis netfront in a PV domU made by `xl create`
#   control   no Oasis netfront: the kernel's xen-netfront in dom0, moved into a
#             network namespace, with `oasis stack --backend socket` behind it. It
#             checks the network test and the vif plumbing against real netback.
# Every result is a line "OASIS-XEN-TEST: MODE NAME PASS|FAIL|UNAVAILABLE detail" on
# the console (Xen's serial port); run.sh greps them. It ends with poweroff, which ends
# QEMU. As PID 1 it must never exit, so there is no `set -e` here.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
set -u

mode=none
mount -t proc proc /proc
read -r cmdline </proc/cmdline
for word in $cmdline; do
    case $word in oasis.mode=*) mode=${word#oasis.mode=} ;; esac
done

uptime_s() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "OASIS-XEN-TEST: $mode $* (dom0 uptime $(uptime_s) s)"; }
say() { echo "OASIS-XEN: $*"; }
finish() {
    say "done"
    sync
    poweroff -f
    sleep 60
}
# wait_until SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds or
# SECONDS of uptime passed (a deadline, not a count: under a loaded emulator each
# try takes longer than its sleep)
now_s() { cut -d. -f1 /proc/uptime; }
wait_until() {
    deadline=$(($(now_s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(now_s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
xs_is() { [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; }
stack_args=$(cat /etc/oasis/stack-args)

mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/xen /run/xenstored /var/log/xen/console /var/lib/xen
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ip link set lo up
say "dom0 kernel up, mode $mode ($(uname -r))"

kver=$(uname -r)
for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc xen-netback; do
    insmod "/lib/modules/$kver/$m.ko" || { say "dom0 FAIL: insmod $m"; finish; }
done
mount -t xenfs xenfs /proc/xen || { say "dom0 FAIL: mount xenfs"; finish; }
xenstored --pid-file=/run/xenstored.pid || { say "dom0 FAIL: xenstored"; finish; }
wait_until 20 xenstore-list / || { say "dom0 FAIL: xenstore does not answer"; finish; }
xen-init-dom0 || { say "dom0 FAIL: xen-init-dom0"; finish; }
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xen/xenconsoled.pid ||
    { say "dom0 FAIL: xenconsoled"; finish; }
echo "xenstored pid $(cat /run/xenstored.pid 2>/dev/null), xenconsoled pid $(cat /run/xen/xenconsoled.pid 2>/dev/null)"
say "dom0 ready at $(uptime_s) s"

# Plumbing every mode needs: the payload runs here, and userspace sees Xen's devices.
hello=$(oasis hello 2>&1)
echo "$hello"
case $hello in
*"Hello World"*) mark "dom0-hello PASS" ;;
*) mark "dom0-hello FAIL oasis hello printed: $hello" ;;
esac
echo "/dev/xen:" /dev/xen/*
missing=""
for d in evtchn gntalloc gntdev privcmd xenbus; do [ -e "/dev/xen/$d" ] || missing="$missing $d"; done
if [ -z "$missing" ]; then mark "dom0-dev-xen PASS"; else mark "dom0-dev-xen FAIL missing:$missing"; fi

# run_payload FRONTEND_PATH: starts the Oasis stack in dom0 and waits for its netfront
# to reach Connected (4), or for the stack to exit.
run_payload() {
    fe=$1
    echo "payload: oasis stack $stack_args"
    # shellcheck disable=SC2086 # the arguments are words on purpose
    oasis stack $stack_args >/tmp/stack.log 2>&1 &
    payload=$!
    deadline=$(($(now_s) + 30))
    while [ "$(now_s)" -lt "$deadline" ]; do
        xs_is "$fe/state" 4 && break
        kill -0 "$payload" 2>/dev/null || break
        sleep 0.2
    done
    if xs_is "$fe/state" 4; then
        mark "netfront PASS frontend Connected"
        return 0
    fi
    if ! kill -0 "$payload" 2>/dev/null; then
        wait "$payload"
        status=$?
        sed 's/^/payload| /' /tmp/stack.log
        if grep -q "not built yet" /tmp/stack.log; then
            mark "netfront UNAVAILABLE netfront not available yet: $(tail -n1 /tmp/stack.log)"
        else
            mark "netfront FAIL the stack exited with status $status"
        fi
    else
        sed 's/^/payload| /' /tmp/stack.log
        mark "netfront FAIL frontend state $(xenstore-read "$fe/state" 2>&1) after 30 s"
        kill "$payload"
    fi
    return 1
}

stop_payload() {
    sed 's/^/payload| /' /tmp/stack.log
    kill "$payload" 2>/dev/null
    wait "$payload" 2>/dev/null
}

selfloop() {
    fe=/local/domain/0/device/vif/0
    be=/local/domain/0/backend/vif/0/0
    # the nodes by hand (xen/configs/dom0-vif.sh, the same script users run)
    if oasis-dom0-vif create 0 00:16:3e:00:00:02 && xs_is "$be/state" 2; then
        mark "netback PASS vif0.0 created, backend state InitWait (2)"
    else
        mark "netback FAIL vif0.0 $(echo /sys/class/net/*), backend state $(xenstore-read "$be/state" 2>&1)"
    fi
    ip addr add 192.0.2.1/24 dev vif0.0
    ip link set vif0.0 up
    xenstore-ls -f /local/domain/0/backend/vif /local/domain/0/device/vif 2>&1 | sed 's/^/xenstore| /'
    if run_payload "$fe"; then
        oasis-net-test "$mode" 192.0.2.2
        stop_payload
    else
        mark "ping UNAVAILABLE no netfront"
        mark "udp UNAVAILABLE no netfront"
    fi
    if oasis-dom0-vif destroy 0; then
        mark "teardown PASS vif0.0 removed"
    else
        mark "teardown FAIL backend state $(xenstore-read "$be/state" 2>&1)"
    fi
}

# xl network-detach, then network-attach, of the domU's vif while `oasis stack` runs
# there: the netfront answers the backend's Closing, waits for the vif to come back
# and connects again by itself; ping and UDP echo work again (checks "-again").
reconnect_domu() {
    if xl network-detach "$domid" 0 && wait_until 30 sh -c "! xenstore-read $be/state"; then
        mark "detach PASS vif removed, backend directory gone"
    else
        mark "detach FAIL backend state $(xenstore-read "$be/state" 2>&1)"
        return
    fi
    if ! xl network-attach "$domid" mac=00:16:3e:00:00:02 script=/etc/xen/scripts/vif-oasis; then
        mark "reconnect FAIL xl network-attach"
        return
    fi
    wait_until 30 ip link show "$vif" || true
    ip addr add 192.0.2.1/24 dev "$vif" 2>/dev/null
    ip link set "$vif" up
    if wait_until 60 xs_is "$fe/state" 4; then
        mark "reconnect PASS frontend Connected again"
        grep "link" "$log" | tail -n 2 | sed 's/^/domU| /'
        oasis-net-test "$mode" 192.0.2.2 -again
    else
        xenstore-ls -f "$fe" 2>&1 | sed 's/^/xenstore| /'
        mark "reconnect FAIL frontend state $(xenstore-read "$fe/state" 2>&1) after 60 s"
    fi
}

domu() {
    log=/var/log/xen/console/guest-oasis-domu.log
    # the example configs for real hosts (xen/configs) must at least parse
    bad=""
    for cfg in /etc/xen/examples/*.cfg; do
        xl create -n "$cfg" >/tmp/dry-run.log 2>&1 && continue
        sed 's/^/xl| /' /tmp/dry-run.log
        bad="$bad $cfg"
    done
    if [ -z "$bad" ]; then
        mark "example-configs PASS $(echo /etc/xen/examples/*.cfg) parse (xl create -n)"
    else
        mark "example-configs FAIL xl create -n rejects$bad"
    fi
    # relay the domU's console to ours as it comes (tail -F: xenconsoled makes the file)
    # (a shell loop, not sed: sed's buffered output dies with it)
    tail -n +1 -s 1 -F "$log" 2>/dev/null | while IFS= read -r line; do echo "domU| $line"; done &
    if xl create /etc/xen/oasis-domu.cfg; then
        domid=$(xl domid oasis-domu)
        mark "xl-create PASS domain $domid"
    else
        mark "xl-create FAIL"
        return
    fi
    fe=/local/domain/$domid/device/vif/0
    be=/local/domain/0/backend/vif/$domid/0
    vif=vif$domid.0
    state=$(xenstore-read "$be/state" 2>&1)
    hotplug=$(xenstore-read "$be/hotplug-status" 2>&1)
    case $state/$hotplug in
    2/connected | 4/connected) mark "netback PASS $vif, backend state $state, hotplug-status $hotplug" ;;
    *) mark "netback FAIL $vif: backend state $state, hotplug-status $hotplug" ;;
    esac
    xenstore-ls -f "/local/domain/0/backend/vif/$domid" "$fe" 2>&1 | sed 's/^/xenstore| /'
    ip addr add 192.0.2.1/24 dev "$vif"
    ip link set "$vif" up
    # The domU reports through its console, which xenconsoled writes to $log.
    wait_until 60 grep -q "OASIS-DOMU: payload" "$log" || true
    connected=no
    if grep -q "OASIS-DOMU: payload running" "$log" && wait_until 30 xs_is "$fe/state" 4; then
        connected=yes
    fi
    if [ "$connected" = yes ]; then
        mark "netfront PASS frontend Connected"
        oasis-net-test "$mode" 192.0.2.2
        reconnect_domu
    else
        if grep -q "not built yet" "$log"; then
            mark "netfront UNAVAILABLE netfront not available yet"
        else
            mark "netfront FAIL frontend state $(xenstore-read "$fe/state" 2>&1)"
        fi
        mark "ping UNAVAILABLE no netfront"
        mark "udp UNAVAILABLE no netfront"
    fi
    xl list
    # the domU powers itself off when its payload exits; else end it here
    xl destroy "$domid" 2>/dev/null
    sleep 1    # the relay catches up; poweroff ends it
}

control() {
    fe=/local/domain/0/device/vif/0
    if oasis-dom0-vif create 0 00:16:3e:00:00:02; then
        mark "netback PASS vif0.0 created, backend state InitWait (2)"
    else
        mark "netback FAIL"
    fi
    ip addr add 192.0.2.1/24 dev vif0.0
    ip link set vif0.0 up
    insmod "/lib/modules/$kver/xen-netfront.ko"
    if wait_until 30 xs_is "$fe/state" 4; then
        mark "netfront PASS the kernel's xen-netfront Connected (control, not Oasis)"
    else
        mark "netfront FAIL the kernel's xen-netfront: frontend state $(xenstore-read "$fe/state" 2>&1)"
    fi
    eth=""
    for n in /sys/class/net/*; do
        case ${n##*/} in lo | vif*) ;; *) eth=${n##*/} ;; esac
    done
    # The kernel's netfront lives in a namespace of its own, so that dom0's traffic
    # to 192.0.2.2 crosses netback instead of the loopback.
    unshare -n sleep 600 &
    holder=$!
    sleep 0.2
    /usr/sbin/ip link set "$eth" netns "$holder"   # iproute2: busybox sh prefers its own applets
    nsenter -t "$holder" -n sh -c "ip link set lo up; ip addr add 192.0.2.2/24 dev $eth; ip link set $eth up"
    nsenter -t "$holder" -n oasis stack --backend socket --ip 192.0.2.2/24 >/tmp/stack.log 2>&1 &
    payload=$!
    sleep 1
    oasis-net-test "$mode" 192.0.2.2
    stop_payload
    kill "$holder"
}

case $mode in
selfloop) selfloop ;;
control) control ;;
domu) domu ;;
*) say "no oasis.mode= on the command line: only the boot was checked" ;;
esac
finish
