#!/usr/bin/env python3
"""Write the FOCUS Parquet test fixtures from the FOCUS CSV fixtures.

    .venv/bin/python scripts/focus_parquet_fixtures.py      # rewrites tests/data/focus/*.parquet

Each CSV file of tests/data/focus/ (Azure, AWS and GCP shaped FOCUS 1.2 exports) is written as Parquet in the
variants below, with pyarrow (scripts/requirements-peers.txt). cms-core's tests/focus_parquet.rs checks that
every Parquet file reads into exactly the records of its CSV file, so the variants cover what real exports
vary in:

- codec: snappy (Azure Cost Management, AWS Data Exports, pyarrow/Spark/DuckDB default), gzip and zstd
  (BigQuery options; Polars' default);
- cost, price and quantity columns as DECIMAL(38, s) (s: the most places a column's values need) or as DOUBLE
  (AWS, BigQuery FLOAT64). A column is written as DOUBLE only where each value's shortest round-trip text
  spells the CSV value exactly (so both files hold the same numbers); the others stay DECIMAL;
- the four FOCUS date-time columns as TIMESTAMP in milliseconds, microseconds or nanoseconds, adjusted to UTC
  (tz="UTC") or not (a wall time that FOCUS says is UTC);
- nulls: an empty CSV cell is a null of the column's type;
- key-value columns: AWS writes Tags and x_CostCategories / x_Discounts as MAP<STRING, STRING>; BigQuery writes
  repeated records (x_Credits) as LIST<STRUCT<...>>; other JSON stays a string;
- encodings: dictionary pages and statistics as writers make them by default; plain pages, no statistics and
  row groups of two rows (a read crosses row groups) in the second variant of each shape.

The output is deterministic for a given pyarrow version (no timestamps in the files).
"""

import csv
import datetime as dt
import decimal
import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "focus"

DECIMAL_COLUMNS = {
    "BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "ListUnitPrice", "ContractedUnitPrice",
    "PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice",
}
TIMESTAMP_COLUMNS = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}

# (output name, CSV fixture, numbers as "decimal" or "double", timestamp unit, adjusted to UTC, codec,
#  writer defaults (dictionaries, statistics, one row group) or not, JSON columns written as maps or lists)
VARIANTS = [
    ("azure-focus.parquet", "azure-focus.csv", "decimal", "us", True, "snappy", True, []),
    ("azure-focus.double-ns-local.zstd.parquet", "azure-focus.csv", "double", "ns", False, "zstd", False, []),
    ("aws-focus.parquet", "aws-focus.csv", "double", "ms", False, "gzip", True,
     ["Tags", "x_CostCategories", "x_Discounts"]),
    ("aws-focus.decimal-us-local.snappy.parquet", "aws-focus.csv", "decimal", "us", False, "snappy", False,
     ["Tags", "x_CostCategories", "x_Discounts"]),
    ("gcp-focus.parquet", "gcp-focus.csv", "double", "us", True, "zstd", True, ["x_Credits"]),
    ("gcp-focus.decimal-ms-local.gzip.parquet", "gcp-focus.csv", "decimal", "ms", False, "gzip", False,
     ["x_Credits"]),
]


def read_csv(name):
    with open(DATA / name, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def places(text):
    exponent = decimal.Decimal(text).as_tuple().exponent
    return max(0, -exponent)


def decimal_column(values):
    scale = max((places(value) for value in values if value), default=0)
    kind = pa.decimal128(38, scale)
    return pa.array([decimal.Decimal(value) if value else None for value in values], kind)


def double_column(values):
    """A DOUBLE column, or None when a value's shortest round-trip text is not the CSV value."""
    for value in values:
        if value and decimal.Decimal(repr(float(value))) != decimal.Decimal(value):
            return None
    return pa.array([float(value) if value else None for value in values], pa.float64())


def parse_instant(text):
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4].replace(" ", "T") + "+00:00"
    instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant.astimezone(dt.timezone.utc)


def timestamp_column(values, unit, utc):
    instants = [parse_instant(value) if value else None for value in values]
    if not utc:
        instants = [instant.replace(tzinfo=None) if instant else None for instant in instants]
    return pa.array(instants, pa.timestamp(unit, tz="UTC" if utc else None))


def json_column(name, values):
    parsed = [json.loads(value) if value else None for value in values]
    objects = [value for value in parsed if value is not None]
    if all(isinstance(value, dict) and all(isinstance(v, str) for v in value.values()) for value in objects):
        kind = pa.map_(pa.string(), pa.string())
        return pa.array([list(value.items()) if value is not None else None for value in parsed], kind)
    if all(isinstance(value, list) for value in objects):
        items = [item for value in objects for item in value]
        fields = []
        for item in items:
            for key, value in item.items():
                if key not in [field.name for field in fields]:
                    kind = pa.float64() if isinstance(value, float) else pa.string()
                    fields.append(pa.field(key, kind))
        kind = pa.list_(pa.struct(fields)) if fields else pa.list_(pa.string())
        return pa.array(parsed, kind)
    raise SystemExit(f"{name}: values are neither string maps nor lists of records")


def table(header, rows, costs, unit, utc, json_columns):
    columns = []
    for index, name in enumerate(header):
        values = [row[index] for row in rows]
        if name in DECIMAL_COLUMNS:
            array = double_column(values) if costs == "double" else None
            if array is None:
                array = decimal_column(values)
        elif name in TIMESTAMP_COLUMNS:
            array = timestamp_column(values, unit, utc)
        elif name in json_columns:
            array = json_column(name, values)
        else:
            array = pa.array([value if value else None for value in values], pa.string())
        columns.append(array)
    return pa.Table.from_arrays(columns, names=header)


def main():
    for output, source, costs, unit, utc, codec, defaults, json_columns in VARIANTS:
        header, rows = read_csv(source)
        data = table(header, rows, costs, unit, utc, json_columns)
        path = DATA / output
        pq.write_table(
            data,
            path,
            compression=codec,
            row_group_size=None if defaults else 2,
            use_dictionary=defaults,
            write_statistics=defaults,
            coerce_timestamps=None,
            allow_truncated_timestamps=False,
            store_schema=False,  # no Arrow schema blob: the file is what any Parquet writer would make
        )
        doubles = [field.name for field in data.schema if field.type == pa.float64()]
        print(f"{path.relative_to(ROOT)}: {data.num_rows} rows, {codec}, {unit} {'UTC' if utc else 'local'}, "
              f"{len(doubles)} DOUBLE columns, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
