#!/usr/bin/env bash
# Pictures of a bench run, drawn by gnuplot (Debian's gnuplot-nox) from the Markdown
# rows the bench scripts print: per-packet cost by backend beside each C floor, DNS
# queries per second by zone size (Oasis, NSD, and Oasis on AF_XDP), queries per second
# by workers (Oasis, NSD, Knot), and TCP throughput beside the kernel. A figure whose
# rows are not in the input is left out, and said so.
#   bench/plot.sh [RESULTS.md] [OUT_DIR]   (defaults: bench/out/results.md, bench/out/plots)
set -uo pipefail
cd "$(dirname "$0")/.."
input=${1:-bench/out/results.md}
dir=${2:-bench/out/plots}
command -v gnuplot >/dev/null || { echo "plot: gnuplot is not installed (Debian gnuplot-nox; scripts/setup.sh)"; exit 1; }
[ -f "$input" ] || { echo "plot: no $input (run make bench first)"; exit 1; }
mkdir -p "$dir"
data=$(mktemp -d /tmp/oasis-plot.XXXXXX)
trap 'rm -rf "$data"' EXIT
trim() { sed 's/^ *//; s/ *$//'; }
style='set terminal svg size 960,540 dynamic font "sans,12" background "white"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set termoption noenhanced
set grid ytics
set key outside top center horizontal
set xtics rotate by -25 scale 0'

# 1. Per-packet cost: | tap|pcap|xdp|stack|xen | figure | ns | allocs | floor | ns | ...
awk -F'|' '
    $2 ~ /^ (tap|pcap|xdp|stack|xen) $/ && $4 + 0 > 0 && $7 + 0 > 0 {
        g = $2; gsub(/ /, "", g)
        label = g == "stack" ? "stack (memory pair)" : g == "xen" ? "xen rings" : g " echo"
        last[label] = sprintf("\"%s\"\t%s\t%s", label, $4 + 0, $7 + 0)
        if (!(label in seen)) { seen[label] = 1; order[++n] = label }
    }
    END { for (i = 1; i <= n; i++) print last[order[i]] }' "$input" >"$data/packets.tsv"
if [ -s "$data/packets.tsv" ]; then
    gnuplot <<PLOT
$style
set output "$dir/per-packet.svg"
set title "Per-packet cost by backend: Oasis beside its C floor (ns per packet, lower is better)"
set ylabel "ns per packet"
plot "$data/packets.tsv" using 2:xtic(1) title "Oasis", "" using 3 title "C floor (same device, no stack)"
PLOT
    echo "plot: $dir/per-packet.svg"
else
    echo "plot: per-packet cost left out: no device rows in $input"
fi

# 2. DNS q/s by zone size: `oasis dns` (kernel sockets) rows, "A vs B q/s" in the note;
# the AF_XDP rows' "dnsperf A vs B q/s".
awk -F'|' '
    $2 ~ /^ dns $/ && $3 ~ /zone of [0-9]+ names/ {
        match($3, /zone of [0-9]+ names/); n = substr($3, RSTART + 8, RLENGTH - 14) + 0
        if ($3 ~ /kernel sockets/ && $3 ~ /dnsperf/ && match($9, /[0-9]+ vs [0-9]+ q\/s/)) {
            split(substr($9, RSTART, RLENGTH), v, " "); ours[n] = v[1]; nsd[n] = v[3]; sizes[n] = 1
        }
        if ($3 ~ /backend xdp/ && match($9, /dnsperf [0-9]+ vs [0-9]+ q\/s/)) {
            split(substr($9, RSTART, RLENGTH), v, " "); xdp[n] = v[2]; sizes[n] = 1
        }
    }
    END {
        for (n in sizes) printf "%d\t\"%d\"\t%s\t%s\t%s\n", n, n, (n in ours) ? ours[n] : "NaN", (n in nsd) ? nsd[n] : "NaN", (n in xdp) ? xdp[n] : "NaN"
    }' "$input" | sort -n | cut -f2- >"$data/dns.tsv"
if [ -s "$data/dns.tsv" ]; then
    gnuplot <<PLOT
$style
set output "$dir/dns-by-zone-size.svg"
set title "DNS queries per second by zone size (dnsperf; higher is better)"
set xlabel "names in the zone"
set ylabel "queries per second"
set yrange [0:*]
plot "$data/dns.tsv" using 2:xtic(1) title "oasis dns (kernel sockets)", "" using 3 title "NSD (kernel sockets)", "" using 4 title "oasis dns (Oasis stack on AF_XDP)"
PLOT
    echo "plot: $dir/dns-by-zone-size.svg"
else
    echo "plot: DNS by zone size left out: no dns rows in $input"
fi

# 3. Workers: bench/dns-workers.sh's table | W | oasis | nsd | [knot |] ratio |.
awk -F'|' '
    /^\| workers \| oasis q\/s/ { on = 1; knot = ($0 ~ /knot/); next }
    on && /^\| [0-9]+ \|/ { w = $2 + 0; line[w] = sprintf("%d\t%s\t%s\t%s", w, $3 + 0, $4 + 0, knot ? $5 + 0 : "NaN"); if (w > max) max = w; next }
    on && !/^\| ---/ { on = 0 }
    END { for (w = 1; w <= max; w++) if (w in line) print line[w] }' "$input" >"$data/workers.tsv"
if [ -s "$data/workers.tsv" ]; then
    gnuplot <<PLOT
$style
set output "$dir/dns-by-workers.svg"
set title "DNS queries per second by workers (kernel sockets; higher is better)"
set xlabel "workers (oasis --workers, NSD server-count, Knot udp-workers)"
set ylabel "queries per second"
set yrange [0:*]
plot "$data/workers.tsv" using 2:xtic(1) title "oasis dns", "" using 3 title "NSD", "" using 4 title "Knot"
PLOT
    echo "plot: $dir/dns-by-workers.svg"
else
    echo "plot: workers left out: no bench/dns-workers.sh table in $input"
fi

# 4. TCP throughput: | tcp | figure | X Gbit/s | peer | Y Gbit/s | ratio | ...
awk -F'|' '
    $2 ~ /^ tcp $/ && $4 ~ /Gbit\/s/ && $6 ~ /Gbit\/s/ && $5 ~ /kernel/ {
        figure = $3; gsub(/^ +| +$/, "", figure); gsub(/"/, "", figure)
        gsub(/`/, "", figure); gsub(/ over a TAP/, "", figure); gsub(/bulk, /, "", figure)
        peer = $5; gsub(/^ +| +$/, "", peer)
        key = figure " / " peer
        last[key] = sprintf("\"%s\\n(vs %s)\"\t%s\t%s", figure, peer, $4 + 0, $6 + 0)
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    }
    END { for (i = 1; i <= n; i++) print last[order[i]] }' "$input" >"$data/tcp.tsv"
if [ -s "$data/tcp.tsv" ]; then
    gnuplot <<PLOT
$style
set terminal svg size 1400,700 dynamic font "sans,10" background "white"
set termoption noenhanced
set output "$dir/tcp.svg"
set title "TCP bulk throughput: Oasis beside the kernel (Gbit/s; higher is better)"
set ylabel "Gbit/s"
set bmargin 12
plot "$data/tcp.tsv" using 2:xtic(1) title "Oasis", "" using 3 title "the kernel (peer named under each pair)"
PLOT
    echo "plot: $dir/tcp.svg"
else
    echo "plot: TCP left out: no tcp rows in $input"
fi
