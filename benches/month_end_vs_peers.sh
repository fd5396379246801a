#!/usr/bin/env bash
# The month-end of ../shared/bench/WORKLOAD.md, side by side: `cms month-end` against the DuckDB and Polars
# peers on the same generated month, runs alternating, warm file cache. Prints one table: median wall time,
# median peak resident memory, and both as ratios to DuckDB. Outputs are compared byte for byte first: a
# difference fails the run before any timing is shown.
#
# usage: benches/month_end_vs_peers.sh [--subscriptions N] [--runs R] [--pages] [--check-only]
#   --subscriptions N  size of the generated month (default 1000: 5.1 M rows, 1.36 GB)
#   --runs R           runs of each tool, alternating (default 5)
#   --pages            also time `cms month-end --pages` on the same usage as Usage API pages
#   --check-only       compare outputs once, no timing (what CI runs, on a small month)
# environment: CMS_PYTHON (default .venv/bin/python), CMS_BENCH_DIR (default /tmp/cms-bench),
#   CMS_BENCH_PROFILE (default release; CI's --check-only run uses `dev`, the debug build it already has)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$root/../shared/bench"
subscriptions=1000
runs=5
pages=false
check_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --subscriptions) subscriptions=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --pages) pages=true; shift ;;
    --check-only) check_only=true; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
python=${CMS_PYTHON:-$root/.venv/bin/python}
work=${CMS_BENCH_DIR:-/tmp/cms-bench}
data="$work/m$subscriptions"
mkdir -p "$work"

if [ ! -f "$data/usage.csv" ] || { $pages && [ ! -d "$data/usage-pages" ]; }; then
  echo "generating $data" >&2
  rm -rf "$data"
  generate=("$python" "$shared/gen_month.py" "$data" --subscriptions "$subscriptions")
  $pages && generate+=(--json-pages)
  "${generate[@]}" >&2
fi
profile=${CMS_BENCH_PROFILE:-release}
(cd "$root" && cargo build --profile "$profile" --locked --quiet -p cms-cli)
[ "$profile" = dev ] && profile_dir=debug || profile_dir=$profile
cms="${CARGO_TARGET_DIR:-$root/target}/$profile_dir/cms"
rows=$(($(wc -l < "$data/usage.csv") - 1))

run() { # run TOOL OUT: one run, prints "wall_seconds peak_kb"
  local tool=$1 out=$2 timing
  timing=$(mktemp)
  case "$tool" in
    cms) /usr/bin/time -f "%e %M" -o "$timing" "$cms" month-end --data "$data" --out "$out" > /dev/null ;;
    cms-1-thread) /usr/bin/time -f "%e %M" -o "$timing" "$cms" month-end --threads 1 --data "$data" --out "$out" > /dev/null ;;
    cms-pages) /usr/bin/time -f "%e %M" -o "$timing" "$cms" month-end --data "$data" --pages "$data/usage-pages" --out "$out" > /dev/null ;;
    cms-pages-1-thread) /usr/bin/time -f "%e %M" -o "$timing" "$cms" month-end --threads 1 --data "$data" --pages "$data/usage-pages" --out "$out" > /dev/null ;;
    duckdb) /usr/bin/time -f "%e %M" -o "$timing" "$python" "$shared/peer_duckdb.py" "$data" "$out" > /dev/null ;;
    polars) /usr/bin/time -f "%e %M" -o "$timing" "$python" "$shared/peer_polars.py" "$data" "$out" > /dev/null ;;
  esac
  tail -n 1 "$timing"
  rm -f "$timing"
}

tools=(cms cms-1-thread duckdb polars)
$pages && tools+=(cms-pages cms-pages-1-thread)

# Correctness first: every tool's outputs must equal DuckDB's, byte for byte.
for tool in "${tools[@]}"; do
  run "$tool" "$work/out-$tool" > /dev/null
done
for tool in "${tools[@]}"; do
  if ! diff -r "$work/out-duckdb" "$work/out-$tool" > /dev/null; then
    echo "FAIL: $tool output differs from DuckDB's ($work/out-$tool)" >&2
    exit 1
  fi
done
echo "outputs identical to DuckDB's: ${tools[*]} (m$subscriptions, $rows usage rows)"
$check_only && exit 0

cat "$data/usage.csv" > /dev/null # warm the file cache
declare -A walls peaks
for ((i = 1; i <= runs; i++)); do
  for tool in "${tools[@]}"; do
    read -r wall peak < <(run "$tool" "$work/out-$tool")
    walls[$tool]+="$wall "
    peaks[$tool]+="$peak "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
duck_wall=$(echo "${walls[duckdb]}" | median)
duck_peak=$(echo "${peaks[duckdb]}" | median)
echo
echo "month-end of m$subscriptions ($rows rows), median of $runs alternating runs, $(nproc) cores:"
printf '| %-20s | %10s | %13s | %14s | %14s |\n' tool "wall (s)" "peak RSS (MB)" "wall / DuckDB" "RSS / DuckDB"
printf '| %-20s | %10s | %13s | %14s | %14s |\n' --- ---: ---: ---: ---:
for tool in "${tools[@]}"; do
  wall=$(echo "${walls[$tool]}" | median)
  peak=$(echo "${peaks[$tool]}" | median)
  awk -v tool="$tool" -v wall="$wall" -v peak="$peak" -v dw="$duck_wall" -v dp="$duck_peak" \
    'BEGIN { printf "| %-20s | %10.2f | %13.0f | %14.2f | %14.3f |\n", tool, wall, peak / 1024, wall / dw, peak / dp }'
done
if $pages; then
  wall=$(echo "${walls[cms-pages-1-thread]}" | median)
  echo
  awk -v rows="$rows" -v wall="$wall" 'BEGIN { printf "Usage API pages, one thread: %.0f records/s per core\n", rows / wall }'
fi
