"""The conversions of ``cms._convert``: decimals exact both ways, instants aware, floats never, ids never
mistaken for numbers; and every result the vectors and the golden scenario produce, checked for decimal
or instant strings the conversion missed."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import cms
import support
from cms._convert import decode, encode, instant_text
from scenario import OPERATOR, replay

UTC = dt.timezone.utc


def test_decimals_go_in_exactly() -> None:
    assert json.loads(encode({"q": Decimal("0.10"), "big": Decimal("1E+2"), "tiny": Decimal("1E-28")})) == {
        "q": "0.10",
        "big": "100",
        "tiny": "0.0000000000000000000000000001",
    }
    for bad in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(cms.InputError) as raised:
            encode({"q": bad})
        assert raised.value.code == "bad_decimal"


def test_instants_go_in_as_utc_and_naive_ones_are_refused() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    assert instant_text(dt.datetime(2026, 10, 1, 2, 0, tzinfo=paris)) == "2026-10-01T00:00:00Z"
    assert instant_text(dt.datetime(2026, 10, 1, 0, 0, 0, 5, tzinfo=UTC)) == "2026-10-01T00:00:00.000005Z"
    assert instant_text("2026-10-01T00:00:00+02:00") == "2026-10-01T00:00:00+02:00"
    with pytest.raises(cms.InputError) as raised:
        encode({"at": dt.datetime(2026, 10, 1)})
    assert raised.value.code == "bad_timestamp"
    assert json.loads(encode({"due": dt.date(2026, 12, 1)})) == {"due": "2026-12-01"}
    with pytest.raises(TypeError):
        encode({"what": object()})


def test_floats_are_refused_by_the_engine() -> None:
    with cms.Cms(principal="ops") as engine:
        with pytest.raises(cms.InputError) as raised:
            engine.call(
                "estimate",
                {
                    "principal": {"id": "ops"},
                    "node": "platform",
                    "items": [{"meter": "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5", "quantity": 1.5}],
                    "at": "2026-10-01T00:00:00Z",
                },
            )
        assert raised.value.code == "bad_decimal"
        assert raised.value.location == "estimate field items[0].quantity"


def test_results_come_out_as_decimals_datetimes_and_dates() -> None:
    value = decode(
        json.dumps(
            {
                "total": "0.50",
                "quantity": "-12.000001",
                "totals": {"USD": "2.81", "EUR": "0"},
                "rates": {"USD": {"2026-01-01T00:00:00Z": "1.10"}},
                "from": "0",
                "issued_at": "2026-11-01T06:00:00Z",
                "start": "2026-11-01T08:00:00+02:00",
                "fine": "2026-11-01T06:00:00.123456789Z",
                "due": "2026-12-01",
                "period": "2026-10",
                "number": "000123",
                "count": 3,
                "moves": [{"node": "42", "from": "1001", "to": "2002", "effective": "2026-10-15T00:00:00Z"}],
            }
        )
    )
    assert value["total"] == Decimal("0.50") and str(value["total"]) == "0.50"
    assert value["quantity"] == Decimal("-12.000001")
    assert value["totals"] == {"USD": Decimal("2.81"), "EUR": Decimal("0")}
    assert value["rates"] == {"USD": {"2026-01-01T00:00:00Z": Decimal("1.10")}}
    assert value["from"] == Decimal("0")
    assert value["issued_at"] == dt.datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert value["start"] == dt.datetime(2026, 11, 1, 6, tzinfo=UTC) and value["start"].tzinfo == UTC
    assert value["fine"] == "2026-11-01T06:00:00.123456789Z"  # finer than datetime: the exact text stays
    assert value["due"] == dt.date(2026, 12, 1)
    assert (value["period"], value["number"], value["count"]) == ("2026-10", "000123", 3)
    assert value["moves"][0]["from"] == "1001" and value["moves"][0]["to"] == "2002"
    assert decode('"2026-10-01T00:00:00Z"') == dt.datetime(2026, 10, 1, tzinfo=UTC)
    assert decode("1.5") == Decimal("1.5")  # a JSON fraction is never a float


def test_numeric_looking_ids_stay_strings() -> None:
    at = "2026-09-01T00:00:00Z"
    with cms.Cms(principal="ops") as engine:
        engine.execute_all(
            [
                {"type": "node_added", "id": "1001", "kind": "partner", "parent": None, "name": "100"},
                {"type": "node_added", "id": "2002", "kind": "partner", "parent": None, "name": "200"},
                {"type": "node_added", "id": "3003", "kind": "tenant", "parent": "1001", "name": "300"},
                {"type": "node_added", "id": "4004", "kind": "subscription", "parent": "3003", "name": "400"},
            ],
            at=at,
        )
        engine.execute(
            {"type": "node_moved", "id": "3003", "parent": "2002", "effective": "2026-09-15T00:00:00Z"}, at=at
        )
        nodes = engine.nodes(at="2026-10-01T00:00:00Z")
        assert [node["id"] for node in nodes] == ["platform", "1001", "2002", "3003", "4004"]
        assert {node["name"] for node in nodes if node["kind"] != "platform"} == {"100", "200", "300", "400"}
        assert [node["parent"] for node in nodes[3:]] == ["2002", "3003"]  # the tenant moved
        assert all(isinstance(text, str) for _, text in support.walk_strings(engine.state()))


def test_audit_digests_stay_text() -> None:
    with cms.Cms(principal="ops") as engine:
        engine.execute(
            {"type": "node_added", "id": "p", "kind": "partner", "parent": None, "name": "P"},
            at="2026-09-01T00:00:00Z",
        )
        record = engine.call("export_audit")["records"][0]
    # The first record's "before" and "prev" are the all-zero genesis digest: 64 digits, not a number.
    assert record["before"] == "0" * 64 and record["prev"] == "0" * 64
    assert isinstance(record["after"], str) and len(record["after"]) == 64
    assert record["at"] == dt.datetime(2026, 9, 1, tzinfo=UTC)


def _rich_results() -> list[tuple[str, str]]:
    """The JSON text of every successful call of the vectors, and of the queries on the golden scenario."""
    support.RECORDED = []
    try:
        for path in support.call_files():
            for case in support.cases(path):
                with tempfile.TemporaryDirectory() as scratch:
                    support.replay(case, "memory", Path(scratch))
        recorded = support.RECORDED
    finally:
        support.RECORDED = None
    with cms.Cms(principal=OPERATOR) as engine:
        replay(lambda: engine, reopen=False)
        who = {"principal": OPERATOR}
        queries: list[tuple[str, dict[str, Any]]] = [
            ("state", {}),
            ("billing_rules", {}),
            ("export_audit", {}),
            ("checkpoints", {}),
            ("audit_records", who),
            ("nodes", {**who, "at": "2026-12-01T00:00:00Z"}),
            ("subscriptions", {**who, "at": "2026-12-01T00:00:00Z"}),
            ("month_end_report", {"period": "2026-10"}),
            ("month_end_for", {**who, "period": "2026-10"}),
            ("tenant_month_end", {**who, "period": "2026-10"}),
            ("showback", {**who, "period": "2026-10"}),
            ("chargeback_journal", {**who, "period": "2026-10"}),
            ("invoice_documents", who),
            ("issued_in", {**who, "period": "2026-11"}),
            ("commission_report", {**who, "period": "2026-12"}),
            ("preview_invoices", {**who, "period": "2026-11"}),
            (
                "estimate",
                {
                    **who,
                    "node": "s1",
                    "items": [{"meter": "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5", "quantity": "100"}],
                    "at": "2026-12-01T00:00:00Z",
                },
            ),
            (
                "price_chain",
                {
                    **who,
                    "subscription": "s1",
                    "meter": "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
                    "quantity": "10",
                    "at": "2026-12-01T00:00:00Z",
                },
            ),
        ]
        for method, params in queries:
            recorded.append((method, engine._session.call(method, encode(params))))
        recorded.append(("stored_usage", engine._session.call("stored_usage", encode({**who, "period": "2026-10"}))))
    return recorded


#: Keys whose values may be plain-decimal text that is not a decimal, with the reason. A decimal field the
#: conversion does not know belongs in DECIMAL_KEYS instead.
TEXT_KEYS: frozenset[str] = frozenset(
    {
        # ledger account codes of the chargeback journal and its settings ("6100")
        "account",
        "expense_account",
        "recovery_account",
    }
)


def test_no_decimal_or_instant_is_left_as_a_string() -> None:
    results = _rich_results()
    assert len(results) > 80
    methods = {method for method, _ in results}
    assert {"state", "showback", "month_end_report", "commission_report", "issue_invoices"} <= methods
    missed = set()
    for method, raw in results:
        for key, text in support.walk_strings(decode(raw)):
            # (A digit string longer than any decimal's text is a hash: see cms._convert.)
            if support.plain_decimal(text) is not None and len(text) <= 32 and key not in TEXT_KEYS:
                missed.add((method, key, text))
            if support.parse_instant(text) is not None and "T" in text and ".0000000" not in text:
                missed.add((method, key, text))
    assert not missed, f"strings the conversion missed (add decimal fields to DECIMAL_KEYS): {sorted(missed)[:20]}"
