#!/bin/sh
# Gives dom0 a virtual block device of its own for the Oasis blkfront to drive: dom0's
# blkback serves a frontend that is also in dom0 (the "self-loop"), as dom0-vif.sh
# does for a vif. No xl, no domU, no hotplug script: this script attaches the file to
# a loop device and writes what the hotplug script would. POSIX sh (runs under
# busybox too); needs losetup, stat, xenstore-write/-read/-rm, dom0's xen-blkback
# and loop modules loaded, and nothing may have loaded xen-blkfront (the kernel would
# claim the device first).
#
#   dom0-vbd.sh create VBD FILE [r|w]   write the nodes of device/vbd/VBD (51712 is
#                                        xvda) with FILE behind it; wait for InitWait
#   dom0-vbd.sh destroy VBD             close the frontend, remove both sides, detach
#                                        the loop device
#
# After create, run `oasis block info --disk xen:VBD` in dom0.
set -u
action=${1:-}
vbd=${2:-51712}
fe=/local/domain/0/device/vbd/$vbd
be=/local/domain/0/backend/vbd/0/$vbd

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
    file=${3:?usage: dom0-vbd.sh create VBD FILE [r|w]}
    mode=${4:-w}
    [ -f "$file" ] || { echo "dom0-vbd: no file $file" >&2; exit 1; }
    ro=""
    [ "$mode" = r ] && ro=-r
    dev=""
    for n in $(seq 0 63); do
        [ -b "/dev/loop$n" ] || continue
        # shellcheck disable=SC2086 # $ro is empty or one word
        if losetup $ro "/dev/loop$n" "$file" 2>/dev/null; then
            dev=/dev/loop$n
            break
        fi
    done
    [ -n "$dev" ] || { echo "dom0-vbd: no free loop device (is the loop module loaded?)" >&2; exit 1; }
    # The frontend first, then the backend, the backend's state last: xenbus probes a
    # backend only once its state reads Initialising (1).
    xenstore-write "$fe/backend" "$be" "$fe/backend-id" 0 "$fe/virtual-device" "$vbd" \
        "$fe/device-type" disk "$fe/state" 1 || exit 1
    # "dev" (the vdev's name, as libxl writes it): blkback names its ring thread
    # after it and serves nothing without it ("get blkback dev name", error 2).
    letter=$(echo abcdefghijklmnopqrstuvwxyz | cut -c$(((vbd - 51712) / 16 % 26 + 1)))
    xenstore-write "$be/frontend" "$fe" "$be/frontend-id" 0 "$be/online" 1 \
        "$be/dev" "xvd$letter" "$be/removable" 0 "$be/bootable" 1 "$be/type" phy "$be/mode" "$mode" \
        "$be/device-type" disk "$be/params" "$file" \
        "$be/script" /etc/xen/scripts/block-oasis || exit 1
    xenstore-write "$be/state" 1 || exit 1
    # What a hotplug script would write; blkback opens the device once
    # "physical-device" (hexadecimal MAJOR:MINOR) appears.
    xenstore-write "$be/physical-device" "$(stat -L -c '%t:%T' "$dev")" \
        "$be/physical-device-path" "$dev" "$be/hotplug-status" connected || exit 1
    if ! wait_for 20 state_is "$be" 2; then
        echo "dom0-vbd: backend state $(xenstore-read "$be/state" 2>&1), not InitWait (2) (is xen-blkback loaded?)" >&2
        exit 1
    fi
    echo "dom0-vbd: vbd $vbd ready on $dev ($file), backend in InitWait; frontend at $fe"
    ;;
destroy)
    dev=$(xenstore-read "$be/physical-device-path" 2>/dev/null)
    if [ -z "$dev" ]; then
        echo "dom0-vbd: there is no vbd $vbd" >&2
        exit 1
    fi
    # the frontend says Closed; blkback follows, then both sides go
    xenstore-write "$fe/state" 6 2>/dev/null
    wait_for 10 state_is "$be" 6 || echo "dom0-vbd: backend state $(xenstore-read "$be/state" 2>&1), not Closed (6)" >&2
    xenstore-rm "$be" 2>/dev/null
    xenstore-rm "$fe" 2>/dev/null
    # blkback lets go of the device once its backend is gone
    if wait_for 10 losetup -d "$dev"; then
        echo "dom0-vbd: vbd $vbd removed, $dev detached"
    else
        echo "dom0-vbd: $dev is still busy" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: dom0-vbd.sh create VBD FILE [r|w] | destroy VBD" >&2
    exit 2
    ;;
esac
