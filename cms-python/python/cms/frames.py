"""Usage in and results out as pyarrow Tables and pandas DataFrames, for notebooks.

Needs ``pyarrow`` (and ``pandas`` for DataFrames): ``pip install "cms[frames]"``. Both are imported on
first use, so ``import cms`` does not need them.

Exactness: decimals become Arrow ``decimal128`` columns (``decimal256`` past 38 digits) whose scale is the
largest of the column's values, so every value is kept exactly; pandas shows them as ``decimal.Decimal``
objects (``object`` dtype), which sum exactly. Instants become ``timestamp[us, tz=UTC]``. Nothing is ever a
float. To plot, convert a column at the end (``frame["amount"].astype(float)``): that is display, not money.

Copies, usage in: ``Cms.ingest_frame`` hands the data to the extension through the Arrow C stream interface
(``__arrow_c_stream__``; arrow-rs imports it), which reads the columns in place: strings from the Arrow
buffers, decimals from their 128-bit integers, timestamps from their 64-bit counts, straight into the
engine's usage records, with no Python object per row and no JSON. A pyarrow Table, RecordBatchReader or
Polars frame is not copied before that. A pandas DataFrame becomes a pyarrow Table first
(:func:`arrow_usage`): numeric, timestamp and Arrow-backed string columns convert without per-value Python
work; object columns (``Decimal`` objects, strings held as Python objects) are read value by value by
pyarrow, since pandas keeps them as Python objects (``Decimal`` values become their text, so each keeps its
own digits, as :meth:`cms.Cms.ingest_records` keeps them).

Copies, results out: ``Cms.usage_table`` (and ``usage_frame``) is laid out in Arrow columns in Rust from the
stored records and imported by pyarrow through the same C stream interface, without JSON or Python objects
(one copy: the store's records into Arrow buffers). The other tables (invoice lines, :func:`table` of any
result, the month-end's outputs) are built here, on the Python side, from the engine's results (JSON text,
converted by ``cms._convert`` into Python values, then by pyarrow into columns) or from the month-end's CSV
files: every value is copied (JSON text, then a Python object, then an Arrow buffer); these results are small
next to the usage they summarise. Going from a Table to pandas (``to_pandas``) is Arrow's own conversion.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional, cast

from ._cms import InputError

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from . import MonthEndSummary

__all__ = [
    "MonthEndFrames",
    "MonthEndTables",
    "USAGE_COLUMNS",
    "arrow_usage",
    "invoice_lines_table",
    "month_end_frames",
    "month_end_tables",
    "table",
    "usage_records",
    "usage_table",
]

#: The columns of a usage table, in order (the core's usage record).
USAGE_COLUMNS: tuple[str, ...] = ("subscription", "meter", "start", "end", "quantity", "resource_uri", "location")

#: The month-end's output files and the names of their tables.
_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("invoice_lines", "invoice_lines.csv"),
    ("invoices", "invoices.csv"),
    ("commissions", "commissions.csv"),
    ("overrides", "overrides.csv"),
)


def _pyarrow() -> Any:
    import pyarrow

    return pyarrow


def _decimal_type(values: Iterable[Decimal]) -> Any:
    """The Arrow decimal type that holds every value exactly."""
    pa = _pyarrow()
    scale = 0
    whole = 1
    for value in values:
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int), "non-finite decimals never come from the engine"
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    if whole + scale <= 38:
        return pa.decimal128(38, scale)
    return pa.decimal256(76, scale)


def _column(name: str, values: list[Any]) -> Any:
    """One Arrow array from Python values of one kind (``None`` is null)."""
    pa = _pyarrow()
    present = [value for value in values if value is not None]
    if not present:
        return pa.array(values, type=pa.null())
    first = present[0]
    if isinstance(first, Decimal):
        return pa.array(values, type=_decimal_type(present))
    if isinstance(first, _dt.datetime):
        return pa.array(values, type=pa.timestamp("us", tz="UTC"))
    if isinstance(first, _dt.date):
        return pa.array(values, type=pa.date32())
    if isinstance(first, (dict, list)):
        from ._convert import encode

        return pa.array([None if value is None else encode(value) for value in values], type=pa.string())
    return pa.array(values)


def table(records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> pyarrow.Table:
    """Any list of result dicts (nodes, invoice lines, showback departments, ...) as a pyarrow Table.

    Args:
        records: dicts as the engine returns them (``Decimal``, ``datetime``, ``str``, ``int``, ...).
        columns: the columns, in order (default: every key, in order of first appearance); a missing
            key is null. Nested dicts and lists become JSON text.

    Returns:
        The table: decimals as ``decimal128`` (exact), instants as ``timestamp[us, UTC]``.
    """
    pa = _pyarrow()
    if columns is None:
        seen: dict[str, None] = {}
        for record in records:
            for key in record:
                seen.setdefault(key, None)
        columns = list(seen)
    arrays = [_column(name, [record.get(name) for record in records]) for name in columns]
    return cast("pyarrow.Table", pa.Table.from_arrays(arrays, names=list(columns)))


def usage_table(records: Sequence[Mapping[str, Any]]) -> pyarrow.Table:
    """Usage records (``Cms.stored_usage``, ``cms.parse_usage_page``) as a table of :data:`USAGE_COLUMNS`,
    built from the Python values (``Cms.usage_table`` makes the same table in Rust)."""
    pa = _pyarrow()
    if not records:
        schema = pa.schema(
            [(name, pa.timestamp("us", tz="UTC")) if name in ("start", "end") else (name, pa.string())
             for name in USAGE_COLUMNS]
        ).set(USAGE_COLUMNS.index("quantity"), pa.field("quantity", pa.decimal128(38, 0)))
        return cast("pyarrow.Table", schema.empty_table())
    return table(records, USAGE_COLUMNS)


def invoice_lines_table(report: Mapping[str, Any]) -> pyarrow.Table:
    """The lines of a month-end report's invoices (``Cms.month_end_report``), one row per line, with the
    invoice's ``issuer``, ``buyer``, ``buyer_kind`` and ``currency`` first."""
    rows = [
        {
            "issuer": invoice["issuer"],
            "buyer": invoice["buyer"],
            "buyer_kind": invoice["buyer_kind"],
            "currency": invoice["currency"],
            **line,
        }
        for invoice in report["invoices"]
        for line in invoice["lines"]
    ]
    return table(rows)


def _plain(value: Any) -> Any:
    """A DataFrame or Arrow cell as a plain Python value (numpy scalars, pandas timestamps, missing)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    to_datetime = getattr(value, "to_pydatetime", None)
    if to_datetime is not None:
        if str(value) == "NaT":
            return None
        return to_datetime()
    item = getattr(value, "item", None)
    if item is not None and type(value).__module__ == "numpy":
        return item()
    return value


def arrow_usage(frame: Any) -> Any:
    """Usage rows as Arrow data for ``Cms.ingest_frame``: an object with ``__arrow_c_stream__``.

    A pandas DataFrame becomes a pyarrow Table (its index dropped); its object columns holding ``Decimal``
    values become their text first, so each value keeps its own digits (pyarrow's inference would give the
    whole column the largest scale). Anything else that speaks the Arrow C stream interface (a pyarrow Table
    or RecordBatchReader, a Polars DataFrame) is returned as it is.

    Raises:
        InputError: ``bad_record`` for an object that is neither.
    """
    import sys

    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(frame, pandas.DataFrame):
        pa = _pyarrow()
        columns: dict[str, Any] = {}
        for name in frame.columns:
            column = frame[name]
            if column.dtype == object and any(isinstance(value, Decimal) for value in column):
                column = column.map(lambda value: str(value) if isinstance(value, Decimal) else value)
            columns[str(name)] = column
        return pa.Table.from_pandas(pandas.DataFrame(columns, index=frame.index), preserve_index=False)
    if hasattr(frame, "__arrow_c_stream__"):
        return frame
    error = InputError(
        f"frame: {type(frame).__name__} is not usage data: expected a pandas DataFrame or an object with "
        "__arrow_c_stream__ (a pyarrow Table or RecordBatchReader, a Polars DataFrame)"
    )
    error.code = "bad_record"
    error.location = "frame"
    error.source = "frame"
    raise error


def usage_records(frame: pandas.DataFrame | pyarrow.Table) -> list[dict[str, Any]]:
    """Usage rows of a pandas DataFrame or a pyarrow Table as records for ``Cms.ingest_records`` (dicts of
    Python values: the slow path, for inspecting rows; ``Cms.ingest_frame`` reads the columns in place).

    Args:
        frame: columns ``subscription``, ``meter``, ``start``, ``end``, ``quantity``, ``resource_uri``,
            ``location`` (others are passed on: ``tags``, ...). ``quantity`` holds ``Decimal`` objects,
            decimal strings or an Arrow decimal column; times are aware timestamps or RFC 3339 strings.

    Returns:
        One dict per row.

    Raises:
        InputError: ``bad_decimal`` when ``quantity`` is a float column (money and quantities are never
            floats: convert with ``Decimal(str(x))`` knowingly, or read the column as strings).
    """
    to_pylist = getattr(frame, "to_pylist", None)
    if to_pylist is not None:
        rows = cast("list[dict[str, Any]]", to_pylist())
    else:
        rows = cast("list[dict[str, Any]]", frame.to_dict("records"))
    records = [{str(key): _plain(value) for key, value in row.items()} for row in rows]
    for index, record in enumerate(records):
        if isinstance(record.get("quantity"), float):
            error = InputError(
                f"row {index}: quantity {record['quantity']!r} is a float; pass Decimal or decimal strings"
            )
            error.code = "bad_decimal"
            error.location = f"frame record {index}"
            error.source = "frame"
            raise error
    return records


def _read_output(path: str) -> list[dict[str, Any]]:
    """A month-end output CSV: ``*_id`` columns as text, every other column as ``Decimal``."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return [
            {key: value if key.endswith("_id") else Decimal(value) for key, value in row.items()} for row in reader
        ]


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as file:
        return next(csv.reader(file))


def _output_table(path: str) -> pyarrow.Table:
    pa = _pyarrow()
    rows = _read_output(path)
    header = _header(path)
    if rows:
        return table(rows, header)
    fields = [(name, pa.string() if name.endswith("_id") else pa.decimal128(38, 0)) for name in header]
    return cast("pyarrow.Table", pa.schema(fields).empty_table())


@dataclasses.dataclass(frozen=True)
class MonthEndTables:
    """A month-end's summary and its four outputs as pyarrow Tables (decimals as ``decimal128``)."""

    summary: MonthEndSummary
    invoice_lines: pyarrow.Table
    invoices: pyarrow.Table
    commissions: pyarrow.Table
    overrides: pyarrow.Table


@dataclasses.dataclass(frozen=True)
class MonthEndFrames:
    """A month-end's summary and its four outputs as pandas DataFrames (decimals as ``Decimal``)."""

    summary: MonthEndSummary
    invoice_lines: pandas.DataFrame
    invoices: pandas.DataFrame
    commissions: pandas.DataFrame
    overrides: pandas.DataFrame


def month_end_tables(
    data_dir: str | os.PathLike[str],
    *,
    out_dir: Optional[str | os.PathLike[str]] = None,
    pages_dir: Optional[str | os.PathLike[str]] = None,
    threads: int | None = None,
    strict: bool = False,
) -> MonthEndTables:
    """Run :func:`cms.month_end` and read its outputs as pyarrow Tables.

    Args:
        data_dir: the workload folder.
        out_dir: where the CSV outputs go (default: a temporary folder, removed afterwards).
        pages_dir: Usage API pages read instead of ``usage.csv``.
        threads: worker threads (default: every core).
        strict: refuse unpriced usage.

    Returns:
        The summary and the tables ``invoice_lines``, ``invoices``, ``commissions``, ``overrides``.
    """
    from . import month_end

    with tempfile.TemporaryDirectory(prefix="cms-month-end-") as scratch:
        out = scratch if out_dir is None else os.fspath(out_dir)
        summary = month_end(data_dir, out, pages_dir=pages_dir, threads=threads, strict=strict)
        tables = {name: _output_table(os.path.join(out, file)) for name, file in _OUTPUTS}
    return MonthEndTables(summary=summary, **tables)


def month_end_frames(
    data_dir: str | os.PathLike[str],
    *,
    out_dir: Optional[str | os.PathLike[str]] = None,
    pages_dir: Optional[str | os.PathLike[str]] = None,
    threads: int | None = None,
    strict: bool = False,
) -> MonthEndFrames:
    """:func:`month_end_tables` as pandas DataFrames (decimal columns hold ``decimal.Decimal``)."""
    tables = month_end_tables(data_dir, out_dir=out_dir, pages_dir=pages_dir, threads=threads, strict=strict)
    return MonthEndFrames(
        summary=tables.summary,
        invoice_lines=tables.invoice_lines.to_pandas(),
        invoices=tables.invoices.to_pandas(),
        commissions=tables.commissions.to_pandas(),
        overrides=tables.overrides.to_pandas(),
    )
