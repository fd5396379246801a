"""Fixtures of the pytest suite (helpers are in support.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import BENCH, VECTORS, python, run


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated month (../shared/bench/gen_month.py, 12 subscriptions in 3 tenants, about 73,000 usage
    rows, with the same usage as Usage API pages in ``usage-pages/``), made once per run."""
    folder = tmp_path_factory.mktemp("workload") / "m12"
    run([python(), str(BENCH / "gen_month.py"), str(folder), "--subscriptions", "12", "--json-pages"])
    return folder


@pytest.fixture()
def small_workload(tmp_path: Path) -> Path:
    """A copy of the vectors' small workload folder (tests/vectors/calls/workload), safe to edit."""
    folder = tmp_path / "workload"
    shutil.copytree(VECTORS / "calls" / "workload", folder)
    return folder
