"""``cms.distributed``: the month-end in partials on Dask (a ``LocalCluster`` of 2 worker processes) and on
Spark (local mode), on the 250-subscription month of ../shared/bench/gen_month.py, writes byte for byte what
``cms month-end`` writes; so do a Dask DataFrame, a glob of several files and subscriptions spelt in several
cases; partials merge in any order and grouping (on the workers too), and partials of other setup files,
damaged or unknown ones are refused; bad input is named; and a test without Java or pyspark says so (skipped
with the reason), unless ``CMS_REQUIRE_SPARK=1`` makes it fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import cms
import cms.distributed
from support import BENCH, cms_cli, python, run

OUTPUTS = ("invoice_lines.csv", "invoices.csv", "commissions.csv", "overrides.csv")
COUNTS = ("usage_rows", "counted", "duplicates", "corrections", "before_period", "after_period", "totals")


def _counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in COUNTS}


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def month250(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 250-subscription month (about 1.3 M usage rows), generated once; ``CMS_DISTRIBUTED_DATA`` names a
    folder to keep it in between runs."""
    kept = os.environ.get("CMS_DISTRIBUTED_DATA")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("distributed") / "m250"
    if not (folder / "usage.csv").exists():
        shutil.rmtree(folder, ignore_errors=True)
        run([python(), str(BENCH / "gen_month.py"), str(folder), "--subscriptions", "250"])
    return folder


@pytest.fixture(scope="module")
def cli250(month250: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], dict[str, Any]]:
    """What ``cms month-end`` writes for the 250-subscription month, and the Python summary of one process."""
    out = tmp_path_factory.mktemp("cli250")
    run([*cms_cli(), "month-end", "--data", str(month250), "--out", str(out)])
    summary = cms.month_end(month250, tmp_path_factory.mktemp("single250"))
    return _files(out), dict(summary)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        local_directory=os.path.join(os.environ.get("TMPDIR", "/tmp"), "cms-dask-scratch"),
    ) as cluster, Client(cluster.scheduler_address) as client:
        # Connected by address, as a client reaches a real scheduler (``tcp://host:8786``).
        yield client


def test_dask_local_cluster_equals_the_cli(
    month250: Path, cli250: tuple[dict[str, bytes], dict[str, Any]], dask_client: Any, tmp_path: Path
) -> None:
    files, single = cli250
    assert len(dask_client.scheduler_info()["workers"]) == 2
    summary = cms.distributed.month_end_dask(month250, tmp_path / "dask", client=dask_client, blocksize="16MB")
    written = _files(tmp_path / "dask")
    for name in OUTPUTS:
        assert written[name] == files[name], f"{name} from Dask differs from cms month-end"
    assert _counts(summary) == _counts(single)
    assert summary["threads"] == 2, "one partial per worker thread"


def test_partials_merge_in_any_order(small_workload: Path, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    # A correction (the first row's key again with another quantity) makes the order of rows matter.
    usage = small_workload / "usage.csv"
    lines = usage.read_text().splitlines()
    corrected = lines[1].split(",")
    corrected[4] = "12.500000"
    usage.write_text("\n".join([*lines, ",".join(corrected)]) + "\n")
    expected = cms.month_end(small_workload, tmp_path / "single", threads=1)
    assert expected["corrections"] == 1

    frame = pd.read_csv(usage, dtype=str, keep_default_na=False)
    keys = cms.distributed.partition_of(frame["subscription_id"], 3)
    files = cms.distributed.setup_files(small_workload)
    partials = []
    for partition in range(3):
        table = pa.Table.from_pandas(frame[keys == partition], preserve_index=False)
        partials.append(cms.distributed.rate(files, [table], [f"partition {partition}"]))
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        out = tmp_path / f"merged-{''.join(map(str, order))}"
        summary = cms.distributed.finish(files, [partials[index] for index in order], out)
        assert _files(out) == _files(tmp_path / "single"), order
        assert _counts(summary) == _counts(expected)


def _cli(data: Path, out: Path) -> dict[str, bytes]:
    run([*cms_cli(), "month-end", "--data", str(data), "--out", str(out)])
    return _files(out)


def test_dask_dataframe_and_multi_file_glob_equal_the_cli(
    small_workload: Path, dask_client: Any, tmp_path: Path
) -> None:
    import dask.dataframe as dd
    import pandas as pd

    expected = _cli(small_workload, tmp_path / "cli")
    single = cms.month_end(small_workload, tmp_path / "single", threads=1)
    lines = (small_workload / "usage.csv").read_text().splitlines()
    # The usage in three files (each with the header), read through one glob, in name order.
    parts = tmp_path / "parts"
    parts.mkdir()
    body = lines[1:]
    for number, start in enumerate(range(0, len(body), 9)):
        (parts / f"usage-{number}.csv").write_text("\n".join([lines[0], *body[start : start + 9]]) + "\n")
    assert len(list(parts.glob("usage-*.csv"))) == 3
    summary = cms.distributed.month_end_dask(
        small_workload, tmp_path / "glob", client=dask_client, usage=parts / "usage-*.csv", partitions=3
    )
    assert _files(tmp_path / "glob") == expected
    assert _counts(summary) == _counts(single)

    # An existing Dask DataFrame (text columns, partitions in file order), merged as a tree on the workers.
    frame = pd.read_csv(small_workload / "usage.csv", dtype=str, keep_default_na=False)
    usage = dd.from_pandas(frame, npartitions=4, sort=False)
    assert usage.npartitions == 4
    summary = cms.distributed.month_end_dask(
        small_workload, tmp_path / "frame", client=dask_client, usage=usage, partitions=5, merge_every=2
    )
    assert _files(tmp_path / "frame") == expected
    assert _counts(summary) == _counts(single)
    assert summary["threads"] == 2, "5 partials merged in pairs on the workers, then 3, then 2 reach the client"

    # Numbers that are not text are refused, not rounded through a float.
    floats = dd.from_pandas(frame.astype({"quantity": "float64"}), npartitions=2, sort=False)
    with pytest.raises(cms.InputError) as raised:
        cms.distributed.month_end_dask(small_workload, tmp_path / "floats", client=dask_client, usage=floats)
    assert "column quantity is" in str(raised.value) and "not strings" in str(raised.value), str(raised.value)
    assert "dataframe partition" in str(raised.value), str(raised.value)


def test_merge_grouping_and_place_do_not_matter(small_workload: Path, dask_client: Any, tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    expected = cms.month_end(small_workload, tmp_path / "single", threads=1)
    frame = pd.read_csv(small_workload / "usage.csv", dtype=str, keep_default_na=False)
    keys = cms.distributed.partition_of(frame["subscription_id"], 4)
    files = cms.distributed.setup_files(small_workload)
    p = [
        cms.distributed.rate(files, [pa.Table.from_pandas(frame[keys == part], preserve_index=False)], [str(part)])
        for part in range(4)
    ]
    merge = cms.distributed.merge
    left = merge([merge([p[0], p[1]]), merge([p[2], p[3]])])
    right = merge([p[0], merge([p[1], merge([p[2], p[3]])])])
    flat = merge(p)
    assert left == right == flat, "one order, any grouping: the very same partial"
    on_workers = dask_client.submit(merge, [dask_client.submit(merge, p[:2]), dask_client.submit(merge, p[2:])])
    assert on_workers.result() == flat, "merged on the workers, the same bytes"
    backwards = merge([merge([p[3], p[2]]), p[1], p[0]])
    for name, partials in {"left": [left], "backwards": [backwards], "mixed": [p[2], merge([p[0], p[3]]), p[1]]}.items():
        summary = cms.distributed.finish(files, partials, tmp_path / name)
        assert _files(tmp_path / name) == _files(tmp_path / "single"), name
        assert _counts(summary) == _counts(expected), name

    # Partials of other setup files (another price list), damaged ones and none at all are refused, named.
    repriced = dict(files)
    repriced["prices.csv"] = files["prices.csv"].replace(b"0.008", b"0.009")
    foreign = cms.distributed.rate(repriced, [pa.Table.from_pandas(frame, preserve_index=False)], ["all"])
    with pytest.raises(cms.InputError) as raised:
        cms.distributed.finish(files, [p[0], foreign], tmp_path / "foreign")
    assert raised.value.code == "bad_record" and "another setup" in str(raised.value), str(raised.value)
    assert "partials record 1" in str(raised.value), str(raised.value)
    with pytest.raises(cms.InputError) as raised:
        merge([p[0], foreign])
    assert "another setup" in str(raised.value), str(raised.value)
    damaged = bytearray(flat)
    damaged[len(damaged) // 2] ^= 0x10
    with pytest.raises(cms.InputError) as raised:
        merge([p[0], bytes(damaged)])
    assert raised.value.code == "bad_record" and "partials record 1" in str(raised.value), str(raised.value)
    with pytest.raises(cms.InputError) as raised:
        merge([])
    assert raised.value.code == "bad_record"


def test_subscription_spellings_and_corrections_through_dask_equal_the_cli(
    small_workload: Path, dask_client: Any, tmp_path: Path
) -> None:
    # Every other row's subscription upper-cased, and a correction of the first row in the other spelling.
    usage = small_workload / "usage.csv"
    lines = usage.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    for row in rows[1::2]:
        row[0] = row[0].upper()
    corrected = list(rows[0])
    corrected[0] = corrected[0].upper() if corrected[0] == corrected[0].lower() else corrected[0].lower()
    corrected[4] = "12.500000"
    rows.append(corrected)
    usage.write_text("\n".join([lines[0], *(",".join(row) for row in rows)]) + "\n")
    assert len({row[0] for row in rows}) > len({row[0].lower() for row in rows}), "several spellings"
    expected = _cli(small_workload, tmp_path / "cli")
    single = cms.month_end(small_workload, tmp_path / "single", threads=1)
    assert single["corrections"] == 1
    for partitions in (2, 3, 5):
        out = tmp_path / f"dask-{partitions}"
        summary = cms.distributed.month_end_dask(small_workload, out, client=dask_client, partitions=partitions)
        assert _files(out) == expected, partitions
        assert _counts(summary) == _counts(single), partitions


def test_dask_without_a_client_and_bad_rows_are_named(small_workload: Path, tmp_path: Path) -> None:
    expected = cms.month_end(small_workload, tmp_path / "single")
    summary = cms.distributed.month_end_dask(small_workload, tmp_path / "dask", partitions=3)
    assert _files(tmp_path / "dask") == _files(tmp_path / "single")
    assert summary["totals"] == expected["totals"]

    usage = small_workload / "usage.csv"
    lines = usage.read_text().splitlines()
    broken = lines[3].split(",")
    broken[4] = "1.5 kg"
    usage.write_text("\n".join([*lines[:3], ",".join(broken), *lines[4:]]) + "\n")
    with pytest.raises(cms.InputError) as raised:
        cms.distributed.month_end_dask(small_workload, tmp_path / "broken", partitions=2)
    assert raised.value.code == "bad_decimal"
    # The third data row of the file's only block: row 2 of block 0.
    assert "usage.csv block 0 record 2" in str(raised.value), str(raised.value)


def test_rate_refuses_what_is_not_usage_text(small_workload: Path) -> None:
    import pyarrow as pa

    files = cms.distributed.setup_files(small_workload)
    with pytest.raises(cms.InputError) as raised:
        cms.distributed.rate(files, [pa.table({"subscription_id": ["a"]})], ["t"])
    assert raised.value.code == "bad_record" and "no column meter_id" in str(raised.value)
    numbers = {column: ["1"] for column in cms.distributed.USAGE_COLUMNS}
    numbers["quantity"] = [1.5]  # type: ignore[list-item]
    with pytest.raises(cms.InputError) as raised:
        cms.distributed.rate(files, [pa.table(numbers)], ["t"])
    assert "not strings" in str(raised.value)
    with pytest.raises(cms.InputError):
        cms.distributed.rate(files, [object()], ["t"])
    missing = dict(files)
    del missing["prices.csv"]
    with pytest.raises(cms.StorageError) as storage:
        cms.distributed.rate(missing, [], [])
    assert storage.value.code == "io" and "prices.csv" in str(storage.value)
    with pytest.raises(cms.StorageError):
        cms.distributed.setup_files(small_workload / "nowhere")


def _spark_unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'cms[spark]')"
    java = shutil.which("java")
    if java is None and not os.environ.get("JAVA_HOME"):
        return "no Java on this machine (Spark needs a JVM)"
    try:
        subprocess.run([java or "java", "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"java -version failed: {error}"
    return None


def test_spark_local_mode_equals_the_cli(
    month250: Path, cli250: tuple[dict[str, bytes], dict[str, Any]], tmp_path: Path
) -> None:
    reason = _spark_unavailable()
    if reason is not None:
        if os.environ.get("CMS_REQUIRE_SPARK") == "1":
            pytest.fail(f"CMS_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the executors import cms from this environment
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("cms-month-end-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.local.dir", str(tmp_path / "spark-local"))
        .getOrCreate()
    )
    try:
        files, single = cli250
        summary = cms.distributed.month_end_spark(spark, month250, tmp_path / "spark", partitions=2)
        written = _files(tmp_path / "spark")
        for name in OUTPUTS:
            assert written[name] == files[name], f"{name} from Spark differs from cms month-end"
        assert _counts(summary) == _counts(single)
        assert summary["threads"] == 2
    finally:
        spark.stop()


def test_misaligned_arrow_buffers_are_refused_or_realigned(small_workload: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    files = cms.distributed.setup_files(small_workload)
    row = {
        "subscription_id": "0bb4db71-be57-4209-851d-3d24f4c0cf83",
        "meter_id": "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
        "usage_start_time": "2026-10-01T00:00:00+00:00",
        "usage_end_time": "2026-10-01T01:00:00+00:00",
        "quantity": "2.5",
        "resource_uri": "/r",
        "location": "local",
    }

    def misaligned(text: str) -> pa.Array:
        # An offsets buffer one byte past an aligned address, as a buffer unpickled in place can be.
        offsets = pa.array([0, len(text)], type=pa.int32()).buffers()[1].to_pybytes()
        shifted = pa.py_buffer(b"\0" + offsets)[1:]
        assert shifted.address % 4 != 0
        return pa.Array.from_buffers(pa.string(), 1, [None, shifted, pa.py_buffer(text.encode())])

    table = pa.table({column: misaligned(value) if column == "subscription_id" else [value] for column, value in row.items()})
    with pytest.raises(cms.InputError) as raised:
        cms._cms.MonthEndSetup(files).rate_arrow([table], ["shifted"])
    assert raised.value.code == "bad_record" and "not aligned" in str(raised.value), str(raised.value)
    # cms.distributed.rate copies such a table first, and rates it.
    partial = cms.distributed.rate(files, [table], ["shifted"])
    summary = cms.distributed.finish(files, [partial], tmp_path / "out")
    assert summary["counted"] == 1
