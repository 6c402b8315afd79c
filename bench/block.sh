#!/usr/bin/env bash
# The block device bench: `oasis block bench` on a file beside fio on the same file,
# the same pattern, queue depth and request size (fio: libaio, direct=1, the same
# request count in flight), each for SECONDS, one after the other, three rounds, the
# median of each; prints both and the ratio oasis / fio. The file is on the machine's
# own disk (not tmpfs: O_DIRECT), made and filled once, removed on exit.
#   bench/block.sh OASIS_BINARY [SECONDS] [SIZE_MiB]
# Environment: PATTERNS (default "randread randwrite read write"), DEPTHS ("1 32"),
# BLOCK ("4k"), DIR (/var/tmp), ROUNDS (3).
set -uo pipefail
cd "$(dirname "$0")/.."
oasis=$1
seconds=${2:-5}
mib=${3:-256}
patterns=${PATTERNS:-randread randwrite read write}
depths=${DEPTHS:-1 32}
block=${BLOCK:-4k}
rounds=${ROUNDS:-3}
dir=${DIR:-/var/tmp}
command -v fio >/dev/null || { echo "block: fio is not installed (scripts/setup.sh)"; exit 1; }
[ -x "$oasis" ] || { echo "block: $oasis is not an executable"; exit 1; }
fstype=$(stat -f -c %T "$dir")
[ "$fstype" = tmpfs ] && { echo "block: $dir is tmpfs; give DIR on a disk"; exit 1; }
file=$(mktemp "$dir/oasis-block-bench.XXXXXX")
trap 'rm -f "$file"' EXIT
# Written once, whole: reads then meet allocated blocks, not holes.
dd if=/dev/urandom of="$file" bs=1M count="$mib" oflag=direct status=none

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "block: $file ($fstype, $mib MiB), $block requests, $seconds s each, $rounds rounds, medians"
echo "$("$oasis" block info --disk "file:$file" | tr '\n' ' ')"
printf '%-10s %5s %12s %12s %8s %12s %12s\n' pattern depth oasis-IOPS fio-IOPS ratio oasis-p99us fio-p99us
for pattern in $patterns; do
    for depth in $depths; do
        oasis_iops=() fio_iops=() oasis_p99=() fio_p99=()
        for _ in $(seq "$rounds"); do
            out=$("$oasis" block bench --disk "file:$file" --depth "$depth" --size "$block" \
                --pattern "$pattern" --seconds "$seconds")
            oasis_iops+=("$(echo "$out" | awk '/^IOPS/ { print $2 }')")
            oasis_p99+=("$(echo "$out" | sed -n 's/.*99.00th=\[\([0-9.]*\)\].*/\1/p')")
            json=$(fio --name=bench --filename="$file" --ioengine=libaio --direct=1 \
                --rw="$pattern" --bs="$block" --iodepth="$depth" --runtime="$seconds" \
                --time_based --size="${mib}M" --randrepeat=0 --norandommap \
                --output-format=json 2>/dev/null)
            read -r iops p99 < <(echo "$json" | python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0]
side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
p = side["clat_ns"].get("percentile", {})
print(round(side["iops"]), round(p.get("99.000000", 0) / 1000, 1))')
            fio_iops+=("$iops")
            fio_p99+=("$p99")
        done
        o=$(printf '%s\n' "${oasis_iops[@]}" | median)
        f=$(printf '%s\n' "${fio_iops[@]}" | median)
        op=$(printf '%s\n' "${oasis_p99[@]}" | median)
        fp=$(printf '%s\n' "${fio_p99[@]}" | median)
        ratio=$(awk -v o="$o" -v f="$f" 'BEGIN { printf "%.2f", (f > 0 ? o / f : 0) }')
        printf '%-10s %5s %12s %12s %8s %12s %12s\n' "$pattern" "$depth" "$o" "$f" "$ratio" "$op" "$fp"
    done
done
