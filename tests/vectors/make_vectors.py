"""Writes the conformance vectors of this folder. Month-end expectations come from the DuckDB peer
(../shared/bench/peer_duckdb.py, an independent oracle), the half-even case is edited by hand from it,
every other expectation is written here by hand.

usage: python3 tests/vectors/make_vectors.py   (needs duckdb; run from anywhere)
"""
import json, os, subprocess, shutil, sys, tempfile
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable
PEER = os.path.join(ROOT, '..', 'shared', 'bench', 'peer_duckdb.py')
SCRATCH = tempfile.mkdtemp(prefix='cms-vectors-')
M1='FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5'
M2='F271A8A3-88C4-4D93-956A-063E1D2FA80B'
M3='3023FEF4-ECA5-4D7B-87B3-CFBC061931E8'
S1='0bb4db71-be57-4209-851d-3d24f4c0cf83'
S2='8b4ae5f1-a941-46a0-956a-26afbccdafe5'
S3='62f90a94-5f56-43c6-8227-6ad5ab2da739'
S4='11111111-2222-4333-8444-555555555555'
HIER="node_id,parent_id,kind\ndist-a,,distributor\ndist-b,,distributor\npartner-x,dist-a,partner\npartner-y,dist-a,partner\npartner-z,dist-b,partner\nt1,partner-x,tenant\nt2,partner-x,tenant\nt3,partner-y,tenant\nt4,partner-z,tenant\n"
SUBS=f"subscription_id,tenant_id\n{S1},t1\n{S2},t2\n{S3},t3\n{S4},t4\n"
PRICES=f"meter_id,unit,tier_from,unit_price\n{M1},vcore-hours,0,0.008\n{M1},vcore-hours,100,0.005\n{M2},IP-hours,0,0.004\n{M3},GB,0,0\n{M3},GB,5,0.087\n"
COMM="revenue_from,rate\n0,0.05\n1,0.07\n2,0.10\n"
PLAN=json.dumps({"month":"2026-10","rounding":"half-away-from-zero","scale":2,"distributor_override_rate":"0.02"},indent=1)
def row(sub, meter, start, end, q, uri, loc='local'):
    return f"{sub},{meter},{start},{end},{q},{uri},{loc}\n"
H='+00:00'
def hour(d,h): return f"2026-10-{d:02d}T{h:02d}:00:00{H}"
U="subscription_id,meter_id,usage_start_time,usage_end_time,quantity,resource_uri,location\n"
u=U
uri1=f"/subscriptions/{S1}/resourceGroups/rg0/providers/Microsoft.Compute/virtualMachines/vm-0"
uri2=f"/subscriptions/{S2}/resourceGroups/rg0/providers/Microsoft.Network/publicIPAddresses/ip-0"
uri3=f"/subscriptions/{S3}/resourceGroups/rg0/providers/Microsoft.Storage/storageAccounts/sa"
uri4=f"/subscriptions/{S4}/resourceGroups/rg0/providers/Microsoft.Compute/virtualMachines/vm-9"
# s1: 60 hours x 2 vcores on M1 (=120 -> crosses tier at 100): 100*0.008 + 20*0.005 = 0.9
for h in range(12): u+=row(S1, M1 if h%3 else M1.replace('-','').lower(), hour(1, h), hour(1, h+1), "10.000000", uri1)
# exact duplicate of hour 5, and a late record from September, and a record starting Nov 1 00:00 (next period)
u+=row(S1, M1, hour(1,5), hour(1,6), "10.000000", uri1)
u+=row(S1, M1, f"2026-09-30T23:00:00{H}", hour(1,0), "10.000000", uri1)
u+=row(S1, M1, "2026-11-01T00:00:00+00:00", "2026-11-01T01:00:00+00:00", "10.000000", uri1)
# s2: static IP: 31.25 IP-hours -> 0.125 -> 0.13 half away from zero
u+=row(S2, M2, hour(2,0), hour(2,1), "31.250000", uri2)
# s3: egress 7.5 GB: first 5 free, 2.5*0.087 = 0.2175 -> 0.22; split into 3 rows, one duplicated
u+=row(S3, M3, hour(3,0), hour(3,1), "2.500000", uri3)
u+=row(S3, M3, hour(3,1), hour(3,2), "2.500000", uri3)
u+=row(S3, M3, hour(3,2), hour(3,3), "2.500000", uri3)
u+=row(S3, M3, hour(3,2), hour(3,3), "2.500000", uri3)
# s3 also uses M2 under the 5 GB ... small IP usage 0.5 -> 0.002 -> 0.00 (a zero line)
u+=row(S3, M2, hour(4,0), hour(4,1), "0.500000", uri3)
# s4 under dist-b: 250 vcore hours -> 100*0.008+150*0.005 = 1.55
u+=row(S4, M1, hour(5,0), hour(5,1), "250.000000", uri4)
# an offset timestamp: 2026-10-05T23:30-00:30 local = 2026-10-06... keep hourly
u+=row(S4, M1, "2026-10-06T01:00:00+01:00", "2026-10-06T02:00:00+01:00", "1.000000", uri4)
cases=[]
def files(usage, hier=HIER, subs=SUBS, prices=PRICES, comm=COMM, plan=PLAN):
    return {"hierarchy.csv":hier,"subscriptions.csv":subs,"prices.csv":prices,"commission.csv":comm,"plan.json":plan,"usage.csv":usage}
def expect_from_duckdb(f):
    d=os.path.join(SCRATCH, 'case'); shutil.rmtree(d, ignore_errors=True); shutil.rmtree(d+'-out', ignore_errors=True); os.makedirs(d)
    for k,v in f.items(): open(f'{d}/{k}','w').write(v)
    subprocess.run([PY,PEER,d,d+'-out'],check=True,capture_output=True)
    return {k: open(f'{d}-out/{k}').read() for k in ["invoice_lines.csv","invoices.csv","commissions.csv","overrides.csv"]}
f=files(u)
cases.append({"kind":"month_end","name":"channel of two distributors: tiers crossed, duplicates, late and next-period rows, midpoint rounding, free tier, offsets","files":f,"expect":expect_from_duckdb(f)})

base = cases[0]
out_dir = HERE
# --- month_end.json
def replace(expect, name, old, new):
    e = dict(expect); assert old in e[name], (name, old); e[name] = e[name].replace(old, new); return e
half_even = dict(base["expect"])
half_even = replace(half_even, "invoice_lines.csv", "31.250000,0.13", "31.250000,0.12")
half_even = replace(half_even, "invoices.csv", "t2,0.13", "t2,0.12")
half_even = replace(half_even, "commissions.csv", "partner-x,1.03,0.05", "partner-x,1.02,0.05")
half_even = replace(half_even, "overrides.csv", "dist-a,1.25,0.03", "dist-a,1.24,0.02")
plan_even = json.dumps({"month":"2026-10","rounding":"half-even","scale":2,"distributor_override_rate":"0.02"},indent=1)
cases.append({"kind":"month_end","name":"half-even rounding: 0.125 -> 0.12, 1.555 -> 1.56, override 0.0248 -> 0.02 (hand-checked)",
              "files":files(u, plan=plan_even),"expect":half_even})
M9 = '00000000-0000-4000-8000-00000000beef'
u_unpriced = u + row(S1, M9, hour(7,0), hour(7,1), "5.000000", uri1)
cases.append({"kind":"month_end","name":"usage of a meter no price prices is not billed and is reported",
              "files":files(u_unpriced),"expect":dict(base["expect"], unpriced=[[S1, M9.upper(), "5.000000"]])})
def err(name, code, contains, **changes):
    f = files(u); f.update(changes)
    cases.append({"kind":"month_end","name":name,"files":f,"expect":{"error":{"code":code,"message_contains":contains}}})
lines = u.splitlines(True)
def usage_with(line_no, text):
    l = list(lines); l[line_no-1] = text; return "".join(l)
err("a quantity with a comma is a bad decimal naming its line", "bad_decimal", 'usage.csv line 3: bad decimal "2,5" in quantity',
    **{"usage.csv": usage_with(3, lines[2].replace("10.000000",'"2,5"'))})
err("a missing column is a bad header", "bad_header", 'prices.csv line 1: bad header: expected column "unit_price"',
    **{"prices.csv": PRICES.replace("unit_price","price")})
err("usage of a subscription not in subscriptions.csv", "unknown_subscription", 'usage.csv line 2: unknown subscription "99999999',
    **{"usage.csv": usage_with(2, lines[1].replace(S1, "99999999-0000-4000-8000-000000000000", 1))})
err("a start time that is not a timestamp", "bad_timestamp", 'usage.csv line 4: bad timestamp "yesterday" in usage_start_time',
    **{"usage.csv": usage_with(4, lines[3].replace(hour(1,2), "yesterday", 1))})
err("a meter id that is not a GUID", "bad_meter_id", 'usage.csv line 5: bad meter id "vm-hours"',
    **{"usage.csv": usage_with(5, lines[4].replace(M1.replace('-','').lower(), "vm-hours"))})
err("a negative quantity", "negative_quantity", 'usage.csv line 6: negative quantity -10.000000',
    **{"usage.csv": usage_with(6, lines[5].replace(",10.000000,", ",-10.000000,"))})
err("an interval that ends before it starts", "bad_interval", 'usage.csv line 7: usage interval ends at',
    **{"usage.csv": usage_with(7, f"{S1},{M1},{hour(2,5)},{hour(2,4)},1.000000,{uri1},local\n")})
err("a row with a missing field", "bad_record", 'usage.csv line 8: bad record: 6 fields where the header has 7',
    **{"usage.csv": usage_with(8, f"{S1},{M1},{hour(2,5)},{hour(2,6)},1.000000,{uri1}\n")})
err("two tiers of one meter start at the same amount", "tier_overlap", "tiers of meter FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5 in price list prices overlap",
    **{"prices.csv": PRICES + f"{M1},vcore-hours,100.0,0.004\n"})
err("commission bands must start at zero", "tier_start", "tiers of commission plan commission must start at 0 (first tier starts at 10)",
    **{"commission.csv": "revenue_from,rate\n10,0.05\n"})
err("a subscription of a tenant that does not exist", "unknown_node", 'unknown tenant "t9" (subscriptions.csv line 3)',
    **{"subscriptions.csv": SUBS.replace(f"{S2},t2", f"{S2},t9")})
err("a tenant under a tenant", "invalid_hierarchy", 'invalid hierarchy at "t2": a tenant cannot sit under a tenant (t1) (hierarchy.csv line 8)',
    **{"hierarchy.csv": HIER.replace("t2,partner-x,tenant", "t2,t1,tenant")})
err("a node id used twice", "duplicate_node", 'duplicate node id "t1" (hierarchy.csv line 11)',
    **{"hierarchy.csv": HIER + "t1,partner-y,tenant\n"})
err("an unknown rounding rule", "invalid_value", 'plan.json field rounding: invalid value "up"',
    **{"plan.json": PLAN.replace("half-away-from-zero", "up")})
err("a month that does not exist", "invalid_value", 'plan.json field month: invalid value "2026-13"',
    **{"plan.json": PLAN.replace("2026-10", "2026-13")})
err("a plan that is not JSON", "bad_json", 'plan.json: bad JSON', **{"plan.json": PLAN[:-3]})
os.makedirs(out_dir, exist_ok=True)
json.dump({"description":"Month-end of bench/WORKLOAD.md on small inline inputs: expected outputs byte for byte (checked against the DuckDB peer, half-even case by hand), or the error code and a fragment of the message.","cases":cases}, open(f'{out_dir}/month_end.json','w'), indent=1)

# --- tiers.json
tiers = {"description":"Tier math shared by prices and commission bands: exact amount (unrounded) and amount per band, compared as numbers: written in normalised text (no trailing zeros).","cases":[
 {"kind":"tier_amount","name":"graduated below the first breakpoint","mode":"graduated","tiers":[["0","0.008"],["5000","0.0072"],["20000","0.0065"]],"quantity":"100","expect":{"amount":"0.8","bands":["0.8"]}},
 {"kind":"tier_amount","name":"graduated exactly on a breakpoint stays in the lower band","mode":"graduated","tiers":[["0","0.008"],["5000","0.0072"]],"quantity":"5000","expect":{"amount":"40","bands":["40"]}},
 {"kind":"tier_amount","name":"graduated across three bands","mode":"graduated","tiers":[["0","0.008"],["5000","0.0072"],["20000","0.0065"]],"quantity":"21000","expect":{"amount":"154.5","bands":["40","108","6.5"]}},
 {"kind":"tier_amount","name":"a free first tier","mode":"graduated","tiers":[["0","0"],["5","0.087"]],"quantity":"7.5","expect":{"amount":"0.2175","bands":["0","0.2175"]}},
 {"kind":"tier_amount","name":"zero quantity","mode":"graduated","tiers":[["0","0.008"],["5000","0.0072"]],"quantity":"0","expect":{"amount":"0","bands":["0"]}},
 {"kind":"tier_amount","name":"volume on a breakpoint uses the lower band","mode":"volume","tiers":[["0","0.008"],["5000","0.0072"]],"quantity":"5000","expect":{"amount":"40","bands":["40"]}},
 {"kind":"tier_amount","name":"volume above a breakpoint prices every unit at the band reached","mode":"volume","tiers":[["0","0.008"],["5000","0.0072"]],"quantity":"5001","expect":{"amount":"36.0072","bands":["36.0072"]}},
 {"kind":"tier_amount","name":"marginal commission bands on a revenue","mode":"graduated","tiers":[["0","0.05"],["10000","0.07"],["50000","0.10"]],"quantity":"60000.00","expect":{"amount":"4300","bands":["500","2800","1000"]}},
 {"kind":"tier_amount","name":"whole-amount commission","mode":"volume","tiers":[["0","0.05"],["10000","0.07"]],"quantity":"12000.00","expect":{"amount":"840","bands":["840"]}},
 {"kind":"tier_amount","name":"tiers given out of order are sorted","mode":"graduated","tiers":[["100","0.005"],["0","0.008"]],"quantity":"120","expect":{"amount":"0.9","bands":["0.8","0.1"]}},
 {"kind":"tier_amount","name":"no tier from zero","mode":"graduated","tiers":[["5","0.087"]],"quantity":"7","expect":{"error":{"code":"tier_start","message_contains":"must start at 0 (first tier starts at 5)"}}},
 {"kind":"tier_amount","name":"no tiers at all","mode":"graduated","tiers":[],"quantity":"7","expect":{"error":{"code":"tier_start","message_contains":"first tier starts at none"}}},
 {"kind":"tier_amount","name":"two tiers from the same amount","mode":"volume","tiers":[["0","1"],["5","2"],["5.00","3"]],"quantity":"7","expect":{"error":{"code":"tier_overlap","message_contains":"two tiers start at 5.00"}}},
]}
json.dump(tiers, open(f'{out_dir}/tiers.json','w'), indent=1)
rounding = {"description":"Rounding of shown amounts: result printed at exactly `scale` decimals.","cases":[
 {"kind":"round","amount":a,"scale":sc,"mode":m,"expect":{"value":v}} for a,sc,m,v in [
  ("0.125",2,"half-away-from-zero","0.13"),("0.125",2,"half-even","0.12"),("0.135",2,"half-even","0.14"),
  ("-0.125",2,"half-away-from-zero","-0.13"),("-0.125",2,"half-even","-0.12"),("1.555",2,"half-away-from-zero","1.56"),
  ("0",2,"half-away-from-zero","0.00"),("1.5",2,"half-even","1.50"),("2.5",0,"half-even","2"),("2.5",0,"half-away-from-zero","3"),
  ("0.0004999",3,"half-away-from-zero","0.000"),("0.0005",3,"half-away-from-zero","0.001"),("123.4567890123",4,"half-even","123.4568")]]}
json.dump(rounding, open(f'{out_dir}/rounding.json','w'), indent=1)
meters = {"description":"Meter ids compare case-insensitively with or without dashes; canonical form is upper-case 8-4-4-4-12. `known` tells whether the compiled catalogue has it.","cases":[
 {"kind":"meter_id","input":i,"expect":e} for i,e in [
  ("09f8879e-87e9-4305-a572-4b7be209f857",{"canonical":"09F8879E-87E9-4305-A572-4B7BE209F857","known":True,"name":"BlockBlobCapacity"}),
  ("F271A8A388C44D93956A063E1D2FA80B",{"canonical":"F271A8A3-88C4-4D93-956A-063E1D2FA80B","known":True,"name":"Static IP Address Usage"}),
  ("f271a8a388c44d93956a063e1d2fa80b",{"canonical":"F271A8A3-88C4-4D93-956A-063E1D2FA80B","known":True,"name":"Static IP Address Usage"}),
  ("6DAB500F-A4FD-49C4-956D-229BB9C8C793",{"canonical":"6DAB500F-A4FD-49C4-956D-229BB9C8C793","known":True,"name":"VM size hours"}),
  ("00000000-0000-4000-8000-00000000beef",{"canonical":"00000000-0000-4000-8000-00000000BEEF","known":False}),
  ("meterID1",{"error":{"code":"bad_meter_id"}}),
  ("09f8879e-87e9-4305-a572-4b7be209f85",{"error":{"code":"bad_meter_id"}}),
  ("{09f8879e-87e9-4305-a572-4b7be209f857}",{"error":{"code":"bad_meter_id"}}),
  ("09f8879e87e9-4305-a572-4b7be209f8570",{"error":{"code":"bad_meter_id"}})]]}
json.dump(meters, open(f'{out_dir}/meter_ids.json','w'), indent=1)
times = {"description":"Timestamps are UTC instants: offsets are converted, never dropped; no offset means UTC.","cases":[
 {"kind":"timestamp","input":i,"expect":e} for i,e in [
  ("2026-10-01T00:00:00+00:00",{"utc":"2026-10-01T00:00:00Z"}),("2026-10-01T00:00:00-08:00",{"utc":"2026-10-01T08:00:00Z"}),
  ("2026-10-01T09:30:00+01:30",{"utc":"2026-10-01T08:00:00Z"}),("2026-10-01T08:00:00Z",{"utc":"2026-10-01T08:00:00Z"}),
  ("2026-10-01T08:00:00",{"utc":"2026-10-01T08:00:00Z"}),("2026-10-01T08:00:00.000Z",{"utc":"2026-10-01T08:00:00Z"}),
  ("2025-03-10T12:00:00-07:00",{"utc":"2025-03-10T19:00:00Z"}),
  ("2026-02-30T00:00:00Z",{"error":{"code":"bad_timestamp"}}),("noon",{"error":{"code":"bad_timestamp"}}),
  ("2026-10-01T24:00:00Z",{"error":{"code":"bad_timestamp"}})]]}
json.dump(times, open(f'{out_dir}/timestamps.json','w'), indent=1)

# --- usage_pages.json
from datetime import datetime, timezone
sample = open(os.path.join(ROOT, 'tests', 'data', 'azure-stack-hub-sample-usage.json')).read()
def utc(t): return datetime.fromisoformat(t).astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
def canon(m):
    h=m.replace('-','').upper(); return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
d = json.loads(sample, parse_float=lambda s: s, parse_int=lambda s: s)
records=[]
for r in d['value']:
    p=r['properties']; inst=json.loads(p['instanceData'])['Microsoft.Resources']
    records.append([p['subscriptionId'], canon(p['meterId']), utc(p['usageStartTime']), utc(p['usageEndTime']), p['quantity'], inst['resourceUri'], inst['location']])
def one(props):
    return json.dumps({"value":[{"id":"a","properties":{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00+00:00","usageEndTime":"2025-03-10T14:00:00+00:00","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1.0,"instanceData":None}},{"id":"b","properties":props}]})
good={"subscriptionId":"s","usageStartTime":"2025-03-10T05:00:00-08:00","usageEndTime":"2025-03-10T06:00:00-08:00","meterId":"f271a8a3-88c4-4d93-956a-063e1d2fa80b","quantity":"@Q@","instanceData":"{\"Microsoft.Resources\":{\"resourceUri\":\"/r\",\"location\":\"east\",\"tags\":null}}","meterName":"extra fields from public Azure are ignored"}
def bad(**change):
    p=dict(good); p.update(change); return {k:v for k,v in p.items() if v is not None}
pages = {"description":"Usage API pages (provider and tenant responses). Records: [subscription, canonical meter, start UTC, end UTC, quantity as exact text, resource uri, location]. A bad record refuses the whole page; the error names page and record index.","cases":[
 {"kind":"usage_page","name":"the synthetic sample page","source":"azure-stack-hub-sample-usage.json","page":sample,"expect":{"records":records,"next_link":d['nextLink']}},
 {"kind":"usage_page","name":"quantities keep their exact text; offsets convert to UTC; extra fields are ignored","source":"p.json",
  "page":one(good).replace('"@Q@"','2.4000000000'),"expect":{"records":[["s","F271A8A3-88C4-4D93-956A-063E1D2FA80B","2025-03-10T13:00:00Z","2025-03-10T14:00:00Z","1.0","",""],["s","F271A8A3-88C4-4D93-956A-063E1D2FA80B","2025-03-10T13:00:00Z","2025-03-10T14:00:00Z","2.4000000000","/r","east"]],"next_link":None}},
]}
for name, props, code, contains in [
  ("a negative quantity", bad(quantity="@N@"), "negative_quantity", "page-7.json record 1: negative quantity -1"),
  ("a quantity given as a string", bad(quantity="1"), "bad_decimal", "page-7.json record 1: bad decimal"),
  ("a missing subscription", bad(subscriptionId=None), "bad_record", "page-7.json record 1: bad record: properties.subscriptionId is missing"),
  ("an end before the start", bad(usageEndTime="2025-03-10T04:00:00-08:00"), "bad_interval", "page-7.json record 1: usage interval ends at"),
  ("a start that is not a time", bad(usageStartTime="noon"), "bad_timestamp", "page-7.json record 1: bad timestamp \"noon\""),
  ("a meter that is not a GUID", bad(meterId="meterID1"), "bad_meter_id", "page-7.json record 1: bad meter id \"meterID1\""),
  ("instanceData that is not JSON", bad(instanceData="{oops"), "bad_json", "page-7.json record 1: bad JSON: properties.instanceData"),
  ("a subscription id given as a number", bad(subscriptionId="@5@"), "bad_json", "page-7.json record 1: bad JSON: invalid type: integer `5`, expected a string"),
  ("a quantity given as an object", bad(quantity="@O@"), "bad_decimal", "page-7.json record 1: bad decimal \"{}\" in properties.quantity"),
]:
    text = one(props).replace('"@Q@"','1.5').replace('"@N@"','-1').replace('"@5@"','5').replace('"@O@"','{}')
    pages["cases"].append({"kind":"usage_page","name":name,"source":"page-7.json","page":text,"expect":{"error":{"code":code,"message_contains":contains}}})
# The tenant API (Microsoft.Commerce/UsageAggregates): a tenant's own subscription, its own resource URIs, a
# nextLink back to the tenant endpoint; the same record shape as the provider API.
TENANT_SUB = "8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64"
VM_METER = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"
tenant_link = f"https://management.local.azurestack.external/subscriptions/{TENANT_SUB}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview&reportedStartTime=2025-03-10T00%3a00%3a00%2b00%3a00&reportedEndTime=2025-03-11T00%3a00%3a00%2b00%3a00&aggregationGranularity=Hourly&continuationToken=tenant-page-2"
def tenant_record(hour, quantity, vm):
    uri = f"/subscriptions/{TENANT_SUB}/resourceGroups/rg-shop/providers/Microsoft.Compute/virtualMachines/{vm}"
    inst = json.dumps({"Microsoft.Resources": {"resourceUri": uri, "location": "local", "tags": {"owner": "shop"}, "additionalInfo": {"ServiceType": "Standard_A2"}}})
    return {"id": f"/subscriptions/{TENANT_SUB}/providers/Microsoft.Commerce/UsageAggregates/{TENANT_SUB}-{VM_METER}",
            "name": f"{TENANT_SUB}-{VM_METER}", "type": "Microsoft.Commerce/UsageAggregate",
            "properties": {"subscriptionId": TENANT_SUB, "usageStartTime": f"2025-03-10T{hour:02d}:00:00+00:00",
                           "usageEndTime": f"2025-03-10T{hour + 1:02d}:00:00+00:00", "meterId": VM_METER,
                           "quantity": "@" + quantity + "@", "instanceData": inst}}
tenant_page = json.dumps({"value": [tenant_record(13, "2", "vm-shop01"), tenant_record(14, "0.5", "vm-shop02")], "nextLink": tenant_link})
for q in ["2", "0.5"]:
    tenant_page = tenant_page.replace(f'"@{q}@"', q)
pages["cases"].append({"kind":"usage_page","name":"a tenant API page (Microsoft.Commerce/UsageAggregates)","source":"tenant-page-1.json","page":tenant_page,"expect":{"records":[
  [TENANT_SUB, VM_METER, "2025-03-10T13:00:00Z", "2025-03-10T14:00:00Z", "2", f"/subscriptions/{TENANT_SUB}/resourceGroups/rg-shop/providers/Microsoft.Compute/virtualMachines/vm-shop01", "local"],
  [TENANT_SUB, VM_METER, "2025-03-10T14:00:00Z", "2025-03-10T15:00:00Z", "0.5", f"/subscriptions/{TENANT_SUB}/resourceGroups/rg-shop/providers/Microsoft.Compute/virtualMachines/vm-shop02", "local"]],
  "next_link": tenant_link}})
pages["cases"].append({"kind":"usage_page","name":"a truncated page","source":"page-8.json","page":sample[:500],"expect":{"error":{"code":"bad_json","message_contains":"page-8.json: bad JSON"}}})
json.dump(pages, open(f'{out_dir}/usage_pages.json','w'), indent=1)
