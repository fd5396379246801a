"""The README's Python example runs as written (in a folder with its ``month/`` and ``page-1.json``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from support import ROOT, VECTORS, python, run


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Python\n") : readme.index("\n## Crate map\n")]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's Python section has no example"
    shutil.copytree(VECTORS / "calls" / "workload", tmp_path / "month")
    shutil.copy(ROOT / "tests" / "data" / "azure-stack-hub-sample-usage.json", tmp_path / "page-1.json")
    script = tmp_path / "example.py"
    script.write_text(match.group(1) + "\nassert summary['totals'] == {'USD': __import__('decimal').Decimal('2.81')}\n")
    run([python(), str(script)], cwd=tmp_path)
    assert (tmp_path / "out" / "invoices.csv").is_file() and (tmp_path / "cms.db").is_file()
