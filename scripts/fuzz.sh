#!/usr/bin/env bash
# Builds every fuzz target (Fuzz/<Name>, one per parser) with libFuzzer and runs it
# for FUZZ_RUNS inputs (default 1000000) from its seed corpus (Fuzz/<Name>/corpus).
# A crash, a trap or a leak-free timeout fails the run and leaves the input in
# .build-fuzz/crashes/.
#
# SwiftPM cannot link a libFuzzer executable itself (it redirects `main` to the
# module's entry point), so the objects are compiled by SwiftPM with
# -sanitize=fuzzer -DFUZZING and linked here by swiftc.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
runs=${FUZZ_RUNS:-1000000}
scratch=.build-fuzz
targets=${FUZZ_TARGETS:-$(ls Fuzz | grep -vE "README|FuzzSupport")}
mkdir -p "$scratch/crashes"

for target in $targets; do
    echo "fuzz: $target"
    # The product link fails by design (see above); the objects and the list are what we need.
    swift build -c release --product "$target" --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING >"$scratch/$target.build.log" 2>&1 || true
    list="$scratch/x86_64-unknown-linux-gnu/release/$target.product/Objects.LinkFileList"
    if [ ! -f "$list" ] || grep -E "error:" "$scratch/$target.build.log" | grep -qvE "link command failed|ld.gold|linker command failed"; then
        grep -E "error:" "$scratch/$target.build.log" | head -n 20
        echo "fuzz: $target does not compile" >&2
        exit 1
    fi
    swiftc -sanitize=fuzzer @"$list" -o "$scratch/$target" -lpcap \
        -lxenctrl -lxengnttab -lxenevtchn -lxenstore
    corpus="$scratch/corpus/$target"
    mkdir -p "$corpus"
    seeds="Fuzz/$target/corpus"
    SWIFT_BACKTRACE=enable=no "$scratch/$target" -runs="$runs" -max_len=4096 -timeout=2 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/crashes/$target-" -print_final_stats=1 \
        "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) 2>"$scratch/$target.log" \
        || { tail -n 40 "$scratch/$target.log"; echo "fuzz: $target FAILED (input in $scratch/crashes/)"; exit 1; }
    grep -E "stat::number_of_executed_units|Done" "$scratch/$target.log" | tr '\n' ' '
    echo
done
