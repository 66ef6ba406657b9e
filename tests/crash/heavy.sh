#!/usr/bin/env bash
# Heavy run of the crash-consistency harness (tests/Qimg.Conformance/CrashConsistency): the same tests as the light
# suite, with more kills, for qimg and for qemu-img, one summary line per workload and program in the report file.
#
#   tests/crash/heavy.sh [-k KILLS] [-w WORKLOADS] [-s SEED] [-m IMAGE_MIB] [-r REPORT] PROGRAM...
#
# PROGRAM: a qimg binary (an AOT build starts in milliseconds, so most kills land while it works:
#   dotnet publish src/Qimg.Cli -c Release -r linux-x64 -p:PublishAot=true -o /tmp/qimg-aot)
#   or /usr/bin/qemu-img. WORKLOADS: comma-separated (convert,convert-n,check-r-all; default all).
# Defaults: 1000 kills, seed 7, 8 MiB images, report tests/crash/heavy-report.txt. The tests must be built
# (dotnet build Qimg.sln -c Release). Exit status: 0 when no program broke an invariant.
set -uo pipefail
cd "$(dirname "$0")/../.."

kills=1000 workloads="" seed=7 mib=8 report="tests/crash/heavy-report.txt"
while getopts "k:w:s:m:r:" opt; do
  case "$opt" in
    k) kills=$OPTARG ;; w) workloads=$OPTARG ;; s) seed=$OPTARG ;; m) mib=$OPTARG ;; r) report=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,12p' "$0"; exit 2; }

report=$(realpath -m "$report")
status=0
for program in "$@"; do
  program=$(realpath "$program")
  echo "== $program: $kills kills per workload${workloads:+ ($workloads)}, seed $seed, $mib MiB" | tee -a "$report"
  QIMG_CRASH_PROGRAM="$program" QIMG_CRASH_KILLS="$kills" QIMG_CRASH_SEED="$seed" QIMG_CRASH_IMAGE_MIB="$mib" \
  QIMG_CRASH_WORKLOADS="$workloads" QIMG_CRASH_REPORT="$report" \
    dotnet test tests/Qimg.Conformance -c Release --no-build -nologo \
      --filter "FullyQualifiedName~CrashConsistencyTests" >/dev/null 2>&1 || status=1
done

grep -E '^(==|workload=)' "$report"
exit $status
