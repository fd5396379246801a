// The typed methods beyond the golden month: scopes and visibility, what-if month-ends (prices as of an
// instant, other terms), drafts recomputed, invoices issued, found and voided, the audit export, and the free
// functions parseUsagePage and evaluateVector, each against what the engine gives through call.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const { Cms, evaluateVector, parseUsagePage } = require('..')
const { VECTORS, matches } = require('../support/vectors')

const operator = { id: 'operator', node: 'platform' }
const pat = { id: 'pat', node: 'p' }
const VM = 'FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5'
const SETUP = '2025-10-01T00:00:00Z'

const price = (rate) => ({ unit: 'vCore-hours', model: { kind: 'tiered', mode: 'graduated', tiers: [{ from: '0', rate }] } })

/** Partner p with tenant t and subscription s, partner q; a price list whose rate doubles on 2025-10-15;
 * ten hours of 4.5 on October 1st. */
async function setUp() {
  const cms = new Cms()
  await cms.executeAll(operator, SETUP, [
    { type: 'node_added', id: 'p', kind: 'partner', parent: null, name: 'P' },
    { type: 'node_added', id: 't', kind: 'tenant', parent: 'p', name: 'T' },
    { type: 'node_added', id: 's', kind: 'subscription', parent: 't', name: 'S' },
    { type: 'node_added', id: 'q', kind: 'partner', parent: null, name: 'Q' },
    {
      type: 'price_list_created',
      list: {
        id: 'std',
        name: 'std',
        currency: 'USD',
        tier_scope: 'subscription',
        minimum_commitment: null,
        versions: [
          { effective: '2025-01-01T00:00:00Z', content: { kind: 'own', prices: { [VM]: price('1') } } },
          { effective: '2025-10-15T00:00:00Z', content: { kind: 'own', prices: { [VM]: price('2') } } },
        ],
      },
    },
    { type: 'price_list_assigned', scope: 'default', list: 'std' },
  ])
  const records = []
  for (let hour = 0; hour < 10; hour++) {
    const start = new Date(Date.UTC(2025, 9, 1, hour))
    const end = new Date(Date.UTC(2025, 9, 1, hour + 1))
    records.push({ subscription: 's', meter: VM, start, end, quantity: '4.5', resource_uri: '/vm1', location: 'local' })
  }
  await cms.ingestRecords(records, { origin: 'day1.json' })
  return cms
}

const totalOf = (report, buyer) => report.invoices.find((invoice) => invoice.buyer === buyer).total

test('scopes, visibility and read checks', async () => {
  const cms = await setUp()
  assert.deepEqual(await cms.scopeOf(operator), { id: 'platform', kind: 'platform' })
  assert.deepEqual(await cms.scopeOf(pat), { id: 'p', kind: 'partner' })
  assert.deepEqual(await cms.visible(pat, 's'), { id: 's', kind: 'subscription' })
  await assert.rejects(cms.visible(pat, 'q'), { code: 'unknown_node' })
  assert.equal(await cms.authorizeRead(operator, 'read_audit'), null)
  await assert.rejects(cms.authorizeRead(operator, 'read_everything'), { code: 'bad_json' })
  const exported = await cms.exportAudit()
  assert.deepEqual(exported.records, await cms.auditRecords(operator))
  assert.equal(exported.head.seq, exported.records.at(-1).seq)
  assert.deepEqual(await cms.billingRules(), (await cms.state()).rules)
  assert.deepEqual(await cms.tenantScope('t'), { nodes: ['t', 's'] })
  assert.deepEqual(await cms.node(pat, 't', SETUP), await cms.call('node', { principal: pat, id: 't', at: SETUP }))
  assert.deepEqual(await cms.checkpoints(), [])
  assert.ok(Array.isArray(await cms.findings('2025-10-02T00:00:00Z')))
  assert.equal(await cms.refresh(), null)
  assert.deepEqual(await cms.closingMonths('2025-11-02T00:00:00Z'), ['2025-10'])
  await cms.evaluateAlerts(operator, '2025-11-02T00:00:00Z')
  assert.deepEqual(await cms.closingMonths(new Date('2026-02-05T00:00:00Z')), ['2025-11', '2025-12', '2026-01'])
  await cms.close()
})

test('month-ends: stored, under prices as of an instant, under other terms', async () => {
  const cms = await setUp()
  // 10 hours x 4.5 at the rate of October 1st (1): 45; at the prices of October 20th (2): 90.
  assert.equal(totalOf(await cms.monthEndReport('2025-10'), 't'), '45.00')
  assert.equal(totalOf(await cms.monthEndIn('2025-10'), 't'), '45.00')
  assert.equal(totalOf(await cms.monthEndIn('2025-10', { prices_at: new Date('2025-10-20T00:00:00Z') }), 't'), '90.00')
  const terms = JSON.stringify((await cms.state()).terms)
  const other = JSON.parse(terms.replace('"rate":"1"', '"rate":"3"'))
  assert.notEqual(JSON.stringify(other), terms)
  assert.equal(totalOf(await cms.monthEndIn('2025-10', { terms: other }), 't'), '135.00')
  assert.equal(totalOf(await cms.monthEndReport('2025-10'), 't'), '45.00', 'the what-ifs recorded nothing')
  const chain = await cms.priceChain(operator, 's', VM, '4.5', '2025-10-02T00:00:00Z')
  assert.deepEqual(chain, await cms.call('price_chain', { principal: operator, subscription: 's', meter: VM, quantity: '4.5', at: '2025-10-02T00:00:00Z' }))
  assert.deepEqual(await cms.tenantMonthEnd(operator, '2025-10'), await cms.call('tenant_month_end', { principal: operator, period: '2025-10' }))
  await cms.close()
})

test('drafts, issuing, finding and voiding through the typed methods', async () => {
  const cms = await setUp()
  await cms.reprocess(operator, '2025-10', { tenant: 't' })
  const drafts = await cms.drafts(operator, '2025-10')
  assert.deepEqual(drafts.map((draft) => [draft.buyer, draft.total]), [['t', '45.00']])
  const issued = await cms.issueInvoices(operator, '2025-11-02T00:00:00Z', '2025-10')
  const numbers = issued.map((document) => document.number).sort()
  assert.ok(numbers.length >= 1)
  // issuedIn reads by the instant of issue: October's invoices were issued in November.
  assert.deepEqual((await cms.issuedIn(operator, '2025-11')).map((document) => document.number).sort(), numbers)
  assert.deepEqual(await cms.issuedIn(operator, '2025-10'), [])
  const found = await cms.issuedDocument(operator, numbers[0])
  assert.equal(found.document.number, numbers[0])
  assert.deepEqual(await cms.verifyDocuments(), { intact: true, altered: [] })
  const credit = await cms.voidInvoice(operator, '2025-11-03T00:00:00Z', numbers[0], 'test')
  assert.notEqual(credit.number, numbers[0])
  assert.deepEqual(await cms.purgeUsage(operator, '2025-11-04T00:00:00Z'), [])
  await assert.rejects(cms.closePeriod(operator, '2025-11-04T00:00:00Z', 'October'), { code: 'invalid_period' })
  await cms.close()
})

test('parseUsagePage and evaluateVector need no store', () => {
  const page = fs.readFileSync(path.join(VECTORS, '..', 'data', 'azure-stack-hub-sample-usage.json'), 'utf8')
  const parsed = parseUsagePage(page, 'sample.json')
  assert.ok(parsed.records.length > 0)
  assert.equal(typeof parsed.records[0].quantity, 'string')
  assert.deepEqual(parseUsagePage(page), parsed)
  assert.throws(() => parseUsagePage('{"value": [{"nope": 1}]}', 'bad.json'), (error) => typeof error.code === 'string' && /bad\.json/.test(error.message))
  const cases = JSON.parse(fs.readFileSync(path.join(VECTORS, 'tiers.json'), 'utf8')).cases
  const ok = cases.find((entry) => entry.expect && !('error' in entry.expect))
  assert.equal(matches(evaluateVector(ok), ok.expect, 'result'), null)
})
