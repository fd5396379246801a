#!/usr/bin/env bash
# The one command that runs every test. It installs what it needs first (a Python venv with the month-end
# peers), then runs formatting and lint checks, the Rust suites (unit, property, conformance vectors,
# CLI, month-end vs DuckDB) and a demo smoke run, and ends with one tally line: "N passed, M failed".
# Exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
log=$(mktemp)
trap 'rm -f "$log"' EXIT
checks_passed=0
checks_failed=0

check() { # check NAME COMMAND...: a pass/fail step that counts as one test
  local name=$1; shift
  echo "== $name (at ${SECONDS} s)"
  if "$@"; then checks_passed=$((checks_passed + 1)); else echo "!! $name failed"; checks_failed=$((checks_failed + 1)); fi
}

echo "== Python venv for the month-end peers (numpy, polars, duckdb)"
if ! .venv/bin/python -c "import numpy, polars, duckdb" 2>/dev/null; then
  python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-peers.txt \
    || { echo "!! could not install the Python peers"; exit 1; }
fi
export CMS_PYTHON="$root/.venv/bin/python" CMS_REQUIRE_PEERS=1
# One-shot builds: incremental caches would only cost disk (gigabytes) and time.
export CARGO_INCREMENTAL=0

check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
echo "== cargo build (at ${SECONDS} s)"
cargo build --workspace --all-targets --locked --quiet || { echo "!! build failed"; echo "0 passed, 1 failed"; exit 1; }
# PostgreSQL for the cms-postgres tests: a throwaway cluster on 127.0.0.1 (initdb and postgres refuse root, so
# as root they run as the postgres user), stopped and removed on exit; installed first on a bare machine.
# CMS_REQUIRE_PG=1 makes those tests fail instead of skipping without a server. A CMS_PG_URL already set is used.
export CMS_REQUIRE_PG=1
if [ -z "${CMS_PG_URL:-}" ]; then
  echo "== PostgreSQL (throwaway cluster)"
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$pg_bin" ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null; } \
      || echo "!! could not install PostgreSQL"
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
  pg_dir=$(mktemp -d /tmp/cms-pg.XXXXXX)
  as_pg=()
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$pg_dir" && as_pg=(runuser -u postgres --); fi
  pg_port=54329
  while (exec 3<> "/dev/tcp/127.0.0.1/$pg_port") 2> /dev/null; do pg_port=$((pg_port + 1)); done # a free port
  stop_postgres() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop > /dev/null 2>&1; rm -rf "$pg_dir"; }
  trap 'stop_postgres; rm -f "$log"' EXIT # the trap above, and the cluster
  if "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
       > "$pg_dir/initdb.log" 2>&1 \
    && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
       -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $pg_dir -c fsync=off" start > /dev/null; then
    export CMS_PG_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
  else
    echo "!! could not start PostgreSQL: the cms-postgres tests will fail"
    cat "$pg_dir/initdb.log" "$pg_dir/log" 2> /dev/null
  fi
fi
# Chromium (Debian's package) for the dashboard page's screenshot test; CMS_REQUIRE_CHROMIUM makes that test
# fail instead of skipping when Chromium is missing.
export CMS_REQUIRE_CHROMIUM=1
if ! command -v chromium > /dev/null 2>&1; then
  echo "== Chromium (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
    || echo "!! could not install Chromium: the dashboard screenshot test will fail"
fi
echo "== cargo test (at ${SECONDS} s)"
cargo test --workspace --locked 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
# The main job, twice on one SQLite file: the second run continues from the first.
check "cms demo runs, and a second run continues from its database" bash -c \
  'db="$(mktemp -d)/cms.db" && cargo run --quiet --locked -p cms-cli -- demo --db "$db" > /dev/null \
   && cargo run --quiet --locked -p cms-cli -- demo --db "$db" | grep "continuing from" > /dev/null'
# The month-end comparison of benches/, small and for correctness only (no timing): cms (CSV and pages,
# one and two threads), DuckDB and Polars must write the same bytes. It runs the debug build the workspace
# build made (the release build's figures are the benchmark's business, not CI's).
check "month-end vs peers (outputs only)" env CMS_BENCH_DIR="${TMPDIR:-/tmp}/cms-ci-bench" CMS_BENCH_PROFILE=dev \
  benches/month_end_vs_peers.sh --subscriptions 40 --pages --check-only
# The C ABI (cms-ffi), on the debug libraries the workspace build made: the header cbindgen wrote during that
# build must be the checked-in one; the C harness (cms-ffi/tests/c/test_cms.c: hostile calls, a month on
# SQLite, every conformance vector, the month-end of a small generated month against DuckDB's outputs) is
# compiled with gcc, linked dynamically (flags from the pkg-config file, rpath) and statically, and the
# dynamic build runs again under valgrind (memcheck: no error, and no definite, indirect or possible leak, with
# the suppressions of cms-ffi/tests/valgrind.supp, each explained there; "still reachable" is memory held until
# exit on purpose: the library's registries and static strings, std's and SQLite's globals). Each run's cases
# ("c: N passed, M failed") count in the tally; a run that fails without a failed case (a build error, a crash,
# a valgrind error) counts as one failure.
if ! command -v valgrind > /dev/null 2>&1 || ! command -v pkg-config > /dev/null 2>&1; then
  echo "== valgrind, pkg-config (Debian packages)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind pkg-config > /dev/null; } \
    || echo "!! could not install valgrind and pkg-config: the C checks will fail"
fi
check "cms.h is what cbindgen writes (no drift)" bash -c \
  'test -s cms-ffi/include/cms.h && git diff --exit-code -- cms-ffi/include'
c_lib="${CARGO_TARGET_DIR:-$root/target}/debug" c_work="${TMPDIR:-/tmp}/cms-ci-c"
if [ ! -f "$c_work/month/duckdb/invoices.csv" ]; then
  rm -rf "$c_work/month" && mkdir -p "$c_work" \
    && "$CMS_PYTHON" ../shared/bench/gen_month.py "$c_work/month/data" --subscriptions 3 > /dev/null \
    && "$CMS_PYTHON" ../shared/bench/peer_duckdb.py "$c_work/month/data" "$c_work/month/duckdb" > /dev/null \
    || echo "!! could not generate the C harness's month"
fi
mkdir -p "$c_work/pkgconfig"
sed -e "s|@PREFIX@|$root|" -e "s|@LIBDIR@|$c_lib|" -e "s|@INCLUDEDIR@|$root/cms-ffi/include|" \
  -e "s|@VERSION@|$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)|" cms-ffi/cms.pc.in > "$c_work/pkgconfig/cms.pc"
c_harness=(cms-ffi/tests/c/test_cms.c -Icms-ffi/tests/c)
c_run=("$root" "$c_work/month/data" "$c_work/month/duckdb")
c_passed=0 c_failed=0
c_check() { # c_check NAME COMMAND...: one run of the C harness, its closing line counted in the tally
  local name=$1 out status counts run_passed run_failed
  shift
  echo "== $name (at ${SECONDS} s)"
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  counts=$(awk '/^c: [0-9]+ passed, [0-9]+ failed$/ { p = $2; f = $4 } END { print p + 0, f + 0 }' "$out")
  rm -f "$out"
  read -r run_passed run_failed <<< "$counts"
  if [ "$status" -ne 0 ]; then echo "!! $name failed"; [ "$run_failed" -gt 0 ] || run_failed=1; fi
  c_passed=$((c_passed + run_passed)) c_failed=$((c_failed + run_failed))
}
c_check "C harness, linked dynamically (pkg-config, rpath)" bash -c \
  'gcc -std=c11 -Wall -Wextra -Werror "${@:4}" $(PKG_CONFIG_PATH="$2/pkgconfig" pkg-config --cflags --libs cms) \
     -Wl,-rpath,"$1" -o "$2/test_cms_dyn" && "$2/test_cms_dyn" "$3" "$2/month/data" "$2/month/duckdb"' \
  _ "$c_lib" "$c_work" "$root" "${c_harness[@]}"
c_check "C harness, linked statically" bash -c \
  'gcc -std=c11 -Wall -Wextra -Werror "${@:4}" -I"$3/cms-ffi/include" "$1/libcms_ffi.a" -lpthread -ldl -lm \
     -o "$2/test_cms_static" && "$2/test_cms_static" "$3" "$2/month/data" "$2/month/duckdb"' \
  _ "$c_lib" "$c_work" "$root" "${c_harness[@]}"
c_check "C harness under valgrind (no leaks, no errors)" \
  valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --suppressions=cms-ffi/tests/valgrind.supp --error-exitcode=1 \
  "$c_work/test_cms_dyn" "${c_run[@]}"

# The Python binding (cms-python): its build and test tools in the venv, the package built in place (maturin
# develop, debug), then its pytest suite (every conformance vector, the golden scenario, month-end byte for byte
# against `cms month-end` and DuckDB, errors, SQLite reopened, the GIL released, DataFrames, the notebook
# example), counted test by test in the tally like cargo's; mypy --strict and stubtest (the .pyi against the
# module).
echo "== Python binding: tools"
.venv/bin/pip install --quiet --disable-pip-version-check -r cms-python/requirements-dev.txt \
  || echo "!! could not install the Python binding's tools"
check "cms-python builds and installs (maturin develop)" env VIRTUAL_ENV="$root/.venv" \
  .venv/bin/maturin develop --quiet --locked -m cms-python/Cargo.toml
echo "== pytest (cms-python) (at ${SECONDS} s)"
# The distributed month-end tests (Dask LocalCluster, Spark local mode on Java 17) run on a generated
# 250-subscription month kept beside the benchmark's data; CMS_REQUIRE_SPARK makes a missing Java or pyspark
# a failure instead of a skip.
CMS_DISTRIBUTED_DATA="${TMPDIR:-/tmp}/cms-ci-bench/m250" CMS_REQUIRE_SPARK=1 SPARK_LOCAL_IP=127.0.0.1 \
CMS_CLI="${CARGO_TARGET_DIR:-$root/target}/debug/cms" MPLBACKEND=Agg \
  .venv/bin/python -m pytest -q -p no:cacheprovider cms-python/tests 2>&1 | tee -a "$log"
py_status=${PIPESTATUS[0]}
# Installing from the repo as a user would: pip builds the wheel through the PEP 517 backend (maturin; a dev
# build here, which reuses the artifacts above); its name must carry the tag cp39-abi3 (one wheel for every
# CPython >= 3.9); it goes into a fresh venv without any other package, and runs the month-end of the vectors'
# workload there: with this machine's python3, and also with a CPython 3.9 when one is found (python3.9 on the
# PATH, or pyenv's); a machine without one says so and checks python3 only.
check "cms-python: pip builds a cp39-abi3 wheel from the repo; it installs into fresh venvs and runs" bash -c '
  set -e; work=$(mktemp -d); trap "rm -rf $work" EXIT
  MATURIN_PEP517_ARGS="--profile dev" .venv/bin/pip wheel --quiet --disable-pip-version-check --no-deps \
    -w "$work/dist" ./cms-python
  wheel=$(ls "$work"/dist/cms-*.whl)
  case "${wheel##*/}" in
    *-cp39-abi3-*) echo "wheel: ${wheel##*/}" ;;
    *) echo "!! the wheel is not tagged cp39-abi3: ${wheel##*/}"; exit 1 ;;
  esac
  pythons=(python3)
  py39=""
  for candidate in $(command -v python3.9) "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9.*/bin/python3.9; do
    if [ -x "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (3, 9))" 2>/dev/null
    then py39=$candidate; fi
  done
  if [ -n "$py39" ]; then pythons+=("$py39"); else
    echo "-- no CPython 3.9 on this machine (python3.9, pyenv): the abi3 wheel runs on $(python3 --version) only"
  fi
  for python in "${pythons[@]}"; do
    venv="$work/venv-${#python}-$RANDOM"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
    (cd "$work" && "$venv/bin/python" -c "
import platform, sys, cms
summary = cms.month_end(sys.argv[1], \"out-\" + platform.python_version())
assert str(summary[\"totals\"][\"USD\"]) == \"2.81\", summary
print(\"wheel on CPython\", platform.python_version() + \":\", cms.version(), summary[\"totals\"])
" "'"$root"'/tests/vectors/calls/workload")
  done'
check "mypy --strict (cms-python: package, tests, example)" \
  bash -c 'cd cms-python && ../.venv/bin/python -m mypy --strict python/cms tests examples'
check "stubtest (cms-python's stubs against the module)" bash -c 'cd cms-python \
  && ../.venv/bin/python -m mypy.stubtest cms --mypy-config-file pyproject.toml --allowlist stubtest-allowlist.txt'

# The Node binding (cms-node, napi-rs): npm ci (skipped while node_modules matches the lock), the addon built in
# debug by napi (which regenerates index.d.ts: it must equal the checked-in one), then its node --test suite
# (every conformance vector on memory and SQLite, the golden month through the typed methods on a reopened
# SQLite file, month-end byte for byte against DuckDB from CSV and pages, errors with codes, the event loop
# running meanwhile, index.d.ts against the exports), counted test by test in the tally (TAP: "# pass N").
runner_log=$(mktemp)
check "cms-node: npm ci" bash -c 'cd cms-node && { [ node_modules/.package-lock.json -nt package-lock.json ] \
  || npm ci --no-audit --no-fund --loglevel=error; }'
cp cms-node/index.d.ts "$runner_log.d.ts"
check "cms-node builds (napi build, debug)" bash -c 'cd cms-node && npm run --silent build > /dev/null'
check "cms-node: index.d.ts is what napi generates (no drift)" cmp cms-node/index.d.ts "$runner_log.d.ts"
echo "== node --test (cms-node) (at ${SECONDS} s)"
(cd cms-node && npm test --silent) 2>&1 | tee -a "$runner_log"
node_status=${PIPESTATUS[0]}
# uniffi (cms-uniffi): the library and its generator (feature `cli`), Kotlin, Swift and Ruby generated; the
# Swift must equal the checked-in cms-uniffi/generated/swift/ (no Swift compiler here); the Kotlin test (kotlinc from the npm package
# kotlin-compiler, cached under target/tools/, Debian's JNA) and the Ruby test (Debian's ruby-ffi) run a
# month-end and every conformance vector, and end with "<language>: N passed, M failed", counted in the tally.
uniffi=(cms-uniffi/tests/run.sh)
check "cms-uniffi: build, generate Kotlin, Swift and Ruby" "${uniffi[@]}" generate
check "cms-uniffi: the generated Swift is the checked-in one" "${uniffi[@]}" swift
echo "== Kotlin and Ruby (cms-uniffi) (at ${SECONDS} s)"
"${uniffi[@]}" kotlin 2>&1 | tee -a "$runner_log"
kotlin_status=${PIPESTATUS[0]}
"${uniffi[@]}" ruby 2>&1 | tee -a "$runner_log"
ruby_status=${PIPESTATUS[0]}
# node --test closes with "# pass N" and "# fail M"; the Kotlin and Ruby tests with "<language>: N passed, M failed".
read -r runners_passed runners_failed < <(awk '/^# pass [0-9]+$/ { p += $3 } /^# fail [0-9]+$/ { f += $3 }
  /^[a-z]+: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 } END { print p + 0, f + 0 }' "$runner_log")
for status in "$node_status" "$kotlin_status" "$ruby_status"; do # a crash or a build error: no closing line
  if [ "$status" -ne 0 ] && [ "$runners_failed" -eq 0 ]; then runners_failed=1; fi
done
rm -f "$runner_log" "$runner_log.d.ts"

# Tally every runner: cargo prints "test result: ok. N passed; M failed; ...".
read -r cargo_passed cargo_failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
if [ "$test_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi # a crash or a build error in tests
# pytest closes with "N passed, M failed, K errors in T s" (errors count as failures).
read -r py_passed py_failed < <(awk '/^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^(failed|errors?)/) f += $i } } END { print p + 0, f + 0 }' "$log")
if [ "$py_status" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi # no test collected, or a crash
passed=$((cargo_passed + py_passed + runners_passed + c_passed + checks_passed))
failed=$((cargo_failed + py_failed + runners_failed + c_failed + checks_failed))
echo "(finished at ${SECONDS} s)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
