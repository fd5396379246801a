"""Every facade method has a typed Python method (derived from ``cms.methods()``, so a method added to the
facade without one fails here), and the typed methods of the rarer queries and commands give what the
engine gives: scopes, visibility, read checks, the audit export, what-if month-ends under other prices and
terms, drafts recomputed, documents issued in a period, conformance cases."""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import json
from decimal import Decimal
from typing import Any

import pytest

import cms

UTC = dt.timezone.utc
SETUP = dt.datetime(2025, 10, 1, tzinfo=UTC)
VM = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"


def test_every_facade_method_has_a_typed_method() -> None:
    listed = cms.methods()
    assert len(listed) >= 60
    missing = []
    for method in listed:
        owner: Any = cms.Cms if method["session"] else cms
        typed = getattr(owner, method["name"], None)
        if not callable(typed) or method["name"] == "call":
            missing.append(method["name"])
            continue
        # Typed, with a docstring: not a bare alias of call().
        assert inspect.getdoc(typed), method["name"]
        assert "return" in typed.__annotations__, method["name"]
    assert missing == [], f"facade methods without a typed Python method: {missing}"


def _price(rate: str) -> dict[str, Any]:
    return {"unit": "vCore-hours", "model": {"kind": "tiered", "mode": "graduated", "tiers": [{"from": "0", "rate": rate}]}}


def _setup(engine: cms.Cms) -> None:
    """A partner p with a tenant t and its subscription s, and a partner q; one price list whose rate
    doubles on 2025-10-15."""
    versions = [
        {"effective": "2025-01-01T00:00:00Z", "content": {"kind": "own", "prices": {VM: _price("1")}}},
        {"effective": "2025-10-15T00:00:00Z", "content": {"kind": "own", "prices": {VM: _price("2")}}},
    ]
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
                    "versions": versions,
                },
            },
            {"type": "price_list_assigned", "scope": "default", "list": "std"},
        ],
        at=SETUP,
    )
    start = dt.datetime(2025, 10, 1, tzinfo=UTC)
    engine.ingest_records(
        [
            {
                "subscription": "s",
                "meter": VM,
                "start": start + dt.timedelta(hours=hour),
                "end": start + dt.timedelta(hours=hour + 1),
                "quantity": Decimal("4.5"),
                "resource_uri": "/vm1",
                "location": "local",
            }
            for hour in range(10)
        ],
        origin="day1.json",
    )


def _total(report: dict[str, Any], buyer: str) -> Decimal:
    """The total of the invoice to ``buyer`` in a month-end report."""
    (invoice,) = [invoice for invoice in report["invoices"] if invoice["buyer"] == buyer]
    return Decimal(invoice["total"])


def test_scopes_visibility_and_read_checks() -> None:
    with cms.Cms(principal="operator") as engine:
        _setup(engine)
        assert engine.scope_of() == {"id": "platform", "kind": "platform"}
        assert engine.scope_of(principal={"id": "pat", "node": "p"}) == {"id": "p", "kind": "partner"}
        assert engine.visible("s", principal={"id": "pat", "node": "p"}) == {"id": "s", "kind": "subscription"}
        # q is another branch: unknown to p's principal, as a node that does not exist.
        with pytest.raises(cms.NotFoundError) as raised:
            engine.visible("q", principal={"id": "pat", "node": "p"})
        assert raised.value.code == "unknown_node"
        with pytest.raises(cms.NotFoundError):
            engine.scope_of(principal={"id": "x", "node": "nowhere"})
        engine.authorize_read("read_audit")  # allowed: returns, raises nothing
        with pytest.raises(cms.InputError) as bad:
            engine.authorize_read("read_everything")
        assert bad.value.code == "bad_json"
        # The audit export: every record of audit_records, with the head the chain ends in.
        exported = engine.export_audit()
        assert exported["records"] == engine.audit_records()
        assert exported["head"]["seq"] == exported["records"][-1]["seq"]
        assert engine.verify_audit(expected_head=exported["head"], strict=True)["broken"] is None
        assert set(engine.billing_rules()) == set(engine.state()["rules"])
        # A bulk change on tenant t covers its node and its subscriptions.
        assert engine.tenant_scope("t") == {"nodes": ["t", "s"]}
        with pytest.raises(cms.CmsError) as not_tenant:
            engine.tenant_scope("p")
        assert not_tenant.value.code in cms.error_codes()


def test_month_end_in_prices_at_an_instant_and_other_terms() -> None:
    with cms.Cms(principal="operator") as engine:
        _setup(engine)
        # 10 hours x 4.5 at the rate of October 1st (1.00): 45; at the prices of October 20th (2.00): 90.
        assert _total(engine.month_end_report("2025-10"), "t") == Decimal(45)
        assert _total(engine.month_end_in("2025-10"), "t") == Decimal(45)
        at_20th = engine.month_end_in("2025-10", prices_at=dt.datetime(2025, 10, 20, tzinfo=UTC))
        assert _total(at_20th, "t") == Decimal(90)
        # Other terms: the price list's first rate set to 3.
        terms = copy.deepcopy(engine.state()["terms"])
        text = json.dumps(terms, default=str)
        assert text.count('"rate": "1"') == 1
        other = json.loads(text.replace('"rate": "1"', '"rate": "3"'))
        assert _total(engine.month_end_in("2025-10", terms=other), "t") == Decimal(135)
        # Nothing was recorded by the what-ifs.
        assert _total(engine.month_end_report("2025-10"), "t") == Decimal(45)
        with pytest.raises(cms.InputError):
            engine.month_end_in("2025-10", terms={"not": "terms"})


def test_drafts_issue_and_purge_through_typed_methods() -> None:
    with cms.Cms(principal="operator") as engine:
        _setup(engine)
        reprocessed = engine.reprocess("2025-10", tenant="t")
        assert reprocessed
        drafts = engine.drafts("2025-10")
        assert [draft["buyer"] for draft in drafts] == ["t"]
        assert Decimal(drafts[0]["total"]) == Decimal(45)
        issued = engine.issue_invoices("2025-10", at=dt.datetime(2025, 11, 2, tzinfo=UTC))
        numbers = {document["number"] for document in issued}
        assert numbers
        # issued_in reads by the instant of issue: October's invoices were issued in November.
        assert {document["number"] for document in engine.issued_in("2025-11")} == numbers
        assert engine.issued_in("2025-10") == []
        assert engine.issued_in("2025-11", principal={"id": "qa", "node": "q"}) == []
        # Nothing is old enough to purge yet under the default retention.
        assert engine.purge_usage(at=dt.datetime(2025, 11, 3, tzinfo=UTC)) == []
        assert len(engine.stored_usage("2025-10")) == 10


def test_closing_months_follow_the_latest_evaluation() -> None:
    with cms.Cms(principal="operator") as engine:
        _setup(engine)
        # Never evaluated: the month before the instant's.
        assert engine.closing_months(at=dt.datetime(2025, 11, 2, tzinfo=UTC)) == ["2025-10"]
        engine.evaluate_alerts(at=dt.datetime(2025, 11, 2, tzinfo=UTC))
        # Every month that ended after that evaluation, oldest first.
        assert engine.closing_months(at=dt.datetime(2025, 12, 5, tzinfo=UTC)) == ["2025-11"]
        assert engine.closing_months(at=dt.datetime(2026, 2, 5, tzinfo=UTC)) == ["2025-11", "2025-12", "2026-01"]
