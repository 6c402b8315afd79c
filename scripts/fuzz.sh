#!/usr/bin/env bash
# Builds every fuzz target (Fuzz/<Name>, one per parser) with libFuzzer and runs it
# for FUZZ_RUNS inputs (default 1000000), or for FUZZ_SECONDS seconds each when that is
# set, from its seed corpus (Fuzz/<Name>/corpus), and prints the coverage it reached.
# The targets that reach unsafe pointer code (FUZZ_ASAN_TARGETS: the DNS engine's
# store, the Xen rings, the stack's ARP and packet tables) are built with
# AddressSanitizer as well, in a scratch folder of their own. A crash, a trap, an ASan
# report or a timeout fails the run and leaves the input in .build-fuzz/crashes/: add
# it to the target's corpus/ with the fix, so the corpus grows with every bug found.
#
# SwiftPM cannot link a libFuzzer executable itself (it redirects `main` to the
# module's entry point), so the objects are compiled by SwiftPM with
# -sanitize=fuzzer -DFUZZING and linked here by swiftc.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
runs=${FUZZ_RUNS:-1000000}
seconds=${FUZZ_SECONDS:-}
scratch=.build-fuzz
targets=${FUZZ_TARGETS:-$(ls Fuzz | grep -vE "README|FuzzSupport")}
asan_targets=${FUZZ_ASAN_TARGETS:-FuzzDNSMessage FuzzXenRing FuzzStack}
mkdir -p "$scratch/crashes"
if [ -n "$seconds" ]; then budget=(-runs=-1 -max_total_time="$seconds"); else budget=(-runs="$runs"); fi

# fuzz TARGET SANITIZERS SCRATCH: build, link and run one target.
fuzz() {
    local target=$1 sanitizers=$2 path=$3
    echo "fuzz: $target ($sanitizers)"
    # The product link fails by design (see above); the objects and the list are what we need.
    swift build -c release --product "$target" --scratch-path "$path" \
        -Xswiftc -sanitize="$sanitizers" -Xswiftc -DFUZZING >"$path/$target.build.log" 2>&1 || true
    local list="$path/x86_64-unknown-linux-gnu/release/$target.product/Objects.LinkFileList"
    if [ ! -f "$list" ] || grep -E "error:" "$path/$target.build.log" | grep -qvE "link command failed|ld.gold|linker command failed"; then
        grep -E "error:" "$path/$target.build.log" | head -n 20
        echo "fuzz: $target does not compile" >&2
        exit 1
    fi
    # ld.gold warns about ASan's local symbols; nothing to act on.
    swiftc -sanitize="$sanitizers" @"$list" -o "$path/$target" -lpcap \
        -lxenctrl -lxengnttab -lxenevtchn -lxenstore 2> >(grep -v "Cannot export local symbol" >&2)
    local corpus="$scratch/corpus/$target"
    mkdir -p "$corpus"
    local seeds="Fuzz/$target/corpus"
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$path/$target" "${budget[@]}" \
        -max_len=4096 -timeout=2 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/crashes/$target-" -print_final_stats=1 \
        "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) 2>"$path/$target.log" \
        || { tail -n 40 "$path/$target.log"; echo "fuzz: $target FAILED (input in $scratch/crashes/)"; exit 1; }
    grep -E "stat::number_of_executed_units|Done" "$path/$target.log" | tr '\n' ' '
    # The coverage reached: libFuzzer's last status line.
    grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [0-9]+" "$path/$target.log" | tail -n 1
}

for target in $targets; do
    fuzz "$target" fuzzer "$scratch"
    if [[ " $asan_targets " == *" $target "* ]]; then
        mkdir -p "$scratch-asan"
        fuzz "$target" fuzzer,address "$scratch-asan"
    fi
done
