"""A month of Azure Stack Hub usage, rated and plotted: what a data team runs in a notebook.

Each ``# %%`` block is a notebook cell (Jupyter, VS Code and PyCharm run them as such). From a shell:

    python cms-python/examples/notebook.py [DATA_DIR] [--out cost-by-tenant.png]

``DATA_DIR`` is a month-end folder (hierarchy.csv, subscriptions.csv, prices.csv, commission.csv,
plan.json, usage.csv; ``../shared/bench/gen_month.py`` makes one of any size); the default is the small
folder of the conformance vectors. Needs ``pip install ./cms-python pandas pyarrow matplotlib``.
"""

# %% Setup
from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # headless by default: the chart goes to a PNG file
import matplotlib.pyplot as plt
import pandas as pd

import cms

REPO = Path(__file__).resolve().parents[2]
arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
arguments.add_argument("data_dir", nargs="?", default=REPO / "tests" / "vectors" / "calls" / "workload", type=Path)
arguments.add_argument("--out", default=Path("cost-by-tenant.png"), type=Path, help="the chart (PNG)")
options = arguments.parse_args(sys.argv[1:] if __name__ == "__main__" else [])

# %% Load a month: usage as a DataFrame. Read every column as text, then quantities as exact decimals
# (never floats: 0.1 + 0.2 is not 0.3 in binary floating point).
usage = pd.read_csv(options.data_dir / "usage.csv", dtype=str)
usage["quantity"] = usage["quantity"].map(Decimal)
subscriptions = pd.read_csv(options.data_dir / "subscriptions.csv", dtype=str)
print(f"{len(usage)} usage rows of {usage['subscription_id'].nunique()} subscriptions")
print(usage.merge(subscriptions, on="subscription_id").groupby("tenant_id")["quantity"].count().rename("rows"))

# %% Rate it: the month-end (dedupe, rate with tiers, invoice, commission) runs in Rust on every core,
# with the GIL released; its outputs come back as DataFrames whose money columns hold Decimal.
month = cms.month_end_frames(options.data_dir)
summary = month.summary
print(
    f"{summary['period']}: {summary['counted']} rows counted, {summary['duplicates']} duplicates, "
    f"{summary['invoices']} invoices, {summary['invoice_lines']} lines in {summary['elapsed_ms']} ms"
)
lines = month.invoice_lines
print(lines.head())

# %% Cost by tenant: exact sums of the invoice lines, which are the invoices' totals to the cent.
cost = lines.groupby("tenant_id")["amount"].sum().sort_values(ascending=False)
invoice_totals = month.invoices.set_index("tenant_id")["total"]
assert cost.sort_index().tolist() == invoice_totals.sort_index().tolist()
total = sum(cost, Decimal(0))
assert total == sum(summary["totals"].values(), Decimal(0))
print(cost.to_string())
print(f"total: {total} USD")

# %% Commissions: what each partner earns on its tenants' revenue.
print(month.commissions.to_string(index=False))

# %% The same lines as an Arrow table (decimal128 columns), for DuckDB, Polars or Parquet.
table = cms.month_end_tables(options.data_dir).invoice_lines
print(table.schema)

# %% Plot cost by tenant. Floats only here, for drawing: the figures above stay exact.
figure, axes = plt.subplots(figsize=(6, 3.5))
axes.bar(list(cost.index), [float(amount) for amount in cost])
axes.set_title(f"Cost by tenant, {summary['period']}")
axes.set_ylabel("USD")
for position, amount in enumerate(cost):
    axes.annotate(f"{amount}", (position, float(amount)), ha="center", va="bottom", fontsize=8)
figure.tight_layout()
figure.savefig(options.out, dpi=100)
print(f"chart: {options.out}")
