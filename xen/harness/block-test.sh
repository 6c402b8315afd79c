#!/bin/sh
# The block test of the QEMU harness (busybox sh), in parts that run where their
# disk is: the Oasis frontend's side in dom0 (self-loop) or in the domU, the backing
# file's side always in dom0, the Linux yardstick in the domU.
#
#   oasis-block-test prefill FILE               dom0: FILE becomes a 64 MiB disk of
#                                               zeros with random bytes at READ_SECTOR;
#                                               prints that range's sha256
#   oasis-block-test frontend MODE VBD          where Oasis runs: oasis block info,
#                                               check (a seeded pattern written and
#                                               verified), read of the prefilled range;
#                                               prints "OASIS-BLOCK: KEY VALUE" lines
#   oasis-block-test verify MODE FILE LOG HASH  dom0: the "OASIS-BLOCK:" lines in LOG
#                                               against FILE (dd + sha256sum) and HASH
#   oasis-block-test bench MODE VBD DEVICE      domU: oasis block bench on VBD and fio
#                                               on the kernel's DEVICE, same jobs; the
#                                               ratios
#
# Results are "OASIS-XEN-TEST: MODE CHECK PASS|FAIL|SKIPPED detail" lines, which
# run.sh counts; SKIPPED is not a pass. The Oasis steps are SKIPPED while the
# `oasis block` command or its xen: disks are not in the payload.
set -u
part=${1:-}
mode=${2:-none}
disk_mib=32
check_sectors=2048      # the seeded pattern: 1 MiB from sector 0
read_sector=32768       # the range dom0 writes and Oasis reads: 1 MiB at 16 MiB
read_count=2048
flush_sector=49152      # what oasis block write writes: 64 sectors at 24 MiB
bench_seconds=${OASIS_BLOCK_BENCH_SECONDS:-5}
# name:pattern:size, the same jobs on both sides
bench_jobs="randread:randread:4k randwrite:randwrite:4k seqread:read:64k"
bench_depth=32

uptime_s() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "OASIS-XEN-TEST: $mode $* (uptime $(uptime_s) s)"; }
say() { echo "OASIS-BLOCK: $*"; }
sha_of() { sha256sum | cut -d' ' -f1; }

# Is `oasis block` with xen: disks in this payload? Prints the reason when not.
oasis_block_missing() {
    # (--help exits 0 whatever the subcommand: look for the option instead)
    if ! oasis block info --help 2>&1 | grep -q -- --disk; then
        echo "oasis block is not in this payload (blockcore not merged)"
        return 0
    fi
    return 1
}
# A failure that only says the xen: disk kind is not built yet is a skip, not a fail.
not_built() { grep -qiE "not built|not (yet )?available|unsupported disk|unknown disk kind" "$1"; }

case $part in
prefill)
    file=$2
    dd if=/dev/zero of="$file" bs=1M count=$disk_mib 2>/dev/null || exit 1
    dd if=/dev/urandom of="$file" bs=512 seek=$read_sector count=$read_count conv=notrunc 2>/dev/null || exit 1
    dd if="$file" bs=512 skip=$read_sector count=$read_count 2>/dev/null | sha_of
    ;;

frontend)
    vbd=$3
    if reason=$(oasis_block_missing); then
        for c in block-info block-write block-read block-flush; do mark "$c SKIPPED $reason"; done
        say "skipped $reason"
        exit 0
    fi
    # a VBD number is the Xen disk device/vbd/VBD; anything with a colon is taken as
    # --disk as is (file:PATH, to try this script outside Xen)
    case $vbd in *:*) disk=$vbd ;; *) disk=xen:$vbd ;; esac
    if oasis block info --disk "$disk" >/tmp/block-info.log 2>&1; then
        mark "block-info PASS $(tr '\n' ' ' </tmp/block-info.log)"
        say "features $(sed -n 's/^features: //p' /tmp/block-info.log)"
    else
        sed 's/^/block-info| /' /tmp/block-info.log
        if not_built /tmp/block-info.log; then
            for c in block-info block-write block-read block-flush; do
                mark "$c SKIPPED $(tail -n1 /tmp/block-info.log)"
            done
            say "skipped $(tail -n1 /tmp/block-info.log)"
            exit 0
        fi
        mark "block-info FAIL $(tail -n1 /tmp/block-info.log)"
    fi
    # Oasis writes and verifies a seeded pattern; dom0 hashes the same range of the file
    if oasis block check --disk "$disk" --seed 17 --sectors $check_sectors >/tmp/block-check.log 2>&1 &&
        hex=$(sed -n 's/.*check: ok \([0-9]*\) sectors sha256 \([0-9a-f]*\).*/\1 \2/p' /tmp/block-check.log) &&
        [ -n "$hex" ]; then
        say "check $hex"
    else
        sed 's/^/block-check| /' /tmp/block-check.log
        say "check-failed $(tail -n1 /tmp/block-check.log)"
    fi
    # dom0 wrote random bytes there before: Oasis reads them back
    if oasis block read --disk "$disk" --to /tmp/block-read.bin --sector $read_sector \
        --count $read_count >/tmp/block-read.log 2>&1; then
        say "read $(wc -c </tmp/block-read.bin) $(sha_of </tmp/block-read.bin)"
    else
        sed 's/^/block-read| /' /tmp/block-read.log
        say "read-failed $(tail -n1 /tmp/block-read.log)"
    fi
    # a write from a file, whose flush must reach the backend before the command ends
    dd if=/dev/urandom of=/tmp/block-flush.bin bs=512 count=64 2>/dev/null
    if oasis block write --disk "$disk" --from /tmp/block-flush.bin --sector $flush_sector >/tmp/block-write.log 2>&1; then
        say "flush-write $(sha_of </tmp/block-flush.bin) $(tr '\n' ' ' </tmp/block-write.log)"
    else
        sed 's/^/block-write| /' /tmp/block-write.log
        say "flush-write-failed $(tail -n1 /tmp/block-write.log)"
    fi
    ;;

verify)
    file=$3 log=$4 expected=$5
    line() { tr -d '\r' <"$log" | sed -n "s/.*OASIS-BLOCK: $1 //p" | tail -n1; }
    if tr -d '\r' <"$log" | grep -q "OASIS-BLOCK: skipped"; then
        exit 0 # the frontend part marked the checks SKIPPED
    fi
    set -- $(line check)
    if [ $# -eq 2 ]; then
        mine=$(dd if="$file" bs=512 count="$1" 2>/dev/null | sha_of)
        if [ "$mine" = "$2" ]; then
            mark "block-write PASS oasis block check wrote $1 sectors, dom0 reads the same sha256 $mine from the backing file"
        else
            mark "block-write FAIL oasis block check: sha256 $2, the backing file: $mine"
        fi
    else
        mark "block-write FAIL oasis block check: $(line check-failed)"
    fi
    set -- $(line read)
    if [ $# -eq 2 ] && [ "$1" = $((read_count * 512)) ] && [ "$2" = "$expected" ]; then
        mark "block-read PASS oasis block read $read_count sectors at $read_sector that dom0 wrote: sha256 $2"
    elif [ $# -eq 2 ]; then
        mark "block-read FAIL oasis block read $1 bytes with sha256 $2, dom0 wrote sha256 $expected"
    else
        mark "block-read FAIL oasis block read: $(line read-failed)"
    fi
    set -- $(line flush-write)
    if [ $# -ge 1 ]; then
        mine=$(dd if="$file" bs=512 skip=$flush_sector count=64 2>/dev/null | sha_of)
        features=$(line features)
        case $features in
        *flush* | *barrier*) how="after the flush it asked for (blkback offers: $features)" ;;
        *) how="(no flush: blkback offered only $features)" ;;
        esac
        if [ "$mine" = "$1" ]; then
            mark "block-flush PASS oasis block write returned, the backing file holds its 64 sectors $how"
        else
            mark "block-flush FAIL oasis block write returned, the backing file holds sha256 $mine, not $1"
        fi
    else
        mark "block-flush FAIL oasis block write: $(line flush-write-failed)"
    fi
    ;;

bench)
    vbd=$3 device=$4
    oasis_reason=$(oasis_block_missing) || oasis_reason=""
    # Linux: fio on its xen-blkfront's device, O_DIRECT, libaio, every job in one run
    # (fio's start, its libraries loaded, takes seconds under emulation), one after
    # the other (--stonewall)
    set -- --direct=1 --ioengine=libaio --iodepth=$bench_depth --runtime="$bench_seconds" \
        --time_based --filename="$device" --output-format=terse --terse-version=3
    for job in $bench_jobs; do
        name=${job%%:*} rest=${job#*:}
        set -- "$@" --name="$name" --stonewall --rw="${rest%%:*}" --bs="${rest#*:}"
    done
    say "bench: fio (uptime $(uptime_s) s)"
    fio "$@" >/tmp/fio.log 2>&1 || { sed 's/^/fio| /' /tmp/fio.log; }
    for job in $bench_jobs; do
        name=${job%%:*} rest=${job#*:}
        pattern=${rest%%:*} size=${rest#*:}
        kind=read
        case $pattern in *write) kind=write ;; esac
        # terse v3: the job's name is field 3; read KiB/s and IOPS are fields 7 and 8,
        # write's 48 and 49
        figures=$(awk -F';' -v n="$name" -v k=$kind 'NF > 50 && $3 == n {
            if (k == "read") printf "%s %.2f", $8, $7 * 1024 / 1e6;
            else printf "%s %.2f", $49, $48 * 1024 / 1e6 }' /tmp/fio.log)
        eval "linux_$name=\${figures%% *}"
        if [ -n "$figures" ]; then
            mark "fio-$name PASS IOPS ${figures% *} MB/s ${figures#* } (Linux xen-blkfront, fio $pattern $size depth $bench_depth ${bench_seconds}s)"
        else
            mark "fio-$name FAIL no result for the job in fio's output: $(tail -n1 /tmp/fio.log)"
        fi
    done
    # Oasis: the same jobs through its blkfront
    case $vbd in *:*) disk=$vbd ;; *) disk=xen:$vbd ;; esac
    for job in $bench_jobs; do
        name=${job%%:*} rest=${job#*:}
        pattern=${rest%%:*} size=${rest#*:}
        eval "linux_iops=\${linux_$name:-}"
        if [ -n "$oasis_reason" ]; then
            mark "bench-$name SKIPPED $oasis_reason"
            mark "ratio-$name SKIPPED no Oasis figure"
            continue
        fi
        say "bench $name: oasis (uptime $(uptime_s) s)"
        if oasis block bench --disk "$disk" --depth $bench_depth --size "$size" --pattern "$pattern" \
            --seconds "$bench_seconds" >/tmp/bench.log 2>&1 &&
            set -- $(sed -n 's/.*IOPS \([0-9.]*\) MB\/s \([0-9.]*\).*/\1 \2/p' /tmp/bench.log | tail -n1) &&
            [ $# -eq 2 ]; then
            mark "bench-$name PASS IOPS $1 MB/s $2 (Oasis blkfront, oasis block bench $pattern $size depth $bench_depth ${bench_seconds}s)"
            if [ -n "$linux_iops" ]; then
                mark "ratio-$name PASS Oasis/Linux IOPS $(awk -v o="$1" -v l="$linux_iops" 'BEGIN { if (l > 0) printf "%.2f", o / l; else print "n/a" }') ($1/$linux_iops; under QEMU TCG, ratios only)"
            else
                mark "ratio-$name FAIL no Linux figure"
            fi
        else
            sed 's/^/bench| /' /tmp/bench.log
            if not_built /tmp/bench.log; then
                mark "bench-$name SKIPPED $(tail -n1 /tmp/bench.log)"
                mark "ratio-$name SKIPPED no Oasis figure"
            else
                mark "bench-$name FAIL $(tail -n1 /tmp/bench.log)"
                mark "ratio-$name FAIL no Oasis figure"
            fi
        fi
    done
    ;;

*)
    echo "usage: oasis-block-test prefill FILE | frontend MODE VBD | verify MODE FILE LOG HASH | bench MODE VBD DEVICE" >&2
    exit 2
    ;;
esac
