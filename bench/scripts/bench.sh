#!/usr/bin/env bash
# End-to-end timings of qimg against qemu-img on the same machine, in one run: each case runs both tools
# alternately, REPS times (default 3), and prints the median of each and the ratio qimg/qemu-img.
#
#   bench/scripts/bench.sh [--reps N] [--only a,b,c,...] [--qimg PATH] [--work DIR] [--drop-caches]
#
# The uncompressed cases run at page-cache speed, so the kernel's memory state decides much of their time: on a
# machine whose memory is full of cache, writing gigabytes costs reclaim, in bursts. --drop-caches (root) empties
# the page cache once before the first case, which makes the rows repeatable; the reps alternate the two tools.
#
# Cases (the workloads of issue 3 and 4):
#   a  4 GiB sparse raw (1 GiB random + 1 GiB compressible data, scattered) -> qcow2
#   b  that qcow2 -> raw
#   c  (a) -> qcow2 -c (zlib), and -c -o compression_type=zstd; also qemu-img with -W -m 16
#   d  3-deep qcow2 backing chain -> one flat qcow2
#   e  fully allocated 2 GiB raw with zero-filled regions -> qcow2 (zero detection)
#   f  compare the qcow2 of (a) with the raw of (b)
#   g  check of a fragmented qcow2 (4 KiB clusters, ~200k scattered clusters)
#   i  info startup (same image, 50 runs)
#   m  map --output=json of a fragmented 16 GiB qcow2 (4 KiB clusters, 200k scattered 4 KiB writes, ~390k extents):
#      the first half and all of it (twice the extents should cost twice the time), and info --output=json of it
# qimg is the Native AOT build (published into the work directory unless --qimg is given).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reps=3
only="a,b,c,d,e,f,g,i,m"
qimg=""
work="$root/bench/work"
drop_caches=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --qimg) qimg=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --drop-caches) drop_caches=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
if [ -z "$qimg" ]; then
  dotnet publish "$root/src/Qimg.Cli" -c Release -r linux-x64 -p:PublishAot=true -o "$work/bin" -nologo -v quiet >/dev/null
  qimg="$work/bin/qimg"
fi
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

src="$work/source.raw"
# Only the conversion and compare cases need the 4 GiB source (it takes a while to write).
if { want a || want b || want c || want d || want f; } && [ ! -f "$src" ]; then
  echo "generating $src (4 GiB sparse, 2 GiB data)..." >&2
  python3 "$here/make-workload.py" "$src"
fi

if [ "$drop_caches" = 1 ]; then
  sync
  echo 3 > /proc/sys/vm/drop_caches
fi

now() { date +%s.%N; }
# time_one OUTPUT_TO_DELETE CMD...: prints the wall time of CMD in seconds
time_one() {
  local out=$1; shift
  [ -z "$out" ] || rm -f "$out"
  sync
  local t0 t1
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-46s %10s %10s %8s\n' "case" "qemu-img" "qimg" "ratio"
# row NAME OUTPUT "QEMU CMD" "QIMG CMD"
row() {
  local name=$1 out=$2 qcmd=$3 icmd=$4
  local qt=() it=()
  for _ in $(seq "$reps"); do
    qt+=("$(time_one "$out" bash -c "$qcmd")")
    it+=("$(time_one "$out" bash -c "$icmd")")
  done
  local qm im
  qm=$(printf '%s\n' "${qt[@]}" | median)
  im=$(printf '%s\n' "${it[@]}" | median)
  printf '%-46s %9.3fs %9.3fs %8.2f\n' "$name" "$qm" "$im" "$(echo "$im / $qm" | bc -l)"
}

if want a || want b || want f; then
  row "(a) sparse raw -> qcow2" "$work/a.qcow2" \
    "qemu-img convert -f raw -O qcow2 $src $work/a.qcow2" \
    "$qimg convert -f raw -O qcow2 $src $work/a.qcow2"
fi
if want b || want f; then
  row "(b) qcow2 -> raw" "$work/b.raw" \
    "qemu-img convert -f qcow2 -O raw $work/a.qcow2 $work/b.raw" \
    "$qimg convert -f qcow2 -O raw $work/a.qcow2 $work/b.raw"
fi
if want c; then
  row "(c) raw -> qcow2 -c (zlib)" "$work/c.qcow2" \
    "qemu-img convert -c -f raw -O qcow2 $src $work/c.qcow2" \
    "$qimg convert -c -f raw -O qcow2 $src $work/c.qcow2"
  row "(c) raw -> qcow2 -c (zlib), qemu-img -W -m 16" "$work/c.qcow2" \
    "qemu-img convert -W -m 16 -c -f raw -O qcow2 $src $work/c.qcow2" \
    "$qimg convert -c -f raw -O qcow2 $src $work/c.qcow2"
  row "(c) raw -> qcow2 -c zstd" "$work/c.qcow2" \
    "qemu-img convert -c -o compression_type=zstd -f raw -O qcow2 $src $work/c.qcow2" \
    "$qimg convert -c -o compression_type=zstd -f raw -O qcow2 $src $work/c.qcow2"
  row "(c) raw -> qcow2 -c zstd, qemu-img -W -m 16" "$work/c.qcow2" \
    "qemu-img convert -W -m 16 -c -o compression_type=zstd -f raw -O qcow2 $src $work/c.qcow2" \
    "$qimg convert -c -o compression_type=zstd -f raw -O qcow2 $src $work/c.qcow2"
fi
if want d; then
  if [ ! -f "$work/chain-top.qcow2" ]; then
    qemu-img convert -f raw -O qcow2 "$src" "$work/chain-base.qcow2"
    qemu-img create -q -f qcow2 -b chain-base.qcow2 -F qcow2 "$work/chain-mid.qcow2"
    qemu-img create -q -f qcow2 -b chain-mid.qcow2 -F qcow2 "$work/chain-top.qcow2"
    qemu-io -f qcow2 -c "write -P 0x5a 0 256M" -c "write -P 0x5b 1G 256M" "$work/chain-mid.qcow2" >/dev/null
    qemu-io -f qcow2 -c "write -P 0x6a 128M 256M" -c "write -z 2G 256M" "$work/chain-top.qcow2" >/dev/null
  fi
  row "(d) 3-deep qcow2 chain -> flat qcow2" "$work/d.qcow2" \
    "qemu-img convert -f qcow2 -O qcow2 $work/chain-top.qcow2 $work/d.qcow2" \
    "$qimg convert -f qcow2 -O qcow2 $work/chain-top.qcow2 $work/d.qcow2"
fi
if want e; then
  [ -f "$work/zeros.raw" ] || python3 "$here/make-zero-regions.py" "$work/zeros.raw"
  row "(e) allocated raw with zero regions -> qcow2" "$work/e.qcow2" \
    "qemu-img convert -f raw -O qcow2 $work/zeros.raw $work/e.qcow2" \
    "$qimg convert -f raw -O qcow2 $work/zeros.raw $work/e.qcow2"
fi
if want f; then
  row "(f) compare (a) with (b)" "" \
    "qemu-img compare -f qcow2 -F raw $work/a.qcow2 $work/b.raw" \
    "$qimg compare -f qcow2 -F raw $work/a.qcow2 $work/b.raw"
fi
if want g; then
  if [ ! -f "$work/fragmented.qcow2" ]; then
    qemu-img create -q -f qcow2 -o cluster_size=4k "$work/fragmented.qcow2" 4G
    python3 - "$work/frag.cmds" <<'PY'
import random, sys
rng = random.Random(3)
clusters = rng.sample(range((4 << 30) // 4096), 200000)
with open(sys.argv[1], "w") as f:
    for c in clusters:
        f.write(f"write -P {c % 251} {c * 4096} 4k\n")
PY
    qemu-io -f qcow2 "$work/fragmented.qcow2" < "$work/frag.cmds" >/dev/null
  fi
  row "(g) check fragmented qcow2 (4k clusters)" "" \
    "qemu-img check $work/fragmented.qcow2" \
    "$qimg check $work/fragmented.qcow2"
fi
if want i; then
  [ -f "$work/info.qcow2" ] || qemu-img create -q -f qcow2 "$work/info.qcow2" 1G
  row "(i) info, 50 runs (startup)" "" \
    "for i in \$(seq 50); do qemu-img info $work/info.qcow2; done" \
    "for i in \$(seq 50); do $qimg info $work/info.qcow2; done"
fi
if want m; then
  if [ ! -f "$work/map16g.qcow2" ]; then
    echo "generating $work/map16g.qcow2 (200k scattered writes)..." >&2
    qemu-img create -q -f qcow2 -o cluster_size=4k "$work/map16g.qcow2" 16G
    python3 - "$work/map16g.cmds" <<'PY'
import random, sys
rng = random.Random(8)
clusters = rng.sample(range((16 << 30) // 4096), 200000)
with open(sys.argv[1], "w") as f:
    for c in clusters:
        f.write(f"write -q {c * 4096} 4k\n")
PY
    qemu-io -t unsafe -f qcow2 "$work/map16g.qcow2" < "$work/map16g.cmds" >/dev/null
  fi
  row "(m) map json, fragmented 16G, first 8G" "" \
    "qemu-img map --output=json --max-length=8G $work/map16g.qcow2" \
    "$qimg map --output=json --max-length=8G $work/map16g.qcow2"
  row "(m) map json, fragmented 16G, all" "" \
    "qemu-img map --output=json $work/map16g.qcow2" \
    "$qimg map --output=json $work/map16g.qcow2"
  row "(m) info json, fragmented 16G, 20 runs" "" \
    "for i in \$(seq 20); do qemu-img info --output=json $work/map16g.qcow2; done" \
    "for i in \$(seq 20); do $qimg info --output=json $work/map16g.qcow2; done"
fi
