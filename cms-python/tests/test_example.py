"""The notebook example runs headless on a generated month and on the default folder: it loads the
month, rates it, prints the exact cost by tenant and writes the chart."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import cms
from support import ROOT, python, run

EXAMPLE = ROOT / "cms-python" / "examples" / "notebook.py"


def _run(tmp_path: Path, *arguments: str) -> tuple[str, Path]:
    chart = tmp_path / "cost-by-tenant.png"
    done = run(
        [python(), str(EXAMPLE), *arguments, "--out", str(chart)],
        env={**os.environ, "MPLBACKEND": "Agg"},
        cwd=tmp_path,
    )
    return done.stdout, chart


def test_notebook_on_a_generated_month(workload: Path, tmp_path: Path) -> None:
    output, chart = _run(tmp_path, str(workload))
    expected = cms.month_end(workload, tmp_path / "check")["totals"]["USD"]
    assert f"total: {expected} USD" in output
    assert "2026-10:" in output and "3 invoices" in output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 5_000  # a drawn chart, not an empty canvas


def test_notebook_on_the_default_folder(tmp_path: Path) -> None:
    output, chart = _run(tmp_path)
    # The vectors' month: 0.90 + 0.13 + 0.22 + 1.56 (tests/vectors/month_end.json, DuckDB-checked).
    assert f"total: {Decimal('2.81')} USD" in output
    assert chart.is_file()
