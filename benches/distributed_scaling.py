"""Scaling of the distributed month-end (cms.distributed) on this machine: Dask with 1 and 2 worker processes
(and Spark local[1] / local[2] with --spark) against the single-process `cms month-end` on the same month.
Every run's outputs are compared byte for byte with the CLI's first; then one table is printed (median wall
time of --runs runs, and the ratio to the CLI). Cluster start-up is not timed (a real cluster is already up);
Spark's JVM start is not either.

usage: .venv/bin/python benches/distributed_scaling.py [--subscriptions 250] [--runs 3] [--spark]

Build the Python module in release first (`VIRTUAL_ENV=.venv .venv/bin/maturin develop --release -m
cms-python/Cargo.toml`, or a release wheel installed into a folder put first on PYTHONPATH): a debug build
measures the debug build. The CLI is built in release by this script. The report names the commit (and
whether the tree had local changes), the date, the module the driver and the Dask workers loaded, and the
load average before and after, since another job on the machine slows every run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
OUTPUTS = ("invoice_lines.csv", "invoices.csv", "commissions.csv", "overrides.csv")


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def native_module() -> str:
    """Where this process's ``cms._cms`` comes from (run on the Dask workers too)."""
    import importlib

    return str(importlib.import_module("cms._cms").__file__)


def timed(runs: int, job: Callable[[Path], Any], expected: dict[str, bytes] | None, scratch: Path) -> list[float]:
    times = []
    for run in range(runs):
        out = scratch / f"out-{time.monotonic_ns()}"
        started = time.perf_counter()
        job(out)
        times.append(time.perf_counter() - started)
        if expected is not None and outputs(out) != expected:
            sys.exit(f"outputs differ from cms month-end in {out}")
        shutil.rmtree(out)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=250)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="also Spark local[1] and local[2]")
    arguments = parser.parse_args()

    import cms.distributed

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    module = native_module()
    worker_modules: set[str] = set()

    work = Path(os.environ.get("CMS_BENCH_DIR", "/tmp/cms-bench"))
    data = work / f"m{arguments.subscriptions}"
    if not (data / "usage.csv").exists():
        subprocess.run([sys.executable, str(SHARED / "gen_month.py"), str(data), "--subscriptions",
                        str(arguments.subscriptions)], check=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "-p", "cms-cli"], cwd=ROOT, check=True)
    cli = ROOT / "target" / "release" / "cms"
    rows = sum(1 for _ in open(data / "usage.csv", "rb")) - 1
    scratch = Path(tempfile.mkdtemp(prefix="cms-scaling-"))
    results: list[tuple[str, list[float]]] = []
    try:
        reference = scratch / "reference"
        subprocess.run([str(cli), "month-end", "--data", str(data), "--out", str(reference)], check=True,
                       stdout=subprocess.DEVNULL)
        expected = outputs(reference)
        started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        load_before = os.getloadavg()

        def run_cli(threads: int) -> Callable[[Path], Any]:
            return lambda out: subprocess.run(
                [str(cli), "month-end", "--threads", str(threads), "--data", str(data), "--out", str(out)],
                check=True, stdout=subprocess.DEVNULL)

        results.append(("cms month-end (CLI, 1 thread)", timed(arguments.runs, run_cli(1), expected, scratch)))
        results.append(("cms month-end (CLI, 2 threads)", timed(arguments.runs, run_cli(2), expected, scratch)))

        from dask.distributed import Client, LocalCluster

        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, local_directory=str(scratch / "dask")) as cluster, \
                    Client(cluster.scheduler_address) as client:
                worker_modules.update(client.run(native_module).values())
                job = lambda out, client=client: cms.distributed.month_end_dask(data, out, client=client)
                results.append((f"Dask LocalCluster, {workers} worker(s)", timed(arguments.runs, job, expected, scratch)))

        if arguments.spark:
            from pyspark.sql import SparkSession

            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ["PYSPARK_PYTHON"] = sys.executable
            for cores in (1, 2):
                spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
                         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                         .config("spark.sql.shuffle.partitions", str(cores)).getOrCreate())
                try:
                    job = lambda out, spark=spark, cores=cores: cms.distributed.month_end_spark(
                        spark, data, out, partitions=cores)
                    timed(1, job, expected, scratch)  # warm the JVM's code paths
                    results.append((f"Spark local[{cores}]", timed(arguments.runs, job, expected, scratch)))
                finally:
                    spark.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base = statistics.median(results[0][1])
    load_after = os.getloadavg()
    finished = time.strftime("%H:%M UTC", time.gmtime())
    print(f"\n{arguments.subscriptions}-subscription month, {rows:,} usage rows; {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; median of {arguments.runs}; outputs identical")
    print(f"commit {commit}{' with local changes' if dirty else ''}, timed {started}-{finished}; module {module}"
          f"{'' if worker_modules <= {module} else f' (Dask workers: {sorted(worker_modules)})'}")
    print(f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}\n")
    print("| run | wall (s) | vs CLI, 1 thread |")
    print("|---|---:|---:|")
    for name, times in results:
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
