"""The golden invoicing scenario through the typed API, on memory and on a SQLite file reopened before
every step; then the documents it issued, read back as Python values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import cms
from scenario import OPERATOR, replay


def test_golden_scenario_on_sqlite_reopened_before_every_step(tmp_path: Path) -> None:
    store = cms.SqliteStore(tmp_path / "cms.db")
    steps = replay(lambda: cms.Cms(store, principal=OPERATOR), reopen=True)
    assert steps == 12
    with cms.Cms(store, principal=OPERATOR) as engine:
        assert engine.verify_documents() == {"intact": True, "altered": []}
        assert engine.verify_audit(strict=True)["broken"] is None
        issued = engine.issued_document("platform-000001")
        document = issued["document"]
        # Hand-checked in the scenario: t1 52.88 + 21 % of 50.00 = 63.38, due 30 days after issue.
        assert document["total"] == Decimal("63.38") and isinstance(document["total"], Decimal)
        assert document["due"] == dt.date(2026, 12, 1)
        assert issued["issued"]["issued_at"] == dt.datetime(2026, 11, 1, 6, tzinfo=dt.timezone.utc)
        listed = engine.invoice_documents("2026-10")
        assert sum(item["total"] for item in listed if item["kind"] == "credit_note") == Decimal("-63.38")


def test_golden_scenario_on_memory() -> None:
    with cms.Cms(principal=OPERATOR) as engine:
        assert replay(lambda: engine, reopen=False) == 12
        # November's statement now also counts the debit notes re-rating issued on 2026-11-05 (t1 10.00,
        # t2 20.00): contoso's base 152.88 + 30.00 = 182.88, 10 % = 18.288 -> 18.29.
        contoso = engine.commission_report("2026-11")["statements"][0]
        assert (contoso["partner"], contoso["base"], contoso["commission"]) == (
            "contoso",
            Decimal("182.88"),
            Decimal("18.29"),
        )
