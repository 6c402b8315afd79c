#!/usr/bin/env bash
# `make xen-test`: real Xen 4.17 under QEMU (TCG), the Oasis netfront against real
# netback. Installs the host tools, fetches and caches the guest's packages, builds
# the payload and the initramfs images, boots each mode with a timeout, greps the
# serial log for markers and prints "N passed, M failed". Exits 0 only when every
# check passed. Nothing leaves QEMU (-nic none).
#
#   OASIS_XEN_CACHE       cache folder for the packages (default /var/cache/oasis-xen)
#   OASIS_XEN_MODES       modes to boot (default "control selfloop domu"); control runs
#                         the network test through real netback to the kernel's own
#                         netfront, with no Oasis netfront: it checks the harness
#   OASIS_XEN_PAYLOAD     a prebuilt oasis binary instead of building one
#   OASIS_XEN_STACK_ARGS  arguments of `oasis stack` in the guests
#                         (default "--backend xen --ip 192.0.2.2/24 --offload": the
#                         netfront asks for scatter-gather, checksum offload and GSO)
#   OASIS_XEN_TIMEOUT     seconds per boot (default 150)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/swift/usr/bin:$PATH
here=xen/harness
out=xen/out
modes=${OASIS_XEN_MODES:-control selfloop domu}
timeout=${OASIS_XEN_TIMEOUT:-150}
mkdir -p "$out"
started=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { echo "== xen-test: $* (at $(elapsed "$started") s)"; }

step "host tools"
tools=()
for p in qemu-system-x86 busybox-static cpio gcc libc6-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || tools+=("$p")
done
if [ ${#tools[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
fi
bash scripts/setup.sh

step "guest packages"
t=$(date +%s.%N)
cache=$(bash "$here/fetch.sh" | tail -n1)
echo "fetch: $(elapsed "$t") s, cache $cache ($(cat "$cache/kernel"))"

step "payload"
if [ -n "${OASIS_XEN_PAYLOAD:-}" ]; then
    oasis=$OASIS_XEN_PAYLOAD
else
    t=$(date +%s.%N)
    swift build -c release --static-swift-stdlib --product oasis --scratch-path .build-xen 2>&1 |
        { grep -vE "warning: the use of .mktemp. is dangerous" || true; } | tail -n 3
    oasis=.build-xen/release/oasis
    echo "payload: built in $(elapsed "$t") s"
fi
"$oasis" hello | grep -q "Hello World" || { echo "xen-test: $oasis hello does not run here" >&2; exit 1; }
gcc -static -O2 -Wall -Wextra -o "$out/udp-echo-client" "$here/udp-echo-client.c"

step "images"
xen=$out/xen-4.17
[ "$xen" -nt "$cache/root/boot/xen-4.17-amd64.gz" ] || gunzip -c "$cache/root/boot/xen-4.17-amd64.gz" >"$xen"
vmlinuz=$cache/vmlinux-$(sed "s/^linux-image-//" "$cache/kernel")
bash "$here/initramfs.sh" domu "$out/domu.cpio" "$cache" "$oasis"
bash "$here/initramfs.sh" dom0 "$out/dom0-selfloop.cpio" "$cache" "$oasis"
bash "$here/initramfs.sh" dom0-control "$out/dom0-control.cpio" "$cache" "$oasis"
bash "$here/initramfs.sh" dom0 "$out/dom0-domu.cpio" "$cache" "$oasis" "$out/domu.cpio"

# the kernel's own messages slow the boot under emulation: OASIS_XEN_KERNEL_LOG=1 shows them
kernel_extra=quiet
[ "${OASIS_XEN_KERNEL_LOG:-0}" = 1 ] && kernel_extra=
qemu_pid=
cleanup() { if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# boot MODE: one QEMU run; the serial log is $out/MODE.serial.log
declare -A ready_at done_at
boot() {
    local mode=$1 log=$out/$1.serial.log image=$out/dom0-selfloop.cpio t
    case $mode in
    domu) image=$out/dom0-domu.cpio ;;
    control) image=$out/dom0-control.cpio ;;
    esac
    : >"$log"
    t=$(date +%s.%N)
    qemu-system-x86_64 -accel tcg -cpu qemu64 -m 2048 -smp 2 -nographic -monitor none \
        -serial "file:$log" -no-reboot -nic none -kernel "$xen" \
        -append "console=com1 com1=115200 dom0_mem=768M,max:768M dom0_max_vcpus=2 noreboot console_timestamps=boot" \
        -initrd "$vmlinuz console=hvc0 earlyprintk=xen rdinit=/init oasis.mode=$mode $kernel_extra modprobe.blacklist=xen_netfront,$image" \
        </dev/null >"$out/$mode.qemu.log" 2>&1 &
    qemu_pid=$!
    ready_at[$mode]=- done_at[$mode]=-
    while kill -0 "$qemu_pid" 2>/dev/null; do
        if [ "${ready_at[$mode]}" = - ] && grep -aq "OASIS-XEN: dom0 ready" "$log"; then
            ready_at[$mode]=$(elapsed "$t")
        fi
        if grep -aq "OASIS-XEN: done" "$log"; then
            done_at[$mode]=$(elapsed "$t")
            break
        fi
        if [ "$(elapsed "$t" | cut -d. -f1)" -ge "$timeout" ]; then
            echo "xen-test: $mode: no end marker after $timeout s, stopping QEMU" >&2
            break
        fi
        sleep 0.2
    done
    # let poweroff end QEMU by itself, else stop it
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    cleanup
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=
    echo "$mode: dom0 ready at ${ready_at[$mode]} s, done at ${done_at[$mode]} s after QEMU start"
}

declare -A checks=(
    [control]="dom0-hello netback netfront ping udp"
    [selfloop]="dom0-hello dom0-dev-xen netback netfront ping udp udp-large tcp teardown"
    [domu]="dom0-hello dom0-dev-xen example-configs xl-create netback domu-no-netfront domu-dev-xen domu-hello netfront ping udp udp-large tcp detach reconnect ping-again udp-again"
)
passed=0 failed=0 unavailable=0
results=()
record() {
    results+=("$(printf '%-8s %-16s %-11s %s' "$1" "$2" "$3" "$4")")
    case $3 in
    PASS) passed=$((passed + 1)) ;;
    UNAVAILABLE) failed=$((failed + 1)) unavailable=$((unavailable + 1)) ;;
    *) failed=$((failed + 1)) ;;
    esac
}

for mode in $modes; do
    step "boot $mode"
    boot "$mode"
    log=$out/$mode.serial.log
    if [ "${ready_at[$mode]}" != - ]; then
        record "$mode" dom0-boot PASS "dom0 ready ${ready_at[$mode]} s after QEMU start"
    else
        record "$mode" dom0-boot FAIL "no 'OASIS-XEN: dom0 ready' (see $log)"
    fi
    for check in ${checks[$mode]}; do
        line=$(tr -d '\r' <"$log" | grep -a "OASIS-XEN-TEST: $mode $check " | tail -n1 || true)
        if [ -z "$line" ]; then
            record "$mode" "$check" FAIL "no marker in $log"
        else
            rest=${line#*OASIS-XEN-TEST: "$mode" "$check" }
            record "$mode" "$check" "${rest%% *}" "${rest#* }"
        fi
    done
done

step "summary"
printf '%s\n' "${results[@]}"
for mode in $modes; do
    echo "timing: $mode: dom0 ready ${ready_at[$mode]} s, whole boot ${done_at[$mode]} s (QEMU TCG: emulated times, not hardware figures)"
done
echo "xen-test: $passed passed, $failed failed (wall time $(elapsed "$started") s)"
if [ "$unavailable" -gt 0 ]; then
    echo "xen-test: $unavailable checks need the Swift netfront, which is not available yet (\`oasis stack --backend xen\` says it is not built)"
fi
[ "$failed" -eq 0 ]
