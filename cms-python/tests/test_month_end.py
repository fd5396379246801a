"""``cms.month_end`` on a generated month (../shared/bench/gen_month.py): the four outputs byte for byte
the same as ``cms month-end`` and the DuckDB peer's, from usage.csv and from Usage API pages, on one and
two threads; the summary agrees with the files it wrote."""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

import cms
from support import BENCH, cms_cli, python, run

OUTPUTS = ("invoice_lines.csv", "invoices.csv", "commissions.csv", "overrides.csv")


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def cli_outputs(workload: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What ``cms month-end`` writes for the workload."""
    out = tmp_path_factory.mktemp("cli-out")
    run([*cms_cli(), "month-end", "--data", str(workload), "--out", str(out)])
    return _files(out)


def test_outputs_match_the_cli_and_duckdb_byte_for_byte(
    workload: Path, tmp_path: Path, cli_outputs: dict[str, bytes]
) -> None:
    peer = tmp_path / "duckdb"
    run([python(), str(BENCH / "peer_duckdb.py"), str(workload), str(peer)])
    assert _files(peer) == cli_outputs, "the CLI and the DuckDB peer disagree"
    for threads in (1, 2):
        out = tmp_path / f"python-{threads}"
        summary = cms.month_end(workload, out, threads=threads)
        assert summary["threads"] == threads
        assert summary["outputs"] == [str(out / name) for name in OUTPUTS]
        written = _files(out)
        for name in OUTPUTS:
            assert written[name] == cli_outputs[name], f"{name} on {threads} thread(s) differs from cms month-end"


def test_pages_give_the_same_outputs(workload: Path, tmp_path: Path, cli_outputs: dict[str, bytes]) -> None:
    csv_summary = cms.month_end(workload, tmp_path / "csv", threads=2)
    pages_summary = cms.month_end(workload, tmp_path / "pages", pages_dir=workload / "usage-pages", threads=2)
    assert _files(tmp_path / "pages") == cli_outputs
    for key in ("period", "usage_rows", "counted", "duplicates", "invoices", "invoice_lines", "totals"):
        assert pages_summary[key] == csv_summary[key], key


def test_summary_agrees_with_the_files(workload: Path, tmp_path: Path) -> None:
    summary = cms.month_end(workload, tmp_path, threads=2)
    with open(tmp_path / "invoices.csv", newline="") as file:
        invoices = list(csv.DictReader(file))
    with open(tmp_path / "invoice_lines.csv", newline="") as file:
        lines = list(csv.DictReader(file))
    assert summary["period"] == "2026-10"
    assert set(summary) == set(cms.MonthEndSummary.__annotations__)  # the TypedDict is the engine's summary
    assert summary["invoices"] == len(invoices) == 3  # 12 subscriptions in 3 tenants
    assert summary["invoice_lines"] == len(lines)
    total = sum((Decimal(row["total"]) for row in invoices), Decimal(0))
    assert summary["totals"] == {"USD": total}
    assert isinstance(summary["totals"]["USD"], Decimal)
    # Invoice totals are the sums of their lines, exactly.
    by_tenant: Counter[str] = Counter()
    sums: dict[str, Decimal] = {}
    for line in lines:
        by_tenant[line["tenant_id"]] += 1
        sums[line["tenant_id"]] = sums.get(line["tenant_id"], Decimal(0)) + Decimal(line["amount"])
    assert sums == {row["tenant_id"]: Decimal(row["total"]) for row in invoices}
    # The generator's duplicates are counted once; its rows are all read.
    assert summary["duplicates"] > 0 and summary["usage_rows"] > 70_000
    assert summary["counted"] + summary["duplicates"] + summary["before_period"] + summary["after_period"] <= summary[
        "usage_rows"
    ]
    assert summary["unpriced"] == []
