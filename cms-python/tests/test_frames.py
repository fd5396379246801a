"""Usage in and results out as pandas DataFrames and pyarrow Tables, exactly: decimals as Arrow decimals
and ``Decimal`` objects (never floats), instants as UTC timestamps."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import cms
import cms.frames
from scenario import OPERATOR, replay

UTC = dt.timezone.utc
AT = dt.datetime(2026, 9, 1, tzinfo=UTC)
VM = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"
IP = "F271A8A3-88C4-4D93-956A-063E1D2FA80B"


def _engine() -> cms.Cms:
    engine = cms.Cms(principal="ops")
    engine.execute_all(
        [
            {"type": "node_added", "id": "contoso", "kind": "partner", "parent": None, "name": "Contoso"},
            {"type": "node_added", "id": "adatum", "kind": "tenant", "parent": "contoso", "name": "Adatum"},
            {"type": "node_added", "id": "s1", "kind": "subscription", "parent": "adatum", "name": "S1"},
        ],
        at=AT,
    )
    return engine


def _usage_frame(hours: int) -> pd.DataFrame:
    start = pd.Timestamp("2026-10-05T00:00:00Z")
    frame: pd.DataFrame = pd.DataFrame(
        {
            "subscription": ["s1"] * hours,
            "meter": [VM if hour % 2 else IP for hour in range(hours)],
            "start": [start + pd.Timedelta(hours=hour) for hour in range(hours)],
            "end": [start + pd.Timedelta(hours=hour + 1) for hour in range(hours)],
            "quantity": [Decimal("0.000001") * (hour + 1) + Decimal(hour) for hour in range(hours)],
            "resource_uri": ["/subscriptions/s1/resourceGroups/rg/providers/x/vm"] * hours,
            "location": ["local"] * hours,
        }
    )
    return frame


def test_a_dataframe_goes_in_and_comes_back_exactly() -> None:
    frame = _usage_frame(48)
    with _engine() as engine:
        summary = engine.ingest_frame(frame, origin="notebook")
        assert (summary["stored"], summary["refused"]) == (48, [])
        back = engine.usage_frame("2026-10")
        table = engine.usage_table("2026-10")
    assert list(back.columns) == list(cms.frames.USAGE_COLUMNS)
    assert table.schema.field("quantity").type == pa.decimal128(38, 6)
    assert table.schema.field("start").type == pa.timestamp("us", tz="UTC")
    back = back.sort_values(["start", "meter"]).reset_index(drop=True)
    assert back["quantity"].tolist() == frame["quantity"].tolist()
    assert all(isinstance(value, Decimal) for value in back["quantity"])
    assert sum(back["quantity"], Decimal(0)) == sum(frame["quantity"], Decimal(0))
    assert back["start"].tolist() == frame["start"].tolist()
    assert back["meter"].tolist() == frame["meter"].tolist()


def test_an_arrow_table_goes_in() -> None:
    table = pa.Table.from_pandas(_usage_frame(6), preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("quantity"),
        "quantity",
        pa.array([Decimal("1.5")] * 6, type=pa.decimal128(10, 4)),
    )
    with _engine() as engine:
        assert engine.ingest_frame(table)["stored"] == 6
        assert sum(engine.usage_frame("2026-10")["quantity"], Decimal(0)) == Decimal("9.0")


def test_float_quantities_are_refused_and_nothing_is_stored() -> None:
    frame = _usage_frame(4)
    frame["quantity"] = [0.1, 0.2, 0.3, 0.4]
    with _engine() as engine:
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(frame)
        # The column's type is refused before any row is read.
        assert raised.value.code == "bad_decimal" and raised.value.location == "frame field quantity"
        assert engine.usage_table("2026-10").num_rows == 0
        assert engine.usage_table("2026-10").schema.field("quantity").type == pa.decimal128(38, 0)


def _stored(engine: cms.Cms) -> str:
    """The stored usage of October as the engine's own JSON text (quantities with their digits as stored)."""
    return engine._session.call("stored_usage", json.dumps({"principal": {"id": "ops"}, "period": "2026-10"}))


def _tagged_frame(hours: int) -> pd.DataFrame:
    frame = _usage_frame(hours)
    frame["tags"] = [json.dumps({"team": f"t{hour % 3}"}) if hour % 2 else None for hour in range(hours)]
    # A value with its own digits: a column-wide scale would pad it.
    quantities = [Decimal("7.5") if row == 1 else value for row, value in enumerate(frame["quantity"])]
    frame["quantity"] = pd.Series(quantities, dtype="object")
    return frame


def _json_records(frame: pd.DataFrame | pa.Table) -> list[dict[str, Any]]:
    """The rows as records for the JSON path (``ingest_records``), which takes tags as a mapping."""
    records = cms.frames.usage_records(frame)
    for record in records:
        tags = record.pop("tags")
        if tags is not None:
            record["tags"] = json.loads(tags)
    return records


def test_frames_and_tables_store_exactly_what_the_json_path_stores() -> None:
    frame = _tagged_frame(30)
    with _engine() as by_json, _engine() as by_frame, _engine() as by_table, _engine() as by_text:
        assert by_json.ingest_records(_json_records(frame), origin="n")["stored"] == 30
        assert by_frame.ingest_frame(frame, origin="n")["stored"] == 30
        # A pyarrow Table with an Arrow decimal column (its scale padded to the column's): the same as the
        # rows of that table through JSON.
        table = pa.Table.from_pandas(frame, preserve_index=False)
        assert pa.types.is_decimal(table.schema.field("quantity").type)
        assert by_table.ingest_frame(table, origin="n")["stored"] == 30
        with _engine() as table_by_json:
            table_by_json.ingest_records(_json_records(table), origin="n")
            assert _stored(by_table) == _stored(table_by_json)
        # Quantities and instants as text, in batches of 7 rows through a reader.
        text = table.set_column(
            table.schema.get_field_index("quantity"), "quantity", pa.array([str(q) for q in frame["quantity"]])
        )
        text = text.set_column(
            text.schema.get_field_index("start"), "start", pa.array([t.isoformat() for t in frame["start"]])
        )
        reader = pa.RecordBatchReader.from_batches(text.schema, text.to_batches(max_chunksize=7))
        assert by_text.ingest_frame(reader, origin="n")["stored"] == 30
        stored = _stored(by_json)
        assert '"quantity":"7.5"' in stored and '"team":"t1"' in stored
        assert _stored(by_frame) == stored
        assert _stored(by_text) == stored
        assert by_frame.stored_usage("2026-10") == by_table.stored_usage("2026-10")


def test_usage_tables_come_from_rust_as_the_json_path_would_build_them() -> None:
    frame = _tagged_frame(30)
    with _engine() as engine:
        assert engine.usage_table("2026-10").equals(cms.frames.usage_table([]))
        engine.ingest_frame(frame)
        engine.execute({"type": "node_added", "id": "other", "kind": "partner", "parent": None, "name": "O"}, at=AT)
        # Through Arrow (columns made in Rust), and through JSON and Python values: the same table.
        table = engine.usage_table("2026-10")
        assert table.equals(cms.frames.usage_table(engine.stored_usage("2026-10")))
        assert table.num_rows == 30 and table.schema.field("quantity").type == pa.decimal128(38, 6)
        assert "7.500000" in [str(value) for value in table.column("quantity").to_pylist()]
        # Scoped as stored_usage is: a principal of another branch reads no usage.
        assert engine.usage_table("2026-10", principal={"id": "o", "node": "other"}).num_rows == 0
        assert engine.usage_frame("2026-10", principal={"id": "o", "node": "contoso"}).shape == (30, 7)


def test_integer_quantities_and_timestamps_of_any_unit_and_zone() -> None:
    base = pa.Table.from_pandas(_usage_frame(3), preserve_index=False)
    seconds = pa.timestamp("s", tz="Europe/Paris")
    table = base.set_column(base.schema.get_field_index("quantity"), "quantity", pa.array([2, 3, 4], pa.int64()))
    for name in ("start", "end"):
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(seconds))
    with _engine() as engine:
        assert engine.ingest_frame(table)["stored"] == 3
        stored = sorted(engine.stored_usage("2026-10"), key=lambda record: record["start"])
    # The instants are the same whatever zone labels them; the integers are exact whole quantities.
    assert [record["start"] for record in stored] == _usage_frame(3)["start"].tolist()
    assert [str(record["quantity"]) for record in stored] == ["2", "3", "4"]


def test_a_bad_value_names_its_row_and_nothing_is_stored() -> None:
    frame = _usage_frame(6)
    frame.loc[4, "meter"] = "not-a-meter"
    with _engine() as engine:
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(frame, origin="notebook")
        assert (raised.value.code, raised.value.location) == ("bad_meter_id", "notebook record 4")
        # Rows count across a reader's batches.
        table = pa.Table.from_pandas(_usage_frame(10), preserve_index=False)
        quantities = [str(q) for q in _usage_frame(10)["quantity"]]
        quantities[8] = "1.2.3"
        table = table.set_column(table.schema.get_field_index("quantity"), "quantity", pa.array(quantities))
        reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(reader)
        assert (raised.value.code, raised.value.location) == ("bad_decimal", "frame record 8")
        nulls = _usage_frame(3)
        nulls.loc[2, "subscription"] = None
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(nulls)
        assert (raised.value.code, raised.value.location) == ("bad_record", "frame record 2")
        assert engine.usage_table("2026-10").num_rows == 0


def test_columns_of_the_wrong_type_are_refused_with_their_code() -> None:
    with _engine() as engine:
        naive = _usage_frame(2)
        naive["start"] = naive["start"].dt.tz_localize(None)
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(naive)
        assert (raised.value.code, raised.value.location) == ("bad_timestamp", "frame field start")
        numbered = _usage_frame(2)
        numbered["subscription"] = [1, 2]
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(numbered)
        assert (raised.value.code, raised.value.location) == ("bad_record", "frame field subscription")
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(_usage_frame(2).drop(columns=["location"]))
        assert (raised.value.code, raised.value.location) == ("bad_record", "frame field location")
        scaled = pa.Table.from_pandas(_usage_frame(2), preserve_index=False)
        scaled = scaled.set_column(
            scaled.schema.get_field_index("quantity"), "quantity", pa.array([Decimal(1), Decimal(2)], pa.decimal256(76, 40))
        )
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame(scaled)
        assert raised.value.code == "bad_decimal"
        with pytest.raises(cms.InputError) as raised:
            engine.ingest_frame([{"subscription": "s1"}])
        assert raised.value.code == "bad_record"
        assert engine.usage_table("2026-10").num_rows == 0


def test_invoice_lines_of_the_golden_scenario() -> None:
    with cms.Cms(principal=OPERATOR) as engine:
        replay(lambda: engine, reopen=False)
        report = engine.month_end_report("2026-10")
        lines = engine.invoice_lines_frame("2026-10")
        table = engine.invoice_lines_table("2026-10")
    assert list(lines.columns[:4]) == ["issuer", "buyer", "buyer_kind", "currency"]
    assert len(lines) == sum(len(invoice["lines"]) for invoice in report["invoices"])
    assert pa.types.is_decimal(table.schema.field("amount").type)
    by_buyer = lines.groupby("buyer")["amount"].sum()
    assert {buyer: by_buyer[buyer] for buyer in by_buyer.index} == {
        invoice["buyer"]: invoice["total"] for invoice in report["invoices"]
    }
    # Hand-checked in the scenario, at the corrected price: t1 1000 x 0.06 + 720 x 0.004 = 62.88.
    assert by_buyer["t1"] == Decimal("62.88")


def test_month_end_frames_are_the_csv_outputs_exactly(workload: Path, tmp_path: Path) -> None:
    frames = cms.month_end_frames(workload, out_dir=tmp_path, threads=2)
    tables = cms.month_end_tables(workload, threads=2)
    assert tables.invoice_lines.schema.field("quantity").type == pa.decimal128(38, 6)
    assert tables.invoice_lines.schema.field("amount").type == pa.decimal128(38, 2)
    assert tables.invoice_lines.schema.field("tenant_id").type == pa.string()
    text = (tmp_path / "invoice_lines.csv").read_text().splitlines()
    assert len(frames.invoice_lines) == len(text) - 1 == frames.summary["invoice_lines"]
    first = text[1].split(",")
    row = frames.invoice_lines.iloc[0]
    assert (row["tenant_id"], row["quantity"], row["amount"]) == (first[0], Decimal(first[3]), Decimal(first[4]))
    assert str(row["quantity"]) == first[3]  # the scale is kept: 6 decimals
    sums = frames.invoice_lines.groupby("tenant_id")["amount"].sum()
    totals = frames.invoices.set_index("tenant_id")["total"]
    assert sorted(sums.index) == sorted(totals.index)
    assert all(sums[tenant] == totals[tenant] for tenant in totals.index)
    assert sum(totals, Decimal(0)) == frames.summary["totals"]["USD"]
    assert tables.invoices.equals(pa.Table.from_pandas(frames.invoices, schema=tables.invoices.schema))


def test_any_result_as_a_table() -> None:
    table = cms.frames.table(
        [
            {"id": "a", "amount": Decimal("1.5"), "at": dt.datetime(2026, 1, 1, tzinfo=UTC), "n": 1},
            {"id": "b", "amount": Decimal("-0.125"), "due": dt.date(2026, 2, 1), "tags": {"k": "v"}},
        ]
    )
    assert table.column_names == ["id", "amount", "at", "n", "due", "tags"]
    assert table.schema.field("amount").type == pa.decimal128(38, 3)
    assert table.column("amount").to_pylist() == [Decimal("1.500"), Decimal("-0.125")]
    assert table.schema.field("due").type == pa.date32()
    assert table.column("tags").to_pylist() == [None, '{"k": "v"}']
    wide = cms.frames.table([{"x": Decimal("12345678901234567890.123456789012345678901")}])
    assert pa.types.is_decimal(wide.schema.field("x").type)
    assert wide.column("x").to_pylist() == [Decimal("12345678901234567890.123456789012345678901")]
