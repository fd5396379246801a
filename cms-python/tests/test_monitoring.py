"""Monitoring through the typed methods: a budget's status and forecast as ``Decimal``, alerts opened once,
scoped, acknowledged and resolved, ingestion recorded as a job run, the scheduler's tick (run once per
instant, its alert changes returned for delivery) and the dashboard's figures, on a SQLite file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cms

UTC = dt.timezone.utc
SETUP = dt.datetime(2025, 10, 1, tzinfo=UTC)
VM = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"
PAT = {"id": "pat", "node": "p"}
ANN = {"id": "ann", "node": "q"}


def _setup(engine: cms.Cms) -> None:
    price = {"unit": "vCore-hours", "model": {"kind": "tiered", "mode": "graduated", "tiers": [{"from": "0", "rate": "1"}]}}
    engine.execute_all(
        [
            {"type": "node_added", "id": "p", "kind": "partner", "parent": None, "name": "P"},
            {"type": "node_added", "id": "t", "kind": "tenant", "parent": "p", "name": "T"},
            {"type": "node_added", "id": "s", "kind": "subscription", "parent": "t", "name": "S"},
            {"type": "node_added", "id": "q", "kind": "partner", "parent": None, "name": "Q"},
            {
                "type": "price_list_created",
                "list": {
                    "id": "std",
                    "name": "std",
                    "currency": "USD",
                    "tier_scope": "subscription",
                    "minimum_commitment": None,
                    "versions": [
                        {"effective": "2025-01-01T00:00:00Z", "content": {"kind": "own", "prices": {VM: price}}}
                    ],
                },
            },
            {"type": "price_list_assigned", "scope": "default", "list": "std"},
        ],
        at=SETUP,
    )


def _hours(day: int, quantity: str, resource: str) -> list[dict[str, Any]]:
    start = dt.datetime(2025, 10, day, tzinfo=UTC)
    return [
        {
            "subscription": "s",
            "meter": VM,
            "start": start + dt.timedelta(hours=hour),
            "end": start + dt.timedelta(hours=hour + 1),
            "quantity": Decimal(quantity),
            "resource_uri": resource,
            "location": "local",
        }
        for hour in range(10)
    ]


def test_budgets_alerts_and_the_dashboard(tmp_path: Path) -> None:
    with cms.Cms(tmp_path / "cms.db", principal="operator") as engine:
        _setup(engine)
        engine.set_budget({"id": "b-t", "node": "t", "amount": Decimal("100"), "currency": "USD"}, at=SETUP)
        engine.ingest_records(_hours(1, "4.5", "/vm1"), origin="day1.json")
        # 10 hours x 4.5 at 1.00 = 45 on October 1st; the run rate of that complete day over the 30 days
        # left: 45 + 30 x 45 = 1395, 1395 % of the budget.
        midnight = dt.datetime(2025, 10, 2, tzinfo=UTC)
        (status,) = engine.budget_statuses("2025-10", at=midnight)
        assert (status["actual"], status["forecast"], status["percent"]) == (Decimal(45), Decimal(1395), Decimal("45.00"))
        assert status["state"] == "forecast_breach"
        assert status["at"] == midnight
        assert engine.budget_statuses("2025-10", at=midnight, principal=ANN) == []

        assert engine.evaluate_alerts(at=midnight) == [{"id": 1, "change": "opened"}, {"id": 2, "change": "opened"}]
        assert engine.evaluate_alerts(at=midnight + dt.timedelta(minutes=30)) == []
        kinds = {alert["id"]: alert["kind"] for alert in engine.alerts()}
        assert kinds == {1: "budget_forecast", 2: "ingestion_stale"}
        assert [alert["id"] for alert in engine.alerts(principal=PAT)] == [1]
        assert engine.alerts(principal=ANN) == []
        with pytest.raises(cms.NotFoundError) as raised:
            engine.acknowledge_alert(1, at=midnight, principal=ANN)
        assert raised.value.code == "unknown_node"
        engine.acknowledge_alert(1, note="looking into it", at=midnight, principal=PAT)
        (first,) = engine.alerts(principal=PAT)
        assert (first["status"], first["note"], first["acknowledged"]) == ("acknowledged", "looking into it", ["pat", midnight])
        assert first["first_seen"] == midnight

        # Day 2 on another resource (no gap): 45 more, 90 % of the budget: a warning; local is no longer stale.
        engine.ingest_records(_hours(2, "4.5", "/vm2"), origin="day2.json")
        noon = dt.datetime(2025, 10, 2, 12, tzinfo=UTC)
        assert engine.evaluate_alerts(at=noon) == [{"id": 2, "change": "resolved"}, {"id": 3, "change": "opened"}]
        engine.resolve_alert(3, note="raised the budget", at=noon)
        assert [alert["id"] for alert in engine.alerts()] == [1]
        resolved = {alert["id"]: alert["resolved"] for alert in engine.alerts(include_resolved=True) if "resolved" in alert}
        assert resolved == {2: [None, noon], 3: ["operator", noon]}

        board = engine.dashboard("2025-10", at=noon, principal=PAT)
        assert board["month_to_date"] == [{"currency": "USD", "amount": Decimal(90)}]
        # The run rate is still day 1's 45 (day 2 is not complete): 90 + 29.5 x 45 = 1417.50.
        assert board["projection"] == [{"currency": "USD", "amount": Decimal("1417.50")}]
        assert [(day["day"], day["amount"]) for day in board["by_day"]] == [
            (dt.date(2025, 10, 1), Decimal(45)),
            (dt.date(2025, 10, 2), Decimal(45)),
        ]
        assert [tenant["id"] for tenant in board["top_tenants"]] == ["t"]
        assert board["regions"] == [], "region health is for platform principals"
        assert [region["region"] for region in engine.dashboard("2025-10", at=noon)["regions"]] == ["local"]

        usage = engine.stored_usage("2025-10", principal=PAT)
        assert len(usage) == 20 and sum((record["quantity"] for record in usage), Decimal(0)) == Decimal(90)
        assert engine.stored_usage("2025-10", principal=ANN) == []


def test_ingestion_runs_and_the_tick(tmp_path: Path) -> None:
    with cms.Cms(tmp_path / "cms.db", principal="operator") as engine:
        _setup(engine)
        bad = _hours(1, "1", "/vm1")[:2]
        bad[1]["end"] = bad[1]["start"] + dt.timedelta(hours=3)
        summary = engine.ingest_records(bad, origin="nightly.json")
        assert (summary["stored"], len(summary["refused"])) == (1, 1)
        recorded_at = dt.datetime(2025, 10, 1, 2, tzinfo=UTC)
        engine.record_ingestion("nightly", summary, at=recorded_at)
        (run,) = engine.job_runs()
        assert (run["job"], run["source"], run["outcome"]) == ("ingest", "nightly", "done")
        assert (run["counts"]["refused"], run["started"]) == (1, recorded_at)
        with pytest.raises(cms.NotFoundError):
            engine.job_runs(principal=PAT)
        changes = engine.evaluate_alerts(at=recorded_at)
        refused = [alert for alert in engine.alerts() if alert["kind"] == "refused_records"]
        assert len(refused) == 1 and {"id": refused[0]["id"], "change": "opened"} in changes

        # The tick: what is due runs once per instant; a stamp refusing connections fails its pull, which
        # is recorded and raises a job failure alert handed back for delivery.
        now = dt.datetime(2025, 10, 2, 15, tzinfo=UTC)
        east = {
            "region": "east",
            "arm_endpoint": "http://127.0.0.1:9",
            "provider_subscription": "p-sub",
            "tenant": "t",
            "client_id": "c",
            "client_secret": "x",
            "start": "2025-10-01T00:00:00Z",
            "allow_http": True,
            "max_attempts": 1,
        }
        report = engine.tick(regions=[east], at=now)
        outcomes = {run["key"]: run["outcome"] for run in report["runs"]}
        assert outcomes["pull:east:2025-10-02T15:00:00+00:00"] == "failed"
        assert outcomes["draft:2025-09"] == "done"
        failures = [d["alert"] for d in report["deliveries"] if d["alert"]["kind"] == "job_failure"]
        assert [(alert["related"], alert["status"]) for alert in failures] == [("pull:east", "open")]
        again = engine.tick(regions=[east], at=now)
        assert again["runs"] == [] and again["deliveries"] == []
        assert "purge:2025-10-02" in again["skipped"]
        with pytest.raises(cms.InputError) as raised:
            engine.tick(regions=[{"region": "east"}], at=now)
        assert raised.value.code == "bad_json"
        assert "tick regions[0] field arm_endpoint" in str(raised.value)
