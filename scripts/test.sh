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
  echo "== $name"
  if "$@"; then checks_passed=$((checks_passed + 1)); else echo "!! $name failed"; checks_failed=$((checks_failed + 1)); fi
}

echo "== Python venv for the month-end peers (numpy, polars, duckdb)"
if ! .venv/bin/python -c "import numpy, polars, duckdb" 2>/dev/null; then
  python3 -m venv .venv && .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-peers.txt \
    || { echo "!! could not install the Python peers"; exit 1; }
fi
export CMS_PYTHON="$root/.venv/bin/python" CMS_REQUIRE_PEERS=1

check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
echo "== cargo build"
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
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
# The main job, twice on one SQLite file: the second run continues from the first.
check "cms demo runs, and a second run continues from its database" bash -c \
  'db="$(mktemp -d)/cms.db" && cargo run --quiet --locked -p cms-cli -- demo --db "$db" > /dev/null \
   && cargo run --quiet --locked -p cms-cli -- demo --db "$db" | grep "continuing from" > /dev/null'
# The month-end comparison of benches/, small and for correctness only (no timing): cms (CSV and pages,
# one and two threads), DuckDB and Polars must write the same bytes.
check "month-end vs peers (outputs only)" env CMS_BENCH_DIR="${TMPDIR:-/tmp}/cms-ci-bench" \
  benches/month_end_vs_peers.sh --subscriptions 40 --pages --check-only

# Tally every runner: cargo prints "test result: ok. N passed; M failed; ...".
read -r cargo_passed cargo_failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
if [ "$test_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi # a crash or a build error in tests
passed=$((cargo_passed + checks_passed))
failed=$((cargo_failed + checks_failed))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
