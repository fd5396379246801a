"""Engines on stores: a SQLite file closed and reopened keeps everything; two engines on one file see each
other's writes after ``refresh``; a closed engine refuses calls; stored usage comes back exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

import cms

UTC = dt.timezone.utc
AT = dt.datetime(2026, 9, 1, tzinfo=UTC)
VM = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"


def _channel(engine: cms.Cms) -> None:
    engine.execute_all(
        [
            {"type": "node_added", "id": "contoso", "kind": "partner", "parent": None, "name": "Contoso"},
            {"type": "node_added", "id": "adatum", "kind": "tenant", "parent": "contoso", "name": "Adatum"},
        ],
        at=AT,
    )
    engine.onboard_subscription("s1", "adatum", "Adatum production", at=AT)


def _usage(hours: int, quantity: str) -> list[dict[str, object]]:
    start = dt.datetime(2026, 10, 3, tzinfo=UTC)
    return [
        {
            "subscription": "s1",
            "meter": VM,
            "start": start + dt.timedelta(hours=hour),
            "end": start + dt.timedelta(hours=hour + 1),
            "quantity": Decimal(quantity),
            "resource_uri": "/subscriptions/s1/resourceGroups/rg/providers/x/vm",
            "location": "local",
        }
        for hour in range(hours)
    ]


def test_sqlite_engine_reopened_keeps_its_state(tmp_path: Path) -> None:
    store = cms.SqliteStore(tmp_path / "cms.db")
    with cms.Cms(store, principal="ops") as engine:
        _channel(engine)
        summary = engine.ingest_records(_usage(24, "1.000001"), origin="day one")
        assert (summary["stored"], summary["duplicates"]) == (24, 0)
        # The TypedDict names exactly the keys the engine returns.
        assert set(summary) == set(cms.IngestSummary.__annotations__)
    assert engine.closed
    # Reopened: the channel and the usage are there; the same records again are duplicates.
    with cms.Cms(store, principal="ops") as engine:
        ids = [node["id"] for node in engine.nodes(at=AT + dt.timedelta(days=1))]
        assert ids == ["platform", "contoso", "adatum", "s1"]
        again = engine.ingest_records(_usage(24, "1.000001"), origin="day one again")
        assert (again["stored"], again["duplicates"]) == (0, 24)
        stored = engine.stored_usage("2026-10")
        assert len(stored) == 24
        assert sum((record["quantity"] for record in stored), Decimal(0)) == Decimal("24.000024")
        assert stored[0]["start"].tzinfo is not None
        assert set(cms.UsageRecord.__annotations__) <= set(stored[0])
        assert engine.verify_audit(strict=True)["broken"] is None
    # A path opens a SQLite store too.
    with cms.Cms(tmp_path / "cms.db") as engine:
        assert len(engine.stored_usage("2026-10")) == 24


def test_two_engines_on_one_file_see_each_other_after_refresh(tmp_path: Path) -> None:
    store = cms.SqliteStore(tmp_path / "cms.db")
    with cms.Cms(store, principal="ops") as first, cms.Cms(store, principal="ops") as second:
        _channel(first)
        assert [node["id"] for node in second.nodes(at=AT)] == ["platform"]
        second.refresh()
        assert [node["id"] for node in second.nodes(at=AT)] == ["platform", "contoso", "adatum", "s1"]
        # The second engine writes on the refreshed state; the first sees it after its own refresh.
        second.execute(
            {"type": "node_added", "id": "woodgrove", "kind": "tenant", "parent": "contoso", "name": "Woodgrove"},
            at=AT,
        )
        first.refresh()
        assert "woodgrove" in [node["id"] for node in first.nodes(at=AT)]


def test_memory_engines_are_separate_and_closing_is_final() -> None:
    first, second = cms.Cms(principal="ops"), cms.Cms(principal="ops")
    _channel(first)
    assert len(first.nodes(at=AT)) == 4 and len(second.nodes(at=AT)) == 1
    first.close()
    first.close()  # closing twice does nothing
    with pytest.raises(cms.StorageError):
        first.nodes(at=AT)
    second.close()


def test_principal_defaults_and_scoping() -> None:
    with cms.Cms() as engine:
        assert engine.principal["node"] == "platform" and engine.principal["id"]
        _channel(engine)
        # A principal acting at contoso sees contoso's subtree only.
        scoped = engine.nodes(at=AT, principal={"id": "ops", "node": "contoso"})
        assert [node["id"] for node in scoped] == ["contoso", "adatum", "s1"]
        assert "principal" in repr(engine) and "MemoryStore" in repr(engine)


def test_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(cms.StorageError) as raised:
        cms.Cms(cms.SqliteStore(tmp_path / "no" / "such" / "folder" / "cms.db"))
    assert raised.value.code == "store"
