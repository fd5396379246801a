"""Writes the call vectors of this folder (the protocol: README.md here). Every expectation is written here by
hand (figures checked in the comments) or taken from an independently checked source: the golden invoicing
scenario (../../scenarios/invoicing.json, hand-checked) and the month-end vectors (../month_end.json, checked
against the DuckDB peer). operations.json (the methods the other files leave out) was run through the library
first and each expectation then checked by hand against month.json's figures: the arithmetic is in the comments.
It also writes ../concurrency.json, the case file of concurrent writers.

usage: python3 tests/vectors/calls/make_calls.py   (standard library only; run from anywhere)
"""
import json, os, shutil
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(VECTORS))

OP = {"id": "operator", "node": "platform"}
VM = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"      # vCore-hours (Base VM)
IP = "F271A8A3-88C4-4D93-956A-063E1D2FA80B"      # Static IP Address Usage, IP-hours
SQL = "9CD92D4C-BAFD-4492-B278-BEDC2DE8232A"     # a meter the sample page reports for 7b9d... (4.0)
EGRESS = "3023FEF4-ECA5-4D7B-87B3-CFBC061931E8"


def call(method, params=None, result=None, error=None, comment=None):
    step = {}
    if comment:
        step["comment"] = comment
    step["method"] = method
    step["params"] = params if params is not None else {}
    if result is not None:
        step["result"] = result
    if error is not None:
        step["error"] = error
    return step


def err(code, contains=None):
    return {"code": code, "message_contains": contains} if contains else {"code": code}


def execute(at, event, **kw):
    return call("execute", {"principal": kw.pop("principal", OP), "at": at, "event": event}, **kw)


def execute_all(at, events, **kw):
    return call("execute_all", {"principal": kw.pop("principal", OP), "at": at, "events": events}, **kw)


def node(id, kind, parent, name):
    return {"type": "node_added", "id": id, "kind": kind, "parent": parent, "name": name}


def tiered(rate, unit="units"):
    return {"unit": unit, "model": {"kind": "tiered", "mode": "graduated", "tiers": [{"from": "0", "rate": rate}]}}


def price_list(id, prices, currency="USD", effective="2025-01-01T00:00:00Z"):
    return {"type": "price_list_created", "list": {"id": id, "name": id, "currency": currency, "tier_scope": "subscription",
            "minimum_commitment": None, "versions": [{"effective": effective, "content": {"kind": "own", "prices": prices}}]}}


def write(name, description, cases):
    with open(os.path.join(HERE, name), "w") as out:
        json.dump({"description": description, "cases": cases}, out, indent=1)
        out.write("\n")


# ---------------------------------------------------------------- facade.json: the facade's own contract
facade = [
    {"name": "introspection: methods list their signatures; the vocabulary of error codes is the same everywhere",
     "steps": [
        call("version", result={}),
        call("methods", comment="spot checks: a free method, a command, a query (the list itself is longer)"),
        call("error_codes", result=["io", "bad_header", "bad_record", "bad_decimal", "bad_timestamp", "bad_meter_id",
             "negative_quantity", "bad_interval", "unknown_subscription", "unknown_node", "duplicate_node",
             "invalid_hierarchy", "tier_overlap", "tier_start", "invalid_period", "invalid_value", "bad_json",
             "unpriced_meter", "currency_mismatch", "overflow", "mixed_granularity", "late_usage_refused", "http",
             "usage_api", "auth", "store", "conflict", "forbidden", "policy_refused", "audit_broken"]),
     ]},
    {"name": "an unknown method is invalid_value naming it",
     "steps": [call("no_such_method", {}, error=err("invalid_value", 'call field method: invalid value "no_such_method"'))]},
    {"name": "parameters are named and typed; the error names the method and the field",
     "steps": [
        call("nodes", {"principal": OP}, error=err("bad_json", "nodes field at: bad JSON: required, missing")),
        call("nodes", {"principal": OP, "at": 20260901}, error=err("bad_json", "nodes field at: bad JSON: expected a string, got a number")),
        call("nodes", {"principal": OP, "at": "yesterday"}, error=err("bad_timestamp", 'nodes field at: bad timestamp "yesterday" in at')),
        call("nodes", {"principal": OP, "at": "2026-09-01T00:00:00Z", "colour": "blue"},
             error=err("bad_json", "nodes field colour: bad JSON: unexpected parameter")),
        call("nodes", {"principal": {"node": "platform"}, "at": "2026-09-01T00:00:00Z"},
             error=err("bad_json", "nodes field principal.id: bad JSON: required, missing")),
        call("nodes", ["operator"], error=err("bad_json", "nodes params: bad JSON: expected an object")),
        call("close_period", {"principal": OP, "at": "2026-11-01T00:00:00Z", "period": "2026-13"},
             error=err("invalid_period", 'invalid period "2026-13"')),
        call("execute", {"principal": OP, "at": "2026-09-01T00:00:00Z", "event": {"type": "node_teleported", "id": "x"}},
             error=err("bad_json", "execute field event.type: bad JSON: unknown variant `node_teleported`")),
        call("execute", {"principal": OP, "at": "2026-09-01T00:00:00Z",
                         "event": price_list("std", {VM: {"unit": "h", "model": {"kind": "tiered", "mode": "graduated", "tiers": [{"from": "0", "rate": 0.05}]}}})},
             error=err("bad_decimal", f'execute field event.list.versions[0].content.prices.{VM}.model.tiers[0].rate: bad decimal "0.05 (a JSON number')),
        call("price_chain", {"principal": OP, "subscription": "s1", "meter": VM, "quantity": 1.5, "at": "2026-09-01T00:00:00Z"},
             error=err("bad_decimal", 'price_chain field quantity: bad decimal "1.5 (a JSON number: decimals are passed as strings)"')),
        call("price_chain", {"principal": OP, "subscription": "s1", "meter": VM, "quantity": "1,5", "at": "2026-09-01T00:00:00Z"},
             error=err("bad_decimal", 'price_chain field quantity: bad decimal "1,5" in quantity')),
        call("price_chain", {"principal": OP, "subscription": "s1", "meter": "vm-hours", "quantity": "1", "at": "2026-09-01T00:00:00Z"},
             error=err("bad_meter_id", 'price_chain field meter: bad meter id "vm-hours"')),
        call("nodes", {"principal": OP, "at": "2026-09-01T00:00:00Z"}, result=[{"id": "platform", "kind": "platform", "depth": 0}],
             comment="nothing above changed anything: the channel is still the bare platform"),
     ]},
]
write("facade.json", "The facade's own contract: introspection, unknown methods, parameter errors naming method and field. "
      "Written by make_calls.py.", facade)


# ---------------------------------------------------------------- invoicing.json: the golden scenario as calls
scenario = json.load(open(os.path.join(ROOT, "tests", "scenarios", "invoicing.json")))
meters = scenario["meters"]
steps = [call("execute_all", {"principal": OP, "at": scenario["setup_at"], "events": scenario["setup"]},
              comment="the scenario's setup, as one command")]


def documents(expected):
    return expected["documents"]


for index, step in enumerate(scenario["steps"]):
    at, expect = step["at"], step.get("expect", {})
    steps.append({"reopen": True})
    comment = step.get("comment")
    if "error" in expect:
        outcome = {"error": expect["error"]}
    else:
        outcome = None
    if "ingest" in step:
        records = []
        for r in step["ingest"]:
            start = r["start"]
            hour = int(start[11:13]) + 1
            end = f"{start[:11]}{hour:02d}{start[13:]}"
            sub = r["subscription"]
            records.append({"subscription": sub, "meter": meters.get(r["meter"], r["meter"]), "start": start, "end": end,
                            "quantity": r["quantity"], "resource_uri": f"/subscriptions/{sub}/resourceGroups/rg/providers/x/vm",
                            "location": "local"})
        steps.append(call("ingest_records", {"records": records, "origin": f"step {index}"},
                          result={"stored": len(records), "refused": []}, comment=comment))
        continue
    if "preview" in step:
        method, params = "preview_invoices", {"principal": OP, "period": step["preview"]["period"]}
    elif "issue" in step:
        method, params = "issue_invoices", {"principal": OP, "at": at, "period": step["issue"]["period"]}
    elif "void" in step:
        method, params = "void_invoice", {"principal": OP, "at": at, **step["void"]}
    elif "rerate" in step:
        method, params = "rerate", {"principal": OP, "at": at, **step["rerate"]}
    elif "interim" in step:
        method, params = "issue_interim", {"principal": OP, "at": at}
    elif "execute" in step:
        method, params = "execute", {"principal": OP, "at": at, "event": step["execute"]}
    elif "commission" in step:
        method, params = "commission_report", {"principal": OP, "period": step["commission"]["period"]}
    else:
        raise SystemExit(f"scenario step {index}: unknown kind {step}")
    if outcome is not None:
        steps.append(call(method, params, error=outcome["error"], comment=comment))
        continue
    if method == "commission_report":
        # The scenario gives shares as {tenant: amount}; the report lists them as [{tenant, amount}].
        def shares(mapping):
            return [{"tenant": tenant, "amount": amount} for tenant, amount in mapping.items()]
        result = {}
        if "statements" in expect:
            result["statements"] = [{k: v for k, v in s.items() if k != "shares"} | {"tenants": shares(s["shares"])}
                                    for s in expect["statements"]]
        if "overrides" in expect:
            result["overrides"] = [{k: v for k, v in s.items() if k != "shares"} | {"tenants": shares(s["shares"])}
                                   for s in expect["overrides"]]
        if "totals" in expect:
            result["totals"] = [expect["totals"]]
        steps.append(call(method, params, result=result, comment=comment))
    elif method == "execute":
        steps.append(call(method, params, comment=comment))
    elif method == "void_invoice":
        steps.append(call(method, params, result=documents(expect)[0], comment=comment))
    else:
        steps.append(call(method, params, result=documents(expect), comment=comment))
steps += [
    {"reopen": True},
    call("verify_documents", result={"intact": True, "altered": []}),
    call("verify_audit", {"strict": True}, result={"broken": None}),
    call("issued_document", {"principal": OP, "number": "platform-000007"},
         result={"issued": {"number": "platform-000007", "kind": "credit_note", "corrects": "platform-000001"},
                 "document": {"total": "-63.38"}}),
]
write("invoicing.json", "The golden invoicing scenario (../../scenarios/invoicing.json, hand-checked figures) as facade calls, "
      "the session reopened before every step (a no-op on a memory store). Generated by make_calls.py.",
      [{"name": "golden invoicing scenario", "steps": steps}])


# ---------------------------------------------------------------- month: the sample Usage API page as a month
S_ADATUM = "3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11"
S_WOODGROVE = "7b9d0e42-1c3f-4a6b-8e2d-5f7a9c1b3d22"
S_LITWARE = "c41e8f73-6a2b-4d9c-b05e-8e3f1a7d4c33"
SAMPLE = open(os.path.join(ROOT, "tests", "data", "azure-stack-hub-sample-usage.json")).read()
channel = [
    node("northwind", "distributor", None, "Northwind"),
    node("contoso", "partner", "northwind", "Contoso"),
    node("fabrikam", "partner", None, "Fabrikam"),
    node("adatum", "tenant", "contoso", "Adatum"),
    node("woodgrove", "tenant", "contoso", "Woodgrove"),
    node("litware", "tenant", "fabrikam", "Litware"),
    node(S_ADATUM, "subscription", "adatum", "Adatum production"),
    node(S_WOODGROVE, "subscription", "woodgrove", "Woodgrove data"),
    node(S_LITWARE, "subscription", "litware", "Litware web"),
    price_list("std", {VM: tiered("0.05", "vCore-hours"), IP: tiered("0.25", "IP-hours"), SQL: tiered("0.5", "units")}),
    {"type": "price_list_assigned", "scope": "default", "list": "std"},
    {"type": "commission_plan_put", "plan": {"id": "ten", "bands": {"mode": "graduated", "tiers": [{"from": "0", "rate": "0.10"}]}}},
    {"type": "commission_plan_assigned", "node": "contoso", "plan": "ten"},
    {"type": "override_rate_set", "node": "northwind", "rate": "0.02"},
]
month = [
    execute_all("2025-03-01T00:00:00Z", channel, result={"seq": len(channel)}),
    call("ingest_page", {"page": SAMPLE, "source": "azure-stack-hub-sample-usage.json"},
         result={"pages": 1, "received": 20, "stored": 20, "duplicates": 0, "refused": [], "excluded": 0},
         comment="the 20 records of the sample page, every subscription onboarded"),
    {"reopen": True},
    call("ingest_page", {"page": SAMPLE, "source": "again.json"},
         result={"received": 20, "stored": 0, "duplicates": 20}, comment="the same page again: duplicates"),
    call("preview_invoices", {"principal": OP, "period": "2025-03"}, result=[
        {"number": None, "kind": "invoice", "issuer": "platform", "buyer": "adatum", "subtotal": "0.45", "total": "0.45"},
        {"number": None, "kind": "invoice", "issuer": "platform", "buyer": "litware", "subtotal": "0.20", "total": "0.20"},
        {"number": None, "kind": "invoice", "issuer": "platform", "buyer": "woodgrove", "subtotal": "2.00", "total": "2.00"}],
         comment="adatum: VM 2 + 2 = 4 vCore-hours x 0.05 = 0.20, IP 1 x 0.25 = 0.25 -> 0.45; woodgrove: 4 x 0.5 = 2.00; "
                 "litware: VM 4 x 0.05 = 0.20; every other meter is unpriced (VM size hours double count)"),
    call("issue_invoices", {"principal": OP, "at": "2025-04-01T06:00:00Z", "period": "2025-03"}, result=[
        {"number": "platform-000001", "buyer": "adatum", "total": "0.45", "due": "2025-05-01"},
        {"number": "platform-000002", "buyer": "litware", "total": "0.20", "due": "2025-05-01"},
        {"number": "platform-000003", "buyer": "woodgrove", "total": "2.00", "due": "2025-05-01"}]),
    {"reopen": True},
    call("commission_report", {"principal": OP, "period": "2025-04"}, result={
        "statements": [
            {"partner": "contoso", "base": "2.45", "commission": "0.25",
             "tenants": [{"tenant": "adatum", "amount": "0.05"}, {"tenant": "woodgrove", "amount": "0.20"}]},
            {"partner": "fabrikam", "base": "0.20", "commission": "0", "tenants": [{"tenant": "litware", "amount": "0"}]}],
        "overrides": [{"distributor": "northwind", "base": "2.45", "amount": "0.05",
                       "tenants": [{"tenant": "adatum", "amount": "0.01"}, {"tenant": "woodgrove", "amount": "0.04"}]}],
        "totals": [{"revenue": "2.65", "commissions": "0.25", "overrides": "0.05", "retained": "2.35"}]},
         comment="contoso: 10 % of 0.45 + 2.00 = 0.245 -> 0.25, shares 0.045 / 0.200 -> 0.04 + 0.20 and the remaining cent "
                 "to adatum (largest remainder); northwind: 2 % of 2.45 = 0.049 -> 0.05, shares 0.009 / 0.040 -> 0.00 + 0.04, "
                 "the cent to adatum; retained 2.65 - 0.25 - 0.05 = 2.35"),
    call("commission_report", {"principal": {"id": "operator", "node": "fabrikam"}, "period": "2025-04"},
         result={"statements": [{"partner": "fabrikam"}], "overrides": []},
         comment="a principal acting at fabrikam sees fabrikam's statement only"),
    call("price_chain", {"principal": OP, "subscription": S_ADATUM, "meter": VM, "quantity": "10", "at": "2025-03-15T00:00:00Z"},
         result=[{"seller": "platform", "buyer": "adatum", "list": "std", "currency": "USD", "amount": "0.5", "margin": "0.5"}],
         comment="agency: the platform sells to the tenant, 10 x 0.05"),
    call("estimate", {"principal": OP, "node": S_WOODGROVE, "items": [{"meter": SQL, "quantity": "100"}], "at": "2025-03-15T00:00:00Z"},
         comment="the calculator runs (its line shape is the core's EstimateLine)"),
    call("invoice_documents", {"principal": OP, "period": "2025-03"},
         result=[{"state": "issued", "tenant": "adatum"}, {"state": "issued", "tenant": "litware"}, {"state": "issued", "tenant": "woodgrove"}]),
    call("verify_documents", result={"intact": True, "altered": []}),
]
write("month.json", "A month of the sample Usage API page (../../data/azure-stack-hub-sample-usage.json) on a small channel: "
      "onboard, ingest, preview, issue, commission statements (hand-checked in the comments). Generated by make_calls.py.",
      [{"name": "the sample page as a month: invoices and commissions", "steps": month}])


# ---------------------------------------------------------------- operations.json: the rest of the facade on the sample month
# Same channel and page as month.json (figures hand-checked there: adatum 0.45 = 4 vCore-hours x 0.05 + 1 IP-hour x 0.25,
# woodgrove 2.00 = 4 x 0.5, litware 0.20 = 4 vCore-hours x 0.05), with litware's subscription onboarded through
# onboard_subscription instead of a node_added event.
FABRIKAM = {"id": "fay", "node": "fabrikam"}
CONTOSO = {"id": "carl", "node": "contoso"}
RISE = {"id": "rise-10", "scope": "all", "change": {"percent": "0.10"}, "effective": "2025-04-01T00:00:00Z",
        "scale": 4}
SHARED_OPS = {"cost_centres": {"adatum": "CC-ADA", "woodgrove": "CC-WOO", "litware": "CC-LIT", "platform": "CC-IT"},
              "shared": [{"id": "ops", "name": "Platform operations", "source": {"kind": "amount", "amount": "0.30", "currency": "USD"},
                          "method": {"kind": "even"}}]}
RETAIN = {"partners_create_tenants": True, "tenants_create_subscriptions": False, "minimum_margin": False,
          "invoice_visibility": ["platform_admin", "platform_reader", "partner_admin", "partner_reader", "tenant_admin", "tenant_reader"],
          "usage_retention_months": 1}
MARCH = {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}
ADATUM_LINES = [{"meter": IP, "quantity": "1", "amount": "0.25", "partner": "contoso", "distributor": "northwind"},
                {"meter": VM, "quantity": "4", "amount": "0.20", "partner": "contoso", "distributor": "northwind"}]
LITWARE_LINES = [{"meter": VM, "quantity": "4", "amount": "0.20", "partner": "fabrikam", "distributor": None}]
WOODGROVE_LINES = [{"meter": SQL, "quantity": "4", "amount": "2.00", "partner": "contoso", "distributor": "northwind"}]
MARCH_INVOICES = [{"issuer": "platform", "buyer": "adatum", "buyer_kind": "tenant", "period": MARCH, "total": "0.45", "lines": ADATUM_LINES},
                  {"issuer": "platform", "buyer": "litware", "buyer_kind": "tenant", "period": MARCH, "total": "0.20", "lines": LITWARE_LINES},
                  {"issuer": "platform", "buyer": "woodgrove", "buyer_kind": "tenant", "period": MARCH, "total": "2.00", "lines": WOODGROVE_LINES}]
CONTOSO_COMMISSION = {"partner": "contoso", "plan": "ten", "revenue": "2.45", "commission": "0.25",
                      "tenants": [{"tenant": "adatum", "revenue": "0.45"}, {"tenant": "woodgrove", "revenue": "2.00"}]}
FABRIKAM_COMMISSION = {"partner": "fabrikam", "plan": None, "revenue": "0.20", "commission": "0",
                       "tenants": [{"tenant": "litware", "revenue": "0.20"}]}
operations = [
    execute_all("2025-03-01T00:00:00Z", [event for event in channel if event.get("id") != S_LITWARE], result={"seq": 13},
                comment="month.json's channel without litware's subscription: 13 events"),
    call("onboard_subscription", {"principal": OP, "at": "2025-03-01T00:00:00Z", "id": S_LITWARE, "tenant": "litware",
                                  "name": "Litware web", "info": {"region": "local", "external_ids": []}},
         result={"seq": 15}, comment="one command, two events: the node and its attributes"),
    call("onboard_subscription", {"principal": OP, "at": "2025-03-01T00:00:00Z", "id": "s-x", "tenant": "tailspin", "name": "X"},
         error=err("unknown_node", 'unknown node "tailspin"')),
    call("onboard_subscription", {"principal": FABRIKAM, "at": "2025-03-01T00:00:00Z", "id": "s-y", "tenant": "adatum", "name": "Y"},
         error=err("unknown_node", 'unknown node "adatum"'), comment="adatum is in contoso's branch: not found from fabrikam"),
    call("subscriptions", {"principal": OP, "at": "2025-03-02T00:00:00Z"},
         result=[{"id": S_ADATUM, "kind": "subscription", "parent": "adatum", "depth": 4, "name": "Adatum production"},
                 {"id": S_WOODGROVE, "parent": "woodgrove", "depth": 4},
                 {"id": S_LITWARE, "parent": "litware", "depth": 3, "name": "Litware web",
                  "subscription": {"region": "local", "state": "enabled", "external_ids": []}}],
         comment="depth from the principal's scope: platform > northwind > contoso > adatum > subscription is 4, "
                 "platform > fabrikam > litware > subscription is 3"),
    call("subscriptions", {"principal": CONTOSO, "at": "2025-03-02T00:00:00Z"},
         result=[{"id": S_ADATUM, "depth": 2}, {"id": S_WOODGROVE, "depth": 2}], comment="contoso's branch only"),
    call("ingest_page", {"page": SAMPLE, "source": "azure-stack-hub-sample-usage.json"}, result={"received": 20, "stored": 20}),
    call("month_end_for", {"principal": OP, "period": "2025-03"},
         result={"period": MARCH, "invoices": MARCH_INVOICES, "commissions": [CONTOSO_COMMISSION, FABRIKAM_COMMISSION],
                 "overrides": [{"distributor": "northwind", "rate": "0.02", "revenue": "2.45", "amount": "0.05"}]},
         comment="month.json's figures; contoso 10 % of 2.45 = 0.245 -> 0.25; northwind 2 % of 2.45 = 0.049 -> 0.05"),
    call("month_end_for", {"principal": FABRIKAM, "period": "2025-03"},
         result={"invoices": [MARCH_INVOICES[1]], "commissions": [FABRIKAM_COMMISSION], "overrides": []},
         comment="fabrikam's branch: litware only, no override (northwind is not above it)"),
    call("tenant_month_end", {"principal": CONTOSO, "period": "2025-03"},
         result={"invoices": [MARCH_INVOICES[0], MARCH_INVOICES[2]], "commissions": [CONTOSO_COMMISSION], "overrides": []}),
    execute("2025-03-01T00:00:00Z", {"type": "chargeback_settings_set", "settings": SHARED_OPS}, result={"seq": 16}),
    call("showback", {"principal": OP, "period": "2025-03"},
         result={"period": "2025-03", "currency": "USD", "provider": "platform", "provider_cost_centre": "CC-IT",
                 "departments": [
                     {"tenant": "adatum", "cost_centre": "CC-ADA", "invoiced": "0.45", "direct": "0.45", "other": "0",
                      "projects": [{"subscription": S_ADATUM, "name": "Adatum production", "amount": "0.45"}],
                      "shared": [{"shared": "ops", "amount": "0.10"}], "total": "0.55"},
                     {"tenant": "litware", "cost_centre": "CC-LIT", "direct": "0.20",
                      "projects": [{"subscription": S_LITWARE, "amount": "0.20"}], "shared": [{"shared": "ops", "amount": "0.10"}],
                      "total": "0.30"},
                     {"tenant": "woodgrove", "cost_centre": "CC-WOO", "direct": "2.00",
                      "projects": [{"subscription": S_WOODGROVE, "amount": "2.00"}], "shared": [{"shared": "ops", "amount": "0.10"}],
                      "total": "2.10"}],
                 "shared": [{"id": "ops", "amount": "0.30", "shares": [{"tenant": "adatum", "amount": "0.10"},
                                                                        {"tenant": "litware", "amount": "0.10"},
                                                                        {"tenant": "woodgrove", "amount": "0.10"}]}],
                 "invoiced": "2.65", "overhead": "0.30", "reallocated": "0", "total": "2.95"},
         comment="0.30 of operations split evenly over the 3 departments: 0.10 each; 2.65 invoiced + 0.30 = 2.95"),
    call("chargeback_journal", {"principal": OP, "period": "2025-03"},
         result=[{"document": "CB-2025-03-adatum", "account": "6100", "cost_centre": "CC-ADA", "debit": "0.55", "credit": "0"},
                 {"document": "CB-2025-03-adatum", "account": "4900", "cost_centre": "CC-IT", "debit": "0", "credit": "0.55"},
                 {"document": "CB-2025-03-litware", "account": "6100", "cost_centre": "CC-LIT", "debit": "0.30", "credit": "0"},
                 {"document": "CB-2025-03-litware", "account": "4900", "cost_centre": "CC-IT", "debit": "0", "credit": "0.30"},
                 {"document": "CB-2025-03-woodgrove", "account": "6100", "cost_centre": "CC-WOO", "debit": "2.10", "credit": "0"},
                 {"document": "CB-2025-03-woodgrove", "account": "4900", "cost_centre": "CC-IT", "debit": "0", "credit": "2.10"}],
         comment="each department's total debited to expenses (6100) and credited to the provider's recovery (4900)"),
    call("reprocess", {"principal": OP, "period": "2025-03"},
         result={"closed": [], "drafts": [{"key": "2025-03/platform/adatum", "old": None, "new": "0.45"},
                                          {"key": "2025-03/platform/litware", "old": None, "new": "0.20"},
                                          {"key": "2025-03/platform/woodgrove", "old": None, "new": "2.00"}]},
         comment="no drafts were stored before"),
    call("drafts", {"principal": OP, "period": "2025-03"}, result=MARCH_INVOICES),
    call("drafts", {"principal": FABRIKAM, "period": "2025-03"}, result=[MARCH_INVOICES[1]]),
    execute("2025-03-01T00:00:00Z", {"type": "invoice_settings_set", "settings": {"thresholds": {"woodgrove": "1.50"}}},
            result={"seq": 17}),
    call("issue_interim", {"principal": OP, "at": "2025-03-20T00:00:00Z"},
         result=[{"number": "platform-000001", "kind": "interim", "buyer": "woodgrove", "period": "2025-03", "subtotal": "2.00",
                  "total": "2.00", "issued_at": "2025-03-20T00:00:00Z", "due": "2025-04-19"}],
         comment="woodgrove's running 2.00 crossed its 1.50 threshold; due 30 days after March 20th"),
    call("issue_interim", {"principal": OP, "at": "2025-03-21T00:00:00Z"}, result=[],
         comment="nothing new since: woodgrove's running amount beyond what is invoiced is 0"),
    call("issue_invoices", {"principal": OP, "at": "2025-04-01T06:00:00Z", "period": "2025-03"},
         result=[{"number": "platform-000002", "kind": "invoice", "buyer": "adatum", "total": "0.45"},
                 {"number": "platform-000003", "kind": "invoice", "buyer": "litware", "total": "0.20"}],
         comment="woodgrove is invoiced in full by its interim invoice: no balance to issue"),
    call("issued_in", {"principal": OP, "period": "2025-03"}, result=[{"number": "platform-000001", "buyer": "woodgrove"}],
         comment="documents issued in March: the interim one"),
    call("issued_in", {"principal": FABRIKAM, "period": "2025-03"}, result=[]),
    call("issued_in", {"principal": OP, "period": "2025-04"},
         result=[{"number": "platform-000002", "buyer": "adatum"}, {"number": "platform-000003", "buyer": "litware"}]),
    call("issued_in", {"principal": FABRIKAM, "period": "2025-04"}, result=[{"number": "platform-000003", "buyer": "litware"}]),
    call("issue_interim", {"principal": OP, "at": "2025-03-25T00:00:00Z"}, error=err("invalid_value", "the period is closed")),
    call("billing_rules", result={"mode": "half-away-from-zero", "scale": None, "price_double_counting": False},
         comment="the defaults: the currency's minor unit, half away from zero"),
    call("tenant_scope", {"tenant": "adatum"}, result={"nodes": ["adatum", S_ADATUM]}),
    call("tenant_scope", {"tenant": "contoso"}, error=err("unknown_node", 'unknown tenant "contoso"'), comment="a partner"),
    call("preview_change_set", {"principal": OP, "change_set": RISE},
         result={"change_set": "rise-10", "period": MARCH, "lists": ["std"],
                 "tenants": [{"id": "adatum", "old": "0.45", "new": "0.50", "change": "0.05"},
                             {"id": "litware", "old": "0.20", "new": "0.22", "change": "0.02"},
                             {"id": "woodgrove", "old": "2.00", "new": "2.20", "change": "0.20"}],
                 "partners": [{"id": "contoso", "old": "2.45", "new": "2.70", "change": "0.25"},
                              {"id": "fabrikam", "old": "0.20", "new": "0.22", "change": "0.02"}]},
         comment="+10 % on March (the last closed period): VM 0.055, IP 0.275, SQL 0.55; adatum 4 x 0.055 = 0.22 + 0.275 -> 0.28 "
                 "= 0.50; litware 0.22; woodgrove 4 x 0.55 = 2.20; contoso's network 0.50 + 2.20 = 2.70"),
    call("apply_change_set", {"principal": OP, "at": "2025-03-25T00:00:00Z", "change_set": RISE}, result={"seq": 22},
         comment="events 18-21: the interim document, March closed, two invoices"),
    call("price_chain", {"principal": OP, "subscription": S_ADATUM, "meter": VM, "quantity": "10", "at": "2025-04-15T00:00:00Z"},
         result=[{"list": "std", "amount": "0.55"}], comment="from April 1st: 10 x 0.055"),
    call("price_chain", {"principal": OP, "subscription": S_ADATUM, "meter": VM, "quantity": "10", "at": "2025-03-15T00:00:00Z"},
         result=[{"list": "std", "amount": "0.50"}], comment="March keeps its prices"),
    call("month_end_in", {"period": "2025-03", "prices_at": "2025-04-15T00:00:00Z"},
         result={"invoices": [{"buyer": "adatum", "total": "0.50"}, {"buyer": "litware", "total": "0.22"},
                              {"buyer": "woodgrove", "total": "2.20"}]},
         comment="March's usage at April's prices: the preview's figures"),
    call("month_end_in", {"period": "2025-03"},
         result={"invoices": [{"buyer": "adatum", "total": "0.45"}, {"buyer": "litware", "total": "0.20"},
                              {"buyer": "woodgrove", "total": "2.00"}]},
         comment="recomputed at the prices in effect in March"),
    call("scope_of", {"principal": CONTOSO}, result={"id": "contoso", "kind": "partner"}),
    call("scope_of", {"principal": OP}, result={"id": "platform", "kind": "platform"}),
    call("scope_of", {"principal": {"id": "x", "node": "ghost"}}, error=err("unknown_node", '"ghost"')),
    call("visible", {"principal": CONTOSO, "id": "adatum"}, result={"id": "adatum", "kind": "tenant"}),
    call("visible", {"principal": CONTOSO, "id": "litware"}, error=err("unknown_node", '"litware"'),
         comment="fabrikam's tenant: not found from contoso"),
    call("close_period", {"principal": OP, "at": "2025-05-01T00:00:00Z", "period": "2025-04"}),
    call("close_period", {"principal": OP, "at": "2025-06-01T00:00:00Z", "period": "2025-05"}),
    call("purge_usage", {"principal": OP, "at": "2025-06-02T00:00:00Z"}, result=[], comment="no retention policy: usage is kept"),
    execute("2025-06-02T00:00:00Z", {"type": "policies_set", "policies": RETAIN}, result={"seq": 25}),
    call("purge_usage", {"principal": OP, "at": "2025-06-02T00:00:00Z"}, result=[{"period": "2025-03", "deleted": 20}],
         comment="kept 1 month after March ends (May 1st) and beyond the 2-period look-back from May: purged; April is "
                 "still within the look-back"),
    call("purge_usage", {"principal": OP, "at": "2025-06-03T00:00:00Z"}, result=[], comment="once"),
    call("stored_usage", {"principal": OP, "period": "2025-03"}, result=[]),
    call("state", result={"closed_periods": ["2025-03", "2025-04", "2025-05"], "purged_periods": ["2025-03"],
                          "invoice_settings": {"thresholds": {"woodgrove": "1.50"}},
                          "chargeback": {"expense_account": "6100", "recovery_account": "4900"},
                          "policies": {"usage_retention_months": 1},
                          "sequences": {"platform": {"last": 3}},
                          "issued": {"platform-000001": {"kind": "interim", "buyer": "woodgrove"},
                                     "platform-000002": {"kind": "invoice", "buyer": "adatum"},
                                     "platform-000003": {"kind": "invoice", "buyer": "litware"}},
                          "channel": {"subscriptions": {S_LITWARE: {"region": "local"}}}}),
    call("refresh", result=None, comment="no other writer: nothing to apply"),
    {"reopen": True},
    call("export_audit",
         result={"head": {"seq": 15},
                 "records": [{"seq": 1, "command": "node_added (+12 more)", "outcome": "done", "events": [1, 13]},
                             {"seq": 2, "outcome": "done", "events": [14, 15]},
                             {"seq": 3, "command": "ingest", "actor": "ingest", "events": None},
                             {"seq": 4, "command": "chargeback_settings_set"}, {"seq": 5, "command": "invoice_settings_set"},
                             {"seq": 6, "command": "issue_interim", "events": [18, 18]},
                             {"seq": 7, "command": "issue_interim", "events": None},
                             {"seq": 8, "command": "period_closed"}, {"seq": 9, "command": "issue_invoices", "events": [20, 21]},
                             {"seq": 10, "command": "issue_interim", "outcome": "refused"},
                             {"seq": 11, "command": "change_set_applied", "events": [22, 22]},
                             {"seq": 12, "command": "period_closed"}, {"seq": 13, "command": "period_closed"},
                             {"seq": 14, "command": "policies_set"}, {"seq": 15, "command": "usage_purged", "events": [26, 26]}]},
         comment="one record per command, refusals included; the refused onboardings above were checked before the "
                 "command ran (not found) and are not recorded"),
    call("verify_audit", {"strict": True}, result={"broken": None, "records": 15, "events": 26}),
]
write("operations.json", "The rest of the facade on the sample month of month.json: onboarding, scoped month-ends, showback and "
      "chargeback, drafts and reprocessing, interim invoices, bulk price changes, retention, the state and the audit "
      "export. Written by make_calls.py.",
      [{"name": "the sample month, operated", "steps": operations}])


# ---------------------------------------------------------------- usage.json: ingestion rules and page errors
def rec(sub, start, end, quantity="1", meter=VM, uri="/r"):
    return {"subscription": sub, "meter": meter, "start": start, "end": end, "quantity": quantity,
            "resource_uri": uri, "location": "local"}


small = [node("p", "partner", None, "P"), node("t", "tenant", "p", "T"), node("s", "subscription", "t", "S"),
         price_list("std", {VM: tiered("1", "vCore-hours")}), {"type": "price_list_assigned", "scope": "default", "list": "std"}]
page_one = lambda props: json.dumps({"value": [{"id": "a", "properties": props}]})
good = {"subscriptionId": "s", "usageStartTime": "2025-03-10T05:00:00Z", "usageEndTime": "2025-03-10T06:00:00Z",
        "meterId": VM, "quantity": 1.5, "instanceData": "{\"Microsoft.Resources\":{\"resourceUri\":\"/r\",\"location\":\"east\"}}"}
usage = [
    {"name": "ingestion rules: duplicates, corrections, granularity, late usage beyond the look-back window",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", small),
        call("ingest_records", {"records": [rec("s", "2025-01-05T00:00:00Z", "2025-01-05T01:00:00Z", "2"),
                                            rec("s", "2025-01-05T00:00:00Z", "2025-01-05T01:00:00Z", "2"),
                                            rec("s", "2025-01-05T01:00:00Z", "2025-01-05T02:00:00Z", "3")]},
             result={"received": 3, "stored": 2, "duplicates": 1, "refused": []}),
        call("ingest_records", {"records": [rec("s", "2025-01-05T01:00:00Z", "2025-01-05T02:00:00Z", "4")], "origin": "fix.json"},
             result={"stored": 0, "corrections": [{"old_quantity": "3", "new_quantity": "4"}]}),
        call("ingest_records", {"records": [rec("s", "2025-01-06T00:00:00Z", "2025-01-07T00:00:00Z", "24")], "origin": "daily.json"},
             result={"stored": 0, "refused": [{"code": "mixed_granularity", "subscription": "s"}]},
             comment="January already holds hourly usage of s: a daily bucket would double count"),
        call("ingest_records", {"records": [rec("s", "2025-01-07T00:00:00Z", "2025-01-07T03:00:00Z")], "origin": "odd.json"},
             result={"refused": [{"code": "bad_interval"}]}, comment="three hours is neither an hourly nor a daily bucket"),
        call("month_end_report", {"period": "2025-01"}, result={"invoices": [{"buyer": "t", "total": "6.00"}]},
             comment="2 + 4 vCore-hours at 1.00"),
        call("close_period", {"principal": OP, "at": "2025-02-01T00:00:00Z", "period": "2025-01"}),
        call("close_period", {"principal": OP, "at": "2025-03-01T00:00:00Z", "period": "2025-02"}),
        call("close_period", {"principal": OP, "at": "2025-04-01T00:00:00Z", "period": "2025-03"}),
        call("close_period", {"principal": OP, "at": "2025-04-01T00:00:00Z", "period": "2025-03"},
             error=err("invalid_period", "already closed")),
        call("ingest_records", {"records": [rec("s", "2025-02-03T00:00:00Z", "2025-02-03T01:00:00Z", "5"),
                                            rec("s", "2025-01-20T00:00:00Z", "2025-01-20T01:00:00Z", "7")], "origin": "late.json"},
             result={"stored": 1, "late_adjustments": 1, "refused": [{"code": "late_usage_refused"}]},
             comment="look-back 2 periods from March: February is late and adjusted in April, January is refused"),
        call("ingest_records", {"records": [rec("s", "2025-04-01T00:00:00Z", "2025-04-01T01:00:00Z")],
                                "principal": {"id": "operator"}},
             error=err("bad_json", "ingest_records field at: bad JSON: required with principal")),
        call("checkpoints", result=[]),
     ]},
    {"name": "a Usage API page is refused whole when a record does not parse, naming page and record",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", small),
        call("ingest_page", {"page": page_one({**good, "quantity": -1}), "source": "page-7.json"},
             error=err("negative_quantity", "page-7.json record 0: negative quantity -1")),
        call("ingest_page", {"page": page_one({k: v for k, v in good.items() if k != "subscriptionId"}), "source": "page-7.json"},
             error=err("bad_record", "page-7.json record 0: bad record: properties.subscriptionId is missing")),
        call("ingest_page", {"page": page_one({**good, "usageEndTime": "2025-03-10T04:00:00Z"}), "source": "page-7.json"},
             error=err("bad_interval", "page-7.json record 0: usage interval ends at")),
        call("ingest_page", {"page": page_one({**good, "usageStartTime": "noon"}), "source": "page-7.json"},
             error=err("bad_timestamp", 'page-7.json record 0: bad timestamp "noon"')),
        call("ingest_page", {"page": page_one({**good, "meterId": "meterID1"}), "source": "page-7.json"},
             error=err("bad_meter_id", 'page-7.json record 0: bad meter id "meterID1"')),
        call("ingest_page", {"page": page_one({**good, "quantity": "1.5"}), "source": "page-7.json"},
             error=err("bad_decimal", "page-7.json record 0: bad decimal")),
        call("ingest_page", {"page": SAMPLE[:400], "source": "page-8.json"}, error=err("bad_json", "page-8.json: bad JSON")),
        call("ingest_page", {"page": page_one(good), "source": "page-9.json", "region": "east"},
             result={"received": 1, "stored": 1}, comment="the good record alone is stored (1.5 vCore-hours)"),
        call("parse_usage_page", {"page": page_one(good), "source": "p.json"},
             result={"records": [{"subscription": "s", "meter": VM, "start": "2025-03-10T05:00:00Z", "quantity": "1.5",
                                  "resource_uri": "/r", "location": "east"}], "next_link": None}),
     ]},
]
write("usage.json", "Usage ingestion through the facade: dedupe, corrections, one granularity per subscription and period, "
      "late usage and the look-back window, pages refused whole. Written by make_calls.py.", usage)


# ---------------------------------------------------------------- governance.json: roles, policies, audit
OTHER = {"id": "reader", "node": "t"}
governance = [
    {"name": "roles: a reader may read, not write; outside its subtree nothing exists; policies refuse",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", small + [node("t2", "tenant", "p", "T2")]),
        execute("2025-01-01T00:00:00Z", {"type": "role_assigned", "assignment": {"principal": "operator", "role": "platform_admin", "node": "platform"}}),
        execute("2025-01-01T00:00:00Z", {"type": "role_assigned", "assignment": {"principal": "reader", "role": "tenant_reader", "node": "t"}}),
        call("nodes", {"principal": OTHER, "at": "2025-01-02T00:00:00Z"},
             result=[{"id": "t", "kind": "tenant", "depth": 0}, {"id": "s", "kind": "subscription", "depth": 1}]),
        execute("2025-01-02T00:00:00Z", {"type": "node_renamed", "id": "t", "name": "Renamed"}, principal=OTHER,
                error=err("forbidden", "forbidden: reader may not")),
        call("node", {"principal": OTHER, "id": "t2", "at": "2025-01-02T00:00:00Z"}, error=err("unknown_node", 'unknown node "t2"'),
             comment="a sibling tenant is not found, not forbidden: no existence leak"),
        call("authorize_read", {"principal": OTHER, "action": "read_billing"}),
        execute("2025-01-02T00:00:00Z", {"type": "policies_set", "policies": {
            "partners_create_tenants": True, "tenants_create_subscriptions": False, "minimum_margin": False,
            "invoice_visibility": ["platform_admin", "platform_reader"]}}),
        call("authorize_read", {"principal": OTHER, "action": "read_billing"}, error=err("policy_refused", "invoice_visibility")),
        call("preview_invoices", {"principal": OTHER, "period": "2025-01"}, error=err("policy_refused", "invoice_visibility")),
        call("audit_records", {"principal": OTHER}, error=err("forbidden")),
        call("verify_audit", result={"broken": None}),
        call("verify_audit", {"expected_head": {"seq": 2, "hash": "0" * 64}, "strict": True},
             error=err("audit_broken", "audit trail broken at record"),
             comment="an exported head that the stored chain does not reach is a broken trail"),
     ]},
]
write("governance.json", "Roles, scoping, policies and the audit trail through the facade. Written by make_calls.py.", governance)


# ---------------------------------------------------------------- errors.json: the codes the others do not reach
two_currencies = [node("p", "partner", None, "P"), node("t", "tenant", "p", "T"), node("s", "subscription", "t", "S"),
                  price_list("usd", {VM: tiered("1", "vCore-hours")}),
                  price_list("eur", {IP: tiered("1", "IP-hours")}, currency="EUR"),
                  {"type": "price_list_assigned", "scope": {"node": "s"}, "list": "usd"},
                  {"type": "price_list_assigned", "scope": {"node": "t"}, "list": "eur"}]
errors = [
    {"name": "the channel's shape is checked: duplicate ids, wrong parents, unknown parents",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", small),
        execute("2025-01-01T00:00:00Z", node("t", "tenant", "p", "again"), error=err("duplicate_node", 'duplicate node id "t"')),
        execute("2025-01-01T00:00:00Z", node("t9", "tenant", "t", "under a tenant"), error=err("invalid_hierarchy", 'invalid hierarchy at "t9"')),
        execute("2025-01-01T00:00:00Z", node("t8", "tenant", "ghost", "lost"), error=err("unknown_node", '"ghost"')),
        call("nodes", {"principal": OP, "at": "2025-01-02T00:00:00Z"},
             result=[{"id": "platform"}, {"id": "p"}, {"id": "t"}, {"id": "s"}], comment="refused commands changed nothing"),
     ]},
    {"name": "price lists are checked as they are read: tiers start at zero and never overlap (inside an event, the check "
             "is part of reading its JSON; tiers.json has the tier_start and tier_overlap codes of the schedule itself)",
     "steps": [
        execute("2025-01-01T00:00:00Z", price_list("bad", {VM: {"unit": "h", "model": {"kind": "tiered", "mode": "graduated",
                "tiers": [{"from": "5", "rate": "1"}]}}}),
                error=err("bad_json", "execute field event: bad JSON: tiers of schedule must start at 0")),
        execute("2025-01-01T00:00:00Z", price_list("bad", {VM: {"unit": "h", "model": {"kind": "tiered", "mode": "graduated",
                "tiers": [{"from": "0", "rate": "1"}, {"from": "5", "rate": "2"}, {"from": "5.0", "rate": "3"}]}}}),
                error=err("bad_json", "two tiers start at 5")),
     ]},
    {"name": "one invoice never mixes currencies",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", two_currencies),
        call("ingest_records", {"records": [rec("s", "2025-01-05T00:00:00Z", "2025-01-05T01:00:00Z", "2", VM),
                                            rec("s", "2025-01-05T00:00:00Z", "2025-01-05T01:00:00Z", "3", IP)]},
             result={"stored": 2}),
        call("preview_invoices", {"principal": OP, "period": "2025-01"}, error=err("currency_mismatch", "mixes currencies")),
     ]},
    {"name": "amounts beyond 28 significant digits are an overflow, not a wrong number",
     "steps": [
        execute_all("2025-01-01T00:00:00Z", [node("p", "partner", None, "P"), node("t", "tenant", "p", "T"),
                                             node("s", "subscription", "t", "S"), price_list("std", {VM: tiered("2", "h")}),
                                             {"type": "price_list_assigned", "scope": "default", "list": "std"}]),
        call("estimate", {"principal": OP, "node": "s", "items": [{"meter": VM, "quantity": "79228162514264337593543950335"}],
                          "at": "2025-01-05T00:00:00Z"}, error=err("overflow")),
        call("price_chain", {"principal": OP, "subscription": "s", "meter": VM, "quantity": "3", "at": "2025-01-05T00:00:00Z"},
             result=[{"amount": "6"}]),
     ]},
    {"name": "a store that cannot be opened", "open": {"sqlite": "{scratch}/no/such/folder/cms.db"}, "open_error": err("store")},
]
write("errors.json", "Error codes the other call files do not reach. Written by make_calls.py.", errors)


# ---------------------------------------------------------------- region.json: pulling a stamp's Usage API
METADATA = {"path": "/metadata/endpoints", "status": 200,
            "body": json.dumps({"authentication": {"loginEndpoint": "{http}/login/", "audiences": ["https://management.stamp/1"]}})}
TOKEN = {"path": "/login/", "status": 200, "body": json.dumps({"access_token": "token-1", "token_type": "Bearer", "expires_in": 3600})}
PAGE = {"path": "/subscriptions/", "status": 200, "body": page_one(good)}
REGION = {"region": "east", "arm_endpoint": "{http}", "provider_subscription": "0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44",
          "tenant": "contoso.onmicrosoft.com", "client_id": "5b1d2c3e-0000-4000-8000-00000000c1d1", "client_secret": "not-a-secret",
          "start": "2025-03-10T00:00:00Z", "until": "2025-03-11T00:00:00Z", "allow_http": True, "max_attempts": 1}
region = [
    {"name": "a region pulled through its Usage API: discovery, token, one window, a checkpoint; a second pull resumes",
     "http": [METADATA, TOKEN, PAGE],
     "steps": [
        execute_all("2025-01-01T00:00:00Z", small),
        call("pull_region", REGION, result={"pages": 1, "received": 1, "stored": 1, "refused": [],
                                            "checkpoints": [{"region": "east", "reported_until": "2025-03-11T00:00:00Z"}]},
             comment="one day from 2025-03-10 in one window: one page with one record (1.5 vCore-hours of s)"),
        {"reopen": True},
        call("checkpoints", result=[{"region": "east", "subscriber": None, "granularity": "hourly", "reported_until": "2025-03-11T00:00:00Z"}]),
        call("pull_region", REGION, result={"pages": 0, "received": 0, "stored": 0}, comment="nothing after the checkpoint"),
        call("month_end_report", {"period": "2025-03"}, result={"invoices": [{"buyer": "t", "total": "1.50"}]}),
     ]},
    {"name": "a reply that is not the API's is an http error", "http": [{"path": "/metadata/endpoints", "status": 404, "body": "not a stamp"}],
     "steps": [call("pull_region", REGION, error=err("http", "HTTP 404"))]},
    {"name": "the identity provider refusing the client is an auth error",
     "http": [METADATA, {"path": "/login/", "status": 401, "body": json.dumps({"error": "invalid_client",
                                                                              "error_description": "AADSTS7000215: Invalid client secret provided."})}],
     "steps": [call("pull_region", REGION, error=err("auth", "authentication at"))]},
    {"name": "an error code of the Usage API is a usage_api error",
     "http": [METADATA, TOKEN, {"path": "/subscriptions/", "status": 400,
                                "body": json.dumps({"error": {"code": "InvalidProperty", "message": "reportedStartTime is not on an hour"}})}],
     "steps": [call("pull_region", REGION, error=err("usage_api", "InvalidProperty"))]},
]
write("region.json", "Pulling a stamp's provider Usage API through the facade, against canned replies (`http`: the runner serves "
      "them on 127.0.0.1; `{http}` is its URL). Written by make_calls.py.", region)


# ---------------------------------------------------------------- month_end.json: the month-end job on files
base = json.load(open(os.path.join(VECTORS, "month_end.json")))["cases"][0]
for folder, extra in [("workload", ""), ("workload-unpriced",
        "0bb4db71-be57-4209-851d-3d24f4c0cf83,00000000-0000-4000-8000-00000000beef,2026-10-07T00:00:00+00:00,"
        "2026-10-07T01:00:00+00:00,5.000000,/r,local\n")]:
    path = os.path.join(HERE, folder)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    for name, text in base["files"].items():
        with open(os.path.join(path, name), "w") as out:
            out.write(text + (extra if name == "usage.csv" else ""))
expect = base["expect"]
rows = lambda name: [line.split(",") for line in expect[name].strip().split("\n")[1:]]
total = sum(Decimal(row[1]) for row in rows("invoices.csv"))
usage_rows = len(base["files"]["usage.csv"].strip().split("\n")) - 1
summary = {"period": "2026-10", "usage_rows": usage_rows, "counted": usage_rows - 4, "duplicates": 2, "corrections": 0,
           "before_period": 1, "after_period": 1, "invoices": len(rows("invoices.csv")),
           "invoice_lines": len(rows("invoice_lines.csv")), "commission_statements": len(rows("commissions.csv")),
           "overrides": len(rows("overrides.csv")), "totals": {"USD": str(total)}, "unpriced": [], "threads": 1}
month_end = [
    {"name": "the month-end of the first month-end vector, from its files: the summary",
     "steps": [
        call("month_end", {"data": "{vectors}/calls/workload", "out": "{scratch}/out", "threads": 1}, result=summary,
             comment=f"{usage_rows} rows: 2 duplicates, 1 before and 1 after the period; invoices and lines as in month_end.json "
                     f"(DuckDB-checked), totals {total}"),
        call("month_end", {"data": "{vectors}/calls/workload", "out": "{scratch}/out2", "threads": 2}, result={**summary, "threads": 2}),
     ]},
    {"name": "unpriced usage is reported, or refused when strict",
     "steps": [
        call("month_end", {"data": "{vectors}/calls/workload-unpriced", "out": "{scratch}/out", "threads": 1},
             result={"unpriced": [{"subscription": "0bb4db71-be57-4209-851d-3d24f4c0cf83",
                                   "meter": "00000000-0000-4000-8000-00000000BEEF", "quantity": "5"}], "totals": {"USD": str(total)}}),
        call("month_end", {"data": "{vectors}/calls/workload-unpriced", "out": "{scratch}/strict", "strict": True},
             error=err("unpriced_meter", "usage row(s) of meter 00000000-0000-4000-8000-00000000BEEF have no price")),
     ]},
    {"name": "a missing data folder is an io error naming it",
     "steps": [call("month_end", {"data": "{scratch}/nowhere", "out": "{scratch}/out"}, error=err("io", "nowhere: cannot read: no such data folder")),
               call("month_end", {"data": "{vectors}/calls/workload", "out": "{scratch}/out", "threads": "two"},
                    error=err("bad_json", "month_end field threads: bad JSON: expected a non-negative integer"))]},
]
write("month_end.json", "The WORKLOAD.md month-end on files through the facade (`month_end`): the summary, unpriced usage, "
      "errors. Expected counts and totals come from ../month_end.json (DuckDB-checked). Written by make_calls.py.", month_end)
# ---------------------------------------------------------------- monitoring.json: budgets, alerts, the tick, the dashboard
PAT = {"id": "pat", "node": "p"}        # acting at partner p (its branch holds t and s)
ANN = {"id": "ann", "node": "q"}        # acting at partner q (another branch)
day1 = [rec("s", f"2025-10-01T{h:02d}:00:00Z", f"2025-10-01T{h + 1:02d}:00:00Z", "4", uri="/vm1") for h in range(10)]
day2 = [rec("s", f"2025-10-02T{h:02d}:00:00Z", f"2025-10-02T{h + 1:02d}:00:00Z", "4", uri="/vm2") for h in range(10)]
OCTOBER = {"start": "2025-10-01T00:00:00Z", "end": "2025-11-01T00:00:00Z"}   # a period as results spell it
NIGHTLY = {"pages": 1, "received": 3, "stored": 2, "duplicates": 0, "corrections": [], "excluded": 0, "late_adjustments": 0,
           "refused": [{"at": {"source": "nightly.json", "position": {"record": 2}}, "subscription": "s", "meter": VM,
                        "start": "2025-10-01T00:00:00Z", "code": "bad_interval", "message": "three hours is not a bucket"}],
           "unknown_meters": {}, "unknown_subscriptions": {}, "double_counting": 0, "by_period": {"2025-10": 2},
           "checkpoints": []}
monitoring = [
    {"name": "a budget crosses its forecast, then its warning; alerts open once, are scoped, acknowledged and resolve",
     "steps": [
        execute_all("2025-10-01T00:00:00Z", small + [node("q", "partner", None, "Q"), node("u", "tenant", "q", "U")],
                    result={"seq": 7}),
        call("closing_months", {"at": "2025-10-02T00:00:00Z"}, result=["2025-09"],
             comment="before any evaluation: the month before the instant's"),
        call("set_budget", {"principal": OP, "at": "2025-10-01T00:00:00Z",
                            "budget": {"id": "b-t", "node": "t", "amount": "100", "currency": "USD"}}, result={"seq": 8}),
        call("set_budget", {"principal": OP, "at": "2025-10-01T00:00:00Z",
                            "budget": {"id": "b-0", "node": "t", "amount": "0", "currency": "USD"}},
             error=err("invalid_value", "must be positive")),
        call("ingest_records", {"records": day1, "origin": "day1.json"}, result={"received": 10, "stored": 10, "refused": []},
             comment="October 1st, 00:00-10:00: 4 vCore-hours an hour on /vm1, at 1.00 = 40.00"),
        call("stored_usage", {"principal": PAT, "period": "2025-10"}, result=day1,
             comment="the stored records, as ingested, for a principal whose branch holds s"),
        call("stored_usage", {"principal": ANN, "period": "2025-10"}, result=[], comment="q's branch has no usage"),
        call("budget_statuses", {"principal": OP, "period": "2025-10", "at": "2025-10-02T00:00:00Z"},
             result=[{"budget": {"id": "b-t", "node": "t", "amount": "100", "warning_percent": "80", "breach_percent": "100"},
                      "period": OCTOBER, "actual": "40", "forecast": "1240", "percent": "40.00",
                      "forecast_percent": "1240.00", "state": "forecast_breach", "unconverted_lines": 0}],
             comment="one complete day at 40.00 is the run rate; 30 days remain: 40 + 30 x 40 = 1240, above the breach (100 %)"),
        call("findings", {"at": "2025-10-02T00:00:00Z"},
             result=[{"key": "budget_forecast:b-t:2025-10", "kind": "budget_forecast", "severity": "warning", "scope": "t",
                      "related": "b-t:2025-10"},
                     {"key": "ingestion_stale:local", "kind": "ingestion_stale", "severity": "critical", "scope": "platform",
                      "related": "local"}],
             comment="and region local's last usage ended at 10:00, 14 hours before: more than the 8 allowed"),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-02T00:00:00Z"},
             result=[{"id": 1, "change": "opened"}, {"id": 2, "change": "opened"}]),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-02T00:30:00Z"}, result=[],
             comment="found again: deduplicated while open"),
        call("alerts", {"principal": OP},
             result=[{"id": 1, "kind": "budget_forecast", "scope": "t", "status": "open", "first_seen": "2025-10-02T00:00:00Z",
                      "last_seen": "2025-10-02T00:30:00Z"},
                     {"id": 2, "kind": "ingestion_stale", "scope": "platform", "status": "open"}]),
        call("alerts", {"principal": PAT}, result=[{"id": 1, "kind": "budget_forecast"}],
             comment="partner p sees its branch's alert only"),
        call("alerts", {"principal": ANN}, result=[], comment="partner q sees neither"),
        call("acknowledge_alert", {"principal": ANN, "at": "2025-10-02T01:00:00Z", "id": 1},
             error=err("unknown_node", "alert"), comment="outside q's branch: not found"),
        call("acknowledge_alert", {"principal": PAT, "at": "2025-10-02T01:00:00Z", "id": 1, "note": "looking into it"}),
        call("acknowledge_alert", {"principal": PAT, "at": "2025-10-02T01:05:00Z", "id": 1},
             error=err("invalid_value", "only an open alert is acknowledged")),
        call("alerts", {"principal": OP},
             result=[{"id": 1, "status": "acknowledged", "acknowledged": ["pat", "2025-10-02T01:00:00Z"], "note": "looking into it"},
                     {"id": 2, "status": "open"}]),
        call("ingest_records", {"records": day2, "origin": "day2.json"}, result={"received": 10, "stored": 10},
             comment="October 2nd, 00:00-10:00 on /vm2 (another resource: no gap): 40.00 more"),
        call("budget_statuses", {"principal": PAT, "period": "2025-10", "at": "2025-10-02T12:00:00Z"},
             result=[{"actual": "80", "forecast": "1260", "percent": "80.00", "state": "warning"}],
             comment="80.00 reaches the 80 % warning; the run rate is still day 1's 40.00 (day 2 is not complete): "
                     "80 + 29.5 days x 40 = 1260"),
        call("budget_statuses", {"principal": ANN, "period": "2025-10", "at": "2025-10-02T12:00:00Z"}, result=[]),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-02T12:00:00Z"},
             result=[{"id": 2, "change": "resolved"}, {"id": 3, "change": "opened"}],
             comment="the warning opens (3); local's usage ended 2 hours ago: no longer stale (2 resolves); the forecast "
                     "alert (1) is still found and stays acknowledged"),
        call("resolve_alert", {"principal": OP, "at": "2025-10-02T12:10:00Z", "id": 1, "note": "budget under review"}),
        call("alerts", {"principal": OP}, result=[{"id": 3, "kind": "budget_warning", "status": "open"}]),
        call("alerts", {"principal": OP, "include_resolved": True},
             result=[{"id": 1, "status": "resolved", "resolved": ["operator", "2025-10-02T12:10:00Z"], "note": "budget under review"},
                     {"id": 2, "status": "resolved", "resolved": [None, "2025-10-02T12:00:00Z"]},
                     {"id": 3, "status": "open"}]),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-02T12:20:00Z"}, result=[{"id": 4, "change": "opened"}],
             comment="resolved by hand, yet still found: a new alert"),
        call("alerts", {"principal": OP}, result=[{"id": 3}, {"id": 4, "kind": "budget_forecast"}]),
        call("closing_months", {"at": "2025-10-03T00:00:00Z"}, result=[],
             comment="the latest evaluation (October 2nd, 12:20) came after September ended: nothing to check again"),
        call("closing_months", {"at": "2025-12-05T00:00:00Z"}, result=["2025-10", "2025-11"],
             comment="October and November ended after it: each is checked once as of its end, oldest first"),
        call("closing_months", {"at": "yesterday"}, error=err("bad_timestamp", "closing_months field at")),
        {"reopen": True},
        call("alerts", {"principal": OP}, result=[{"id": 3}, {"id": 4}], comment="alerts are events: they survive reopening"),
        call("dashboard", {"principal": PAT, "period": "2025-10", "at": "2025-10-02T12:00:00Z"},
             result={"scope": "p", "scope_name": "P", "period": OCTOBER, "month_to_date": [{"currency": "USD", "amount": "80"}],
                     "projection": [{"currency": "USD", "amount": "1260.00"}],
                     "top_tenants": [{"id": "t", "name": "T", "currency": "USD", "amount": "80"}],
                     "top_meters": [{"id": VM, "currency": "USD", "amount": "80"}],
                     "by_region": [{"id": "local", "currency": "USD", "amount": "80"}],
                     "by_day": [{"day": "2025-10-01", "currency": "USD", "amount": "40"},
                                {"day": "2025-10-02", "currency": "USD", "amount": "40"}],
                     "regions": [], "alerts": [{"id": 3}, {"id": 4}], "budgets": [{"state": "warning"}]},
             comment="p's branch; region health is for platform principals only"),
        call("dashboard", {"principal": ANN, "period": "2025-10", "at": "2025-10-02T12:00:00Z"},
             result={"scope": "q", "month_to_date": [], "top_tenants": [], "alerts": [], "budgets": []}),
     ]},
    {"name": "ingestion outside the scheduler is a job run; refused records raise an alert that a clean run resolves",
     "steps": [
        execute_all("2025-10-01T00:00:00Z", small, result={"seq": 5}),
        call("record_ingestion", {"principal": OP, "at": "2025-10-01T02:00:00Z", "source": "nightly", "summary": NIGHTLY},
             result={"seq": 6}),
        call("job_runs", {"principal": OP},
             result=[{"key": "ingest:nightly:2025-10-01T02:00:00+00:00", "job": "ingest", "source": "nightly",
                      "started": "2025-10-01T02:00:00Z", "finished": "2025-10-01T02:00:00Z", "outcome": "done",
                      "counts": {"refused": 1, "stored": 2}}]),
        call("job_runs", {"principal": PAT}, error=err("unknown_node", "platform"),
             comment="job runs are the platform's: a partner is told it is not found"),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-01T02:00:00Z"}, result=[{"id": 1, "change": "opened"}]),
        call("alerts", {"principal": OP}, result=[{"id": 1, "kind": "refused_records", "scope": "platform", "related": "ingest:nightly"}]),
        call("record_ingestion", {"principal": OP, "at": "2025-10-01T03:00:00Z", "source": "nightly",
                                  "summary": {**NIGHTLY, "received": 2, "refused": []}}),
        call("evaluate_alerts", {"principal": OP, "at": "2025-10-01T03:00:00Z"}, result=[{"id": 1, "change": "resolved"}]),
        call("job_runs", {"principal": OP, "limit": 1}, result=[{"key": "ingest:nightly:2025-10-01T03:00:00+00:00"}]),
        call("record_ingestion", {"principal": OP, "at": "2025-10-01T03:00:00Z", "source": "nightly", "summary": {"received": "2"}},
             error=err("bad_json", "record_ingestion field summary")),
     ]},
    {"name": "tick runs what is due once per slot, records each run, and returns alert changes to deliver",
     "steps": [
        execute_all("2025-10-01T00:00:00Z", small, result={"seq": 5}),
        call("tick", {"principal": OP, "at": "2025-10-02T14:00:00Z"},
             result={"at": "2025-10-02T14:00:00Z",
                     "runs": [{"key": "draft:2025-09", "outcome": "done", "counts": {"drafts": 0}},
                              {"key": "purge:2025-10-02", "outcome": "done"},
                              {"key": "evaluate:2025-10-02T14:00:00+00:00", "outcome": "done"}],
                     "skipped": [], "alert_changes": [], "delivery_failures": [], "deliveries": []},
             comment="no regions given: September is drafted (nothing to bill), retention runs, alerts are evaluated"),
        call("tick", {"principal": OP, "at": "2025-10-02T14:00:00Z"},
             result={"runs": [], "skipped": ["draft:2025-09", "purge:2025-10-02", "evaluate:2025-10-02T14:00:00+00:00"],
                     "deliveries": []},
             comment="the same instant again: nothing runs twice"),
        call("tick", {"principal": OP, "at": "2025-10-02T15:00:00Z",
                      "regions": [{"region": "east", "arm_endpoint": "http://127.0.0.1:9", "provider_subscription": "p-sub",
                                   "tenant": "t", "client_id": "c", "client_secret": "x", "start": "2025-10-01T00:00:00Z",
                                   "allow_http": True, "max_attempts": 1}]},
             result={"runs": [{"key": "pull:east:2025-10-02T15:00:00+00:00", "outcome": "failed", "code": "http"},
                              {"key": "evaluate:2025-10-02T15:00:00+00:00", "outcome": "done"}],
                     "skipped": ["draft:2025-09", "purge:2025-10-02"],
                     "alert_changes": [[1, "opened"]],
                     "deliveries": [{"change": "opened", "alert": {"id": 1, "kind": "job_failure", "severity": "critical",
                                                                   "related": "pull:east", "status": "open"}}]},
             comment="a stamp that refuses connections (port 9): the pull fails, is recorded, and raises a job failure "
                     "alert, returned for the caller to deliver"),
        call("tick", {"principal": OP, "at": "2025-10-02T16:00:00Z", "regions": [{"region": "east"}]},
             error=err("bad_json", "tick regions[0] field arm_endpoint: bad JSON: required, missing")),
        call("job_runs", {"principal": OP, "limit": 2},
             result=[{"key": "evaluate:2025-10-02T15:00:00+00:00"}, {"key": "pull:east:2025-10-02T15:00:00+00:00"}]),
     ]},
]
write("monitoring.json", "Monitoring through the facade: budgets (statuses and forecasts hand-checked in the comments), alerts "
      "(opened once, scoped to a branch, acknowledged, resolved), ingestion runs, the scheduler's tick and the dashboard. "
      "Written by make_calls.py.", monitoring)

# ---------------------------------------------------------------- ../concurrency.json: a case file of concurrent writers
# Case files are evaluated by the library (evaluate_vector), in every language alike; the runners compare its JSON
# result or error code. Here a rival engine on the same SQLite file commits before each of the session's first
# `rival_commits` audited writes, so the store refuses them (a stale head): a real optimistic-concurrency conflict.
def partner(id):
    return node(id, "partner", None, id.title())


concurrency = [
    {"kind": "concurrent_writers", "name": "a rival that always commits first outlasts the retries: conflict",
     "rival_commits": 1000, "call": execute("2025-01-01T00:00:00Z", partner("contoso")),
     "expect": {"error": err("conflict", "other writers kept committing first")}},
    {"kind": "concurrent_writers", "name": "a command planned again after each rival commit succeeds on the fresh state",
     "rival_commits": 3, "call": execute("2025-01-01T00:00:00Z", partner("contoso")),
     "expect": {"result": {"seq": 4}, "attempts": 4, "rival_commits": 3,
                "audit": {"broken": None, "events": 4, "records": 4}},
     "comment": "3 refused attempts (each after a rival command: events 1-3), the 4th commits event 4; the refused "
                "attempts stored nothing: 4 events, 4 audit records, the chain intact"},
    {"kind": "concurrent_writers", "name": "an ingestion retried after rival commits stores its usage once",
     "rival_commits": 2, "call": call("ingest_records", {"records": [rec("s", "2025-01-05T00:00:00Z", "2025-01-05T01:00:00Z", "2")]}),
     "expect": {"result": {"received": 1, "stored": 1, "duplicates": 0}, "attempts": 3, "rival_commits": 2,
                "audit": {"broken": None, "events": 2, "records": 3}},
     "comment": "the usage write and its audit record are one transaction: the 2 refused attempts left no record behind"},
    {"kind": "concurrent_writers", "name": "a refused command under contention is still refused for its own reason",
     "rival_commits": 2, "call": execute("2025-01-01T00:00:00Z", node("t", "tenant", "ghost", "T")),
     "expect": {"error": err("unknown_node", '"ghost"')},
     "comment": "its refusal is audited: that write is retried after the rival's commits like any other"},
    {"kind": "concurrent_writers", "name": "the call is checked as any call", "rival_commits": "many",
     "call": execute("2025-01-01T00:00:00Z", partner("contoso")),
     "expect": {"error": err("bad_json", "evaluate_vector field case.rival_commits: bad JSON: expected a non-negative integer")}},
]
with open(os.path.join(VECTORS, "concurrency.json"), "w") as out:
    json.dump({"description": "Concurrent writers on one SQLite file (kind concurrent_writers, evaluated by the library's "
               "evaluate_vector): optimistic-concurrency conflicts, retries, and what a refused attempt leaves behind "
               "(nothing). Written by calls/make_calls.py.", "cases": concurrency}, out, indent=1)
    out.write("\n")

print("wrote", sorted(f for f in os.listdir(HERE) if f.endswith(".json")))
