"""The golden invoicing scenario (tests/scenarios/invoicing.json, hand-checked figures) replayed through
the typed methods of ``cms.Cms``, as cms-core replays it in Rust and tests/vectors/calls/make_calls.py
turns it into facade calls."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

import cms
from support import SCENARIOS, Mismatch, error_matches, matches

SCENARIO: dict[str, Any] = json.loads((SCENARIOS / "invoicing.json").read_text(encoding="utf-8"))
OPERATOR = {"id": "operator", "node": "platform"}


def _records(step: dict[str, Any]) -> list[dict[str, Any]]:
    meters = SCENARIO["meters"]
    records = []
    for record in step["ingest"]:
        start = dt.datetime.fromisoformat(record["start"].replace("Z", "+00:00"))
        records.append(
            {
                "subscription": record["subscription"],
                "meter": meters.get(record["meter"], record["meter"]),
                "start": start,  # an aware datetime in, as a notebook would pass it
                "end": start + dt.timedelta(hours=1),
                "quantity": record["quantity"],
                "resource_uri": f"/subscriptions/{record['subscription']}/resourceGroups/rg/providers/x/vm",
                "location": "local",
            }
        )
    return records


def _commission_expectation(expect: dict[str, Any]) -> dict[str, Any]:
    """The scenario gives shares as {tenant: amount}; the report lists them as [{tenant, amount}]."""

    def statements(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {key: value for key, value in item.items() if key != "shares"}
            | {"tenants": [{"tenant": tenant, "amount": amount} for tenant, amount in item["shares"].items()]}
            for item in items
        ]

    result: dict[str, Any] = {}
    if "statements" in expect:
        result["statements"] = statements(expect["statements"])
    if "overrides" in expect:
        result["overrides"] = statements(expect["overrides"])
    if "totals" in expect:
        result["totals"] = [expect["totals"]]
    return result


def replay(open_engine: Callable[[], cms.Cms], *, reopen: bool) -> int:
    """Replay every step; with ``reopen``, on an engine opened anew (``open_engine``) before each step and
    closed after it, else on one engine (left open). Returns the steps run."""
    engine = open_engine()
    engine.execute_all(SCENARIO["setup"], at=SCENARIO["setup_at"], principal=OPERATOR)
    for index, step in enumerate(SCENARIO["steps"]):
        if reopen:
            engine.close()
            engine = open_engine()
        at = dt.datetime.fromisoformat(step["at"].replace("Z", "+00:00"))
        expect = step.get("expect", {})
        try:
            result: Any
            if "ingest" in step:
                summary = engine.ingest_records(_records(step), origin=f"step {index}")
                matches(summary, {"stored": len(step["ingest"]), "refused": []})
                continue
            if "preview" in step:
                result = lambda: engine.preview_invoices(step["preview"]["period"], principal=OPERATOR)  # noqa: E731
            elif "issue" in step:
                result = lambda: engine.issue_invoices(step["issue"]["period"], at=at, principal=OPERATOR)  # noqa: E731
            elif "void" in step:
                result = lambda: [engine.void_invoice(**step["void"], at=at, principal=OPERATOR)]  # noqa: E731
            elif "rerate" in step:
                result = lambda: engine.rerate(**step["rerate"], at=at, principal=OPERATOR)  # noqa: E731
            elif "interim" in step:
                result = lambda: engine.issue_interim(at=at, principal=OPERATOR)  # noqa: E731
            elif "execute" in step:
                result = lambda: engine.execute(step["execute"], at=at, principal=OPERATOR)  # noqa: E731
            elif "commission" in step:
                result = lambda: engine.commission_report(step["commission"]["period"], principal=OPERATOR)  # noqa: E731
            else:
                raise Mismatch(f"unknown step kind {sorted(step)}")
            if "error" in expect:
                try:
                    outcome = result()
                except cms.CmsError as error:
                    error_matches(error, expect["error"])
                    continue
                raise Mismatch(f"expected error {expect['error']['code']}, got {outcome!r}")
            outcome = result()
            if "commission" in step:
                matches(outcome, _commission_expectation(expect))
            elif "documents" in expect:
                matches(outcome, expect["documents"])
        except Mismatch as mismatch:
            raise Mismatch(f"scenario step {index} ({step.get('comment', '')}): {mismatch}") from None
    if reopen:
        engine.close()
    return len(SCENARIO["steps"])
