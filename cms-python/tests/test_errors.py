"""Errors: every code maps to its family's exception class; each exception carries ``.code``,
``.location`` and ``.source``; the documented table matches the mapping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cms
import cms.exceptions
from cms import _cms

FAMILIES = (
    cms.InputError,
    cms.NotFoundError,
    cms.ConflictError,
    cms.ForbiddenError,
    cms.BillingError,
    cms.IngestError,
    cms.StorageError,
    cms.RemoteError,
    cms.AuditError,
)


def test_every_error_code_maps_to_a_family() -> None:
    codes = cms.error_codes()
    assert len(codes) >= 30 and len(set(codes)) == len(codes)
    for code in codes:
        family = _cms.error_class(code)
        assert family in FAMILIES, f"{code} maps to {family.__name__}, not a family"
        assert issubclass(family, cms.CmsError) and issubclass(family, Exception)
    # A code the table does not know (a newer core) raises the base class, not a wrong family.
    assert _cms.error_class("no_such_code") is cms.CmsError
    # Every family is used.
    assert {_cms.error_class(code) for code in codes} == set(FAMILIES)


def test_the_documented_table_is_the_mapping() -> None:
    doc = cms.exceptions.__doc__ or ""
    table = doc.split("==================  ===")[1]  # the rows between the table's two rules
    documented: dict[str, str] = {}
    family = ""
    for line in table.splitlines()[1:]:
        match = re.match(r"``(\w+)``\s+(.*)", line)
        if match:
            family, codes = match.groups()
        elif family and line.startswith(" " * 20) and line.strip():
            codes = line.strip()
        else:
            continue
        for code in re.split(r",\s*", codes.strip().rstrip(",")):
            if code:
                documented[code] = family
    assert documented == {code: _cms.error_class(code).__name__ for code in cms.error_codes()}


def test_exceptions_module_re_exports_the_classes() -> None:
    for family in (cms.CmsError, *FAMILIES):
        assert getattr(cms.exceptions, family.__name__) is family
        assert family.__module__ == "cms"


def test_missing_data_folder_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-month"
    with pytest.raises(cms.StorageError) as raised:
        cms.month_end(missing, tmp_path / "out")
    error = raised.value
    assert error.code == "io"
    assert error.location == str(missing) and error.source == str(missing)
    assert "no such data folder" in str(error)
    assert not (tmp_path / "out").exists()


def test_bad_usage_line_is_an_input_error_naming_file_and_line(small_workload: Path, tmp_path: Path) -> None:
    usage = small_workload / "usage.csv"
    lines = usage.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",10.000000,", ",ten,")
    usage.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(cms.InputError) as raised:
        cms.month_end(small_workload, tmp_path / "out", threads=2)
    error = raised.value
    assert (error.code, error.location, error.source) == ("bad_decimal", "usage.csv line 3", "usage.csv")
    assert str(error) == 'usage.csv line 3: bad decimal "ten" in quantity'


def test_engine_errors_carry_code_and_location() -> None:
    with cms.Cms(principal="ops") as engine:
        with pytest.raises(cms.NotFoundError) as not_found:
            engine.node("nope", at="2026-01-01T00:00:00Z")
        assert (not_found.value.code, not_found.value.location) == ("unknown_node", None)
        engine.execute(
            {"type": "node_added", "id": "p", "kind": "partner", "parent": None, "name": "P"},
            at="2026-01-01T00:00:00Z",
        )
        with pytest.raises(cms.ConflictError) as duplicate:
            engine.execute(
                {"type": "node_added", "id": "p", "kind": "partner", "parent": None, "name": "P"},
                at="2026-01-01T00:00:00Z",
            )
        assert duplicate.value.code == "duplicate_node"
        with pytest.raises(cms.InputError) as bad_period:
            engine.showback("2026-13")
        assert bad_period.value.code == "invalid_period"
        with pytest.raises(cms.InputError) as bad_field:
            engine.call("nodes", {"principal": {"id": "ops"}, "at": "yesterday"})
        assert (bad_field.value.code, bad_field.value.location) == ("bad_timestamp", "nodes field at")
        assert bad_field.value.source == "nodes"
    # A closed engine refuses every call with a store error.
    with pytest.raises(cms.StorageError) as closed:
        engine.nodes(at="2026-01-01T00:00:00Z")
    assert closed.value.code == "store" and "closed" in str(closed.value)


def test_strict_month_end_refuses_unpriced_usage(tmp_path: Path) -> None:
    unpriced = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "calls" / "workload-unpriced"
    summary = cms.month_end(unpriced, tmp_path / "lenient")
    assert summary["unpriced"], summary
    with pytest.raises(cms.BillingError) as raised:
        cms.month_end(unpriced, tmp_path / "strict", strict=True)
    assert raised.value.code == "unpriced_meter"
    assert raised.value.location is not None
