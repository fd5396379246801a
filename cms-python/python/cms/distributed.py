"""The month-end beyond one machine, on an existing distributed engine: Dask or Spark.

The usage is partitioned **by subscription** (a hash of the subscription id, case folded), each partition
keeping its rows in file order; every partition is rated where it lies into a *partial* (the accumulator's
versioned binary form, a few bytes per usage hour), the partials travel to the driver, and the driver
merges them and writes the four outputs once. The result is byte for byte the single-process month-end
(``cms.month_end``, ``cms month-end``): every natural key lives in one partition, so duplicates and
corrections resolve exactly as one process resolves them, and partials of disjoint subscriptions merge in
any order and grouping (:func:`merge` merges a group anywhere, e.g. as a tree on the workers).

Partitioning by subscription is what makes it exact. Partials hold quantities, not the order in which rows
were read, so a *correction landing in another partition than the row it corrects is not detected*: the
partial merged last wins, whatever the rows' order in the file, and the summary's duplicate and
correction counts differ from one process's. The helpers here always partition by the case-folded
subscription id, so every spelling of a subscription (and every row of a natural key) meets in one
partition, in file order; code that calls :func:`rate` itself must do the same.

Every partial carries the digest of the setup files it was rated under, and its own checksum: finishing
refuses a damaged partial, one rated under other setup files, and one holding a subscription outside
the setup's channel, each named (``partials record N``).

What reaches the workers: the workload's setup files (``plan.json``, ``hierarchy.csv``,
``subscriptions.csv``, ``prices.csv``, ``commission.csv``; :func:`setup_files`), shipped once (Dask:
scattered to every worker; Spark: a broadcast variable), and the ``cms`` package, which must be installed
in the workers' Python environment (the same wheel as the driver's). Usage is read by the engine itself
(``dask.dataframe.read_csv``, ``spark.read.csv``) with every column as text, so quantities and instants
reach the rating code exactly as written, never through a float.

Example (Dask)::

    from dask.distributed import Client
    import cms.distributed

    with Client("tcp://scheduler:8786") as client:
        summary = cms.distributed.month_end_dask("s3-mounted/month", "out", client=client)
        # or usage already in a Dask DataFrame (columns of usage.csv as text, partitions in file order):
        usage = dask.dataframe.read_csv("s3-mounted/month/usage-*.csv", dtype=str, keep_default_na=False)
        summary = cms.distributed.month_end_dask("s3-mounted/month", "out", client=client, usage=usage)

Example (Spark)::

    spark = SparkSession.builder.getOrCreate()
    summary = cms.distributed.month_end_spark(spark, "/dbfs/month", "out")
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from . import MonthEndSummary, _cms
from ._convert import decode

if TYPE_CHECKING:
    import numpy
    import pandas
    import pyarrow

__all__ = [
    "SETUP_FILES",
    "USAGE_COLUMNS",
    "finish",
    "merge",
    "month_end_dask",
    "month_end_spark",
    "partition_of",
    "rate",
    "setup_files",
]

#: The workload's setup files, what every worker needs besides its usage (from the Rust core).
SETUP_FILES: tuple[str, ...] = tuple(_cms.SETUP_FILES)
#: The usage columns rated, as in ``usage.csv`` (from the Rust core).
USAGE_COLUMNS: tuple[str, ...] = tuple(_cms.USAGE_COLUMNS)

_SETUPS: dict[str, _cms.MonthEndSetup] = {}
_SETUPS_LOCK = threading.Lock()


def _error(code: str, message: str) -> _cms.CmsError:
    """An error of the family of ``code``, as the native code raises them."""
    error = _cms.error_class(code)(message)
    error.code = code
    error.location = None
    error.source = None
    return error


def setup_files(data_dir: str | os.PathLike[str]) -> dict[str, bytes]:
    """The setup files of a workload folder, by name, to ship to workers.

    Raises:
        StorageError: ``io`` when a file is missing (naming it).
    """
    files = {}
    for name in SETUP_FILES:
        path = os.path.join(os.fspath(data_dir), name)
        try:
            with open(path, "rb") as file:
                files[name] = file.read()
        except OSError as error:
            raise _error("io", f"{path}: cannot read: {error.strerror or error}") from error
    return files


def _setup(files: Mapping[str, bytes]) -> _cms.MonthEndSetup:
    """The setup of these files, built once per process (workers rate many partitions)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    key = digest.hexdigest()
    with _SETUPS_LOCK:
        setup = _SETUPS.get(key)
        if setup is None:
            setup = _SETUPS[key] = _cms.MonthEndSetup(dict(files))
        return setup


def partition_of(subscriptions: pandas.Series, partitions: int) -> numpy.ndarray:
    """The partition (``0 <= p < partitions``) of each row's subscription: a stable hash of the id, case
    folded, so every spelling of a subscription lands in one partition, in every process."""
    import pandas as pd

    folded = subscriptions.astype("string").str.lower()
    hashes = pd.util.hash_pandas_object(folded, index=False).to_numpy()
    return hashes % partitions


def _aligned(table: Any) -> Any:
    """A pyarrow Table whose buffers all sit on 8-byte boundaries, as Arrow's C data interface expects.
    Tables unpickled from another process (Dask moves them so) may hold buffers at any address; those
    are copied once into fresh buffers, the others are passed as they are."""
    import numpy as np
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        return table
    for column in table.columns:
        for chunk in column.chunks:
            if any(buffer is not None and buffer.address % 8 for buffer in chunk.buffers()):
                return table.take(pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return table


def rate(files: Mapping[str, bytes], tables: Sequence[Any], sources: Sequence[str]) -> bytes:
    """Rate usage tables (objects with ``__arrow_c_stream__``, such as ``pyarrow.Table``; the columns of
    ``usage.csv`` as strings, optionally ``row`` numbers for errors), in order, into one partial.

    The tables must hold whole subscriptions (every row of each subscription they hold, in any spelling,
    in file order): a correction whose row is rated into another partial than the row it corrects is not
    detected as one (the partial merged last wins; see the module documentation).

    Raises:
        CmsError: the first bad row, naming its source and row.
    """
    return _setup(files).rate_arrow([_aligned(table) for table in tables], list(sources))


def merge(partials: Iterable[bytes]) -> bytes:
    """Merge partials (in the order given) into one partial, without the setup: to merge groups of partials
    where they lie (a tree of merges on the workers) before :func:`finish`. Partials of disjoint
    subscriptions give the same outputs in any order and grouping.

    Raises:
        CmsError: ``bad_record`` for no partials, a damaged one or one of other setup files, naming it
            (``partials record N``).
    """
    return _cms.MonthEndSetup.merge([bytes(partial) for partial in partials])


def finish(
    files: Mapping[str, bytes],
    partials: Iterable[bytes],
    out_dir: str | os.PathLike[str],
    *,
    strict: bool = False,
    focus_out: str | os.PathLike[str] | None = None,
) -> MonthEndSummary:
    """Merge partials, bill, and write the four outputs (and FOCUS exports) into ``out_dir``; returns the
    month-end summary, whose ``threads`` is the number of partials.

    The partials must come from usage partitioned by subscription (see :func:`rate`): corrections landing
    in different partitions are not detected, the partial merged last wins.

    Raises:
        CmsError: ``bad_record`` for a damaged partial or one rated under other setup files,
            ``unknown_subscription`` for one holding usage outside the setup's channel (each naming the
            partial, ``partials record N``); the errors of billing.
    """
    chosen = None if focus_out is None else os.fspath(focus_out)
    text = _setup(files).finish([bytes(partial) for partial in partials], os.fspath(out_dir), strict, chosen)
    return cast(MonthEndSummary, decode(text))


# ---- Dask.


def _split(block: pandas.DataFrame, partitions: int) -> list[pyarrow.Table]:
    """One block of the file (rows in file order) cut into ``partitions`` Arrow tables by subscription;
    ``row`` keeps each row's position in the block for error messages."""
    import numpy as np
    import pyarrow as pa

    missing = [column for column in USAGE_COLUMNS if column not in block.columns]
    if missing:
        raise _error("bad_header", f"usage: missing column(s) {', '.join(missing)}")
    keys = partition_of(block["subscription_id"], partitions)
    table = pa.Table.from_pandas(block[list(USAGE_COLUMNS)], preserve_index=False)
    table = table.append_column("row", pa.array(np.arange(len(block), dtype=np.int64)))
    # One stable sort by partition (rows keep file order within each), then a zero-copy slice per partition:
    # one pass over the block, whatever the number of partitions.
    grouped = table.take(pa.array(np.argsort(keys, kind="stable")))
    counts = np.bincount(keys, minlength=partitions)
    ends = np.cumsum(counts)
    starts = ends - counts
    return [grouped.slice(int(start), int(end - start)) for start, end in zip(starts, ends)]


def _rate_pieces(files: Mapping[str, bytes], pieces: Sequence[pyarrow.Table], sources: Sequence[str]) -> bytes:
    return rate(files, pieces, sources)


def _merge_group(*partials: bytes) -> bytes:
    return merge(partials)


def month_end_dask(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    client: Any = None,
    partitions: int | None = None,
    blocksize: str | int = "64MB",
    usage: str | os.PathLike[str] | Any | None = None,
    merge_every: int | None = None,
    strict: bool = False,
    focus_out: str | os.PathLike[str] | None = None,
) -> MonthEndSummary:
    """The month-end of a workload folder on Dask: the same outputs, byte for byte, as ``cms.month_end``.

    The usage (a file read by ``dask.dataframe.read_csv`` in blocks, every column as text, or a Dask
    DataFrame given as ``usage``) is cut block by block by subscription into ``partitions`` pieces; each
    partition's pieces are rated in file order on a worker into a partial, and the partials are merged and
    finished here, on the client (or first merged in groups on the workers, with ``merge_every``).

    Args:
        data_dir: the workload folder (setup files, and ``usage.csv`` unless ``usage`` is given).
        out_dir: the output folder, written by this process.
        client: a ``dask.distributed.Client`` (a ``LocalCluster``'s or a real scheduler's); ``None`` uses
            Dask's current scheduler.
        partitions: how many subscription partitions to rate in parallel (default: the client's workers'
            threads, else 2).
        blocksize: the bytes of usage per read block (``dask.dataframe.read_csv``; not used for a
            DataFrame).
        usage: instead of ``data_dir/usage.csv``: a usage file or glob every worker can read (several files
            are read in name order, as one file), or a ``dask.dataframe.DataFrame`` with the columns of
            ``usage.csv`` as text (``dtype=str``: a float column is refused, not rounded), its partitions
            and rows in file order.
        merge_every: merge the partials in groups of this many on the workers (a tree of merges, level by
            level) so the client receives few; ``None`` sends every partial to the client.
        strict: refuse unpriced usage (``unpriced_meter``) instead of reporting it.
        focus_out: a folder for FOCUS 1.2 exports.

    Returns:
        The month-end summary (``threads``: the number of partials the client merged).

    Raises:
        CmsError: a bad setup file or usage row, naming the file (or DataFrame), block and row.
    """
    import dask
    import dask.dataframe as dd

    files = setup_files(data_dir)
    if partitions is None:
        partitions = 2
        if client is not None:
            partitions = max(1, sum(client.nthreads().values()))
    if merge_every is not None and merge_every < 2:
        raise ValueError("merge_every must be at least 2")
    if isinstance(usage, dd.DataFrame):
        frame = usage
        name = "dataframe"
        label = "partition"
    else:
        usage_path = os.fspath(usage) if usage is not None else os.path.join(os.fspath(data_dir), "usage.csv")
        frame = dd.read_csv(usage_path, dtype=str, keep_default_na=False, na_filter=False, blocksize=blocksize)
        name = os.path.basename(usage_path)
        label = "block"
    blocks = frame.to_delayed()
    shipped: Any = client.scatter(files, broadcast=True) if client is not None else files
    split = [dask.delayed(_split, nout=partitions, pure=True)(block, partitions) for block in blocks]
    sources = [f"{name} {label} {index}" for index in range(len(blocks))]
    tasks = [
        dask.delayed(_rate_pieces, pure=True)(shipped, [pieces[partition] for pieces in split], sources)
        for partition in range(partitions)
    ]
    if merge_every is not None:
        while len(tasks) > merge_every:
            tasks = [
                dask.delayed(_merge_group, pure=True)(*tasks[start : start + merge_every])
                for start in range(0, len(tasks), merge_every)
            ]
    if client is not None:
        partials = client.gather(client.compute(tasks))
    else:
        partials = list(dask.compute(*tasks))
    return finish(files, partials, out_dir, strict=strict, focus_out=focus_out)


# ---- Spark.


def month_end_spark(
    spark: Any,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    partitions: int | None = None,
    usage: str | os.PathLike[str] | None = None,
    strict: bool = False,
    focus_out: str | os.PathLike[str] | None = None,
) -> MonthEndSummary:
    """The month-end of a workload folder on Spark: the same outputs, byte for byte, as ``cms.month_end``.

    The usage is read by ``spark.read.csv`` (header, every column as text), numbered in file order
    (``monotonically_increasing_id``), repartitioned by the case-folded subscription id and sorted back
    into file order within each partition; ``mapInArrow`` rates each partition's Arrow batches into a
    partial on its executor, and the driver merges the partials and writes the outputs.

    Args:
        spark: a ``SparkSession``; its executors' Python (``spark.pyspark.python``) must have ``cms``.
        data_dir: the workload folder (setup files, and ``usage.csv`` unless ``usage`` is given).
        out_dir: the output folder, written by the driver.
        partitions: subscription partitions (default: ``spark.sparkContext.defaultParallelism``).
        usage: the usage file (or folder) every executor can read, instead of ``data_dir/usage.csv``.
        strict: refuse unpriced usage (``unpriced_meter``) instead of reporting it.
        focus_out: a folder for FOCUS 1.2 exports.

    Returns:
        The month-end summary (``threads``: the number of partials merged).
    """
    from pyspark.sql import functions as F  # noqa: N812 (Spark's own spelling)

    files = setup_files(data_dir)
    usage_path = os.fspath(usage) if usage is not None else os.path.join(os.fspath(data_dir), "usage.csv")
    count = partitions or spark.sparkContext.defaultParallelism
    frame = spark.read.option("header", True).option("inferSchema", False).csv(usage_path)
    missing = [column for column in USAGE_COLUMNS if column not in frame.columns]
    if missing:
        raise _error("bad_header", f"{usage_path}: missing column(s) {', '.join(missing)}")
    ordered = (
        frame.select(*USAGE_COLUMNS)
        .withColumn("_order", F.monotonically_increasing_id())
        .repartition(count, F.lower(F.col("subscription_id")))
        .sortWithinPartitions("_order")
        .drop("_order")
    )
    shipped = spark.sparkContext.broadcast(files)
    name = os.path.basename(usage_path)

    def rate_partition(batches: Iterator[pyarrow.RecordBatch]) -> Iterator[pyarrow.RecordBatch]:
        import pyarrow as pa
        from pyspark import TaskContext

        collected = list(batches)
        if not collected:
            return
        context = TaskContext.get()
        source = f"{name} partition {context.partitionId() if context else 0}"
        partial = rate(shipped.value, [pa.Table.from_batches(collected)], [source])
        yield pa.RecordBatch.from_pydict({"partial": [partial]}, schema=pa.schema([("partial", pa.binary())]))

    rows = ordered.mapInArrow(rate_partition, "partial binary").collect()
    shipped.unpersist()
    return finish(files, [bytes(row["partial"]) for row in rows], out_dir, strict=strict, focus_out=focus_out)
