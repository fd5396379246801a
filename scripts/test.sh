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
echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
# The main job, twice on one SQLite file: the second run continues from the first.
check "cms demo runs, and a second run continues from its database" bash -c \
  'db="$(mktemp -d)/cms.db" && cargo run --quiet --locked -p cms-cli -- demo --db "$db" > /dev/null \
   && cargo run --quiet --locked -p cms-cli -- demo --db "$db" | grep -q "continuing from"'
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
