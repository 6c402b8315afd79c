#!/bin/sh
# Gives dom0 a virtual interface of its own for the Oasis netfront to drive: dom0's
# netback serves a frontend that is also in dom0 (the "self-loop"). No xl, no domU.
# POSIX sh (runs under busybox too); needs xenstore-write/-read/-rm and dom0's
# xen-netback module loaded, and nothing may have loaded xen-netfront (the kernel
# would claim the device first).
#
#   dom0-vif.sh create [HANDLE [MAC]]   write the nodes; wait for vifHANDLE's netdev
#                                       (vif0.HANDLE) and netback's InitWait
#   dom0-vif.sh destroy [HANDLE]        close the frontend and remove both sides
#
# After create, address the kernel's side (ip addr add 192.0.2.1/24 dev vif0.0; ip
# link set vif0.0 up) and start `oasis stack --backend xen` in dom0.
set -u
action=${1:-}
handle=${2:-0}
mac=${3:-00:16:3e:00:00:02}
fe=/local/domain/0/device/vif/$handle
be=/local/domain/0/backend/vif/0/$handle
vif=vif0.$handle

# wait_for SECONDS COMMAND...: retries every 0.2 s until SECONDS of uptime passed
wait_for() {
    deadline=$(($(cut -d. -f1 /proc/uptime) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(cut -d. -f1 /proc/uptime)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
state_is() { [ "$(xenstore-read "$1/state" 2>/dev/null)" = "$2" ]; }

case $action in
create)
    # The frontend first, then the backend; the backend's state last: netback probes
    # a backend only once its state reads Initialising (1).
    xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/handle" "$handle" \
        "$fe/mac" "$mac" "$fe/state" 1 || exit 1
    # netback fails the device (state Closing) when there is no "script" node, even
    # though no one runs it here
    xenstore-write "$be/frontend" "$fe" "$be/frontend-id" 0 "$be/online" 1 \
        "$be/handle" "$handle" "$be/mac" "$mac" "$be/type" vif \
        "$be/script" /etc/xen/scripts/vif-oasis || exit 1
    xenstore-write "$be/state" 1 || exit 1
    if ! wait_for 20 test -e "/sys/class/net/$vif"; then
        echo "dom0-vif: netback made no $vif (is xen-netback loaded?)" >&2
        exit 1
    fi
    if ! wait_for 10 state_is "$be" 2; then
        echo "dom0-vif: backend state $(xenstore-read "$be/state" 2>&1), not InitWait (2)" >&2
        exit 1
    fi
    # No udev ran a hotplug script: say it is done, or netback never connects.
    xenstore-write "$be/hotplug-status" connected || exit 1
    echo "dom0-vif: $vif ready, backend in InitWait; frontend at $fe"
    ;;
destroy)
    if [ ! -e "/sys/class/net/$vif" ]; then
        echo "dom0-vif: there is no $vif" >&2
        exit 1
    fi
    # the frontend says Closed; netback follows, then both sides go
    xenstore-write "$fe/state" 6 2>/dev/null
    wait_for 10 state_is "$be" 6 || echo "dom0-vif: backend state $(xenstore-read "$be/state" 2>&1), not Closed (6)" >&2
    xenstore-rm "$be" 2>/dev/null
    xenstore-rm "$fe" 2>/dev/null
    if wait_for 10 test ! -e "/sys/class/net/$vif"; then
        echo "dom0-vif: $vif removed"
    else
        echo "dom0-vif: $vif is still there" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: dom0-vif.sh create [HANDLE [MAC]] | destroy [HANDLE]" >&2
    exit 2
    ;;
esac
