// The Cms class: typed methods against the golden month of tests/vectors/calls/month.json on a SQLite file
// (closed and reopened where the vector reopens), dates, decimals as strings, errors with codes, the order of
// queued calls, callSync, closing, and every method of methods() reachable through call.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, test } = require('node:test')

const { Cms, MemoryStore, SqliteStore, errorCodes, methods, version } = require('..')
const { VECTORS, matches } = require('../support/vectors')

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cms-node-cms-'))
after(() => fs.rmSync(scratch, { recursive: true, force: true }))

const operator = { id: 'operator', node: 'platform' }

/** Each facade method of month.json and the typed method that makes the same call. */
const TYPED = {
  execute_all: (cms, p) => cms.executeAll(p.principal, p.at, p.events),
  ingest_page: (cms, p) => cms.ingestPage(p.page, p.source, p.region === undefined ? undefined : { region: p.region }),
  preview_invoices: (cms, p) => cms.previewInvoices(p.principal, p.period, p.buyers),
  issue_invoices: (cms, p) => cms.issueInvoices(p.principal, new Date(p.at), p.period, p.buyers),
  commission_report: (cms, p) => cms.commissionReport(p.principal, p.period),
  estimate: (cms, p) => cms.estimate(p.principal, p.node, p.items, p.at),
  invoice_documents: (cms, p) => cms.invoiceDocuments(p.principal, p.period),
  month_end_for: (cms, p) => cms.monthEndFor(p.principal, p.period),
  showback: (cms, p) => cms.showback(p.principal, p.period),
  nodes: (cms, p) => cms.nodes(p.principal, p.at),
  subscriptions: (cms, p) => cms.subscriptions(p.principal, p.at),
}

test('the golden month through the typed methods, on a SQLite file reopened where the vector says', async () => {
  const month = JSON.parse(fs.readFileSync(path.join(VECTORS, 'calls', 'month.json'), 'utf8')).cases[0]
  const store = new SqliteStore(path.join(scratch, 'month.db'))
  let cms = await Cms.open(store)
  assert.equal(cms.store, `sqlite:${store.path}`)
  const typedUsed = new Set()
  let reopened = 0
  for (const [index, step] of month.steps.entries()) {
    if (step.reopen !== undefined) {
      await cms.close()
      assert.equal(cms.closed, true)
      cms = await Cms.open(store)
      reopened++
      continue
    }
    const typed = TYPED[step.method]
    if (typed) typedUsed.add(step.method)
    const result = await (typed ? typed(cms, step.params) : cms.call(step.method, step.params))
    const why = step.result === undefined ? null : matches(result, step.result, 'result')
    assert.equal(why, null, `step ${index} (${step.method}): ${why}`)
  }
  await cms.close()
  assert.ok(reopened >= 2, 'the vector reopens the store')
  assert.ok(typedUsed.size >= 6, `typed methods used: ${[...typedUsed]}`)
})

/** Each monitoring facade method and the typed method that makes the same call. */
const TYPED_MONITORING = {
  set_budget: (cms, p) => cms.setBudget(p.principal, p.at, p.budget),
  budget_statuses: (cms, p) => cms.budgetStatuses(p.principal, p.period, new Date(p.at)),
  alerts: (cms, p) => cms.alerts(p.principal, p.include_resolved === undefined ? undefined : { include_resolved: p.include_resolved }),
  acknowledge_alert: (cms, p) => cms.acknowledgeAlert(p.principal, p.at, p.id, p.note),
  resolve_alert: (cms, p) => cms.resolveAlert(p.principal, new Date(p.at), p.id, p.note),
  evaluate_alerts: (cms, p) => cms.evaluateAlerts(p.principal, p.at),
  tick: (cms, p) => cms.tick(p.principal, p.at, p.regions),
  job_runs: (cms, p) => cms.jobRuns(p.principal, p.limit === undefined ? undefined : { limit: p.limit }),
  dashboard: (cms, p) => cms.dashboard(p.principal, p.period, p.at),
  stored_usage: (cms, p) => cms.storedUsage(p.principal, p.period),
}

test('monitoring (budgets, alerts, job runs, the tick, the dashboard) through the typed methods', async () => {
  const cases = JSON.parse(fs.readFileSync(path.join(VECTORS, 'calls', 'monitoring.json'), 'utf8')).cases
  const typedUsed = new Set()
  for (const [number, monitoringCase] of cases.entries()) {
    const store = new SqliteStore(path.join(scratch, `monitoring-${number}.db`))
    let cms = await Cms.open(store)
    for (const [index, step] of monitoringCase.steps.entries()) {
      if (step.reopen !== undefined) {
        await cms.close()
        cms = await Cms.open(store)
        continue
      }
      const typed = TYPED_MONITORING[step.method]
      if (typed) typedUsed.add(step.method)
      const pending = typed ? typed(cms, step.params) : cms.call(step.method, step.params)
      const where = `${monitoringCase.name}, step ${index} (${step.method})`
      if (step.error !== undefined) {
        await assert.rejects(pending, (error) => {
          assert.equal(error.code, step.error.code, where)
          if (step.error.message_contains) assert.ok(error.message.includes(step.error.message_contains), `${where}: ${error.message}`)
          return true
        })
        continue
      }
      const result = await pending
      const why = step.result === undefined ? null : matches(result, step.result, 'result')
      assert.equal(why, null, `${where}: ${why}`)
    }
    await cms.close()
  }
  assert.deepEqual([...typedUsed].sort(), Object.keys(TYPED_MONITORING).sort(), 'every typed monitoring method was used')
})

test('a SQLite store keeps the channel across sessions; the synchronous constructor opens it too', async () => {
  const file = path.join(scratch, 'reopen.db')
  const first = new Cms(new SqliteStore(file))
  await first.execute(operator, new Date('2026-09-01T00:00:00Z'), {
    type: 'node_added', id: 'contoso', kind: 'partner', parent: null, name: 'Contoso',
  })
  await first.close()
  const second = new Cms(new SqliteStore(file))
  const nodes = await second.nodes(operator, '2026-09-02T00:00:00Z')
  assert.deepEqual(nodes.map((node) => node.id), ['platform', 'contoso'])
  await second.close()
  const memory = new Cms(new MemoryStore())
  assert.deepEqual((await memory.nodes(operator, '2026-09-02T00:00:00Z')).map((node) => node.id), ['platform'])
  assert.equal(memory.store, 'memory')
  assert.equal(new MemoryStore().kind, 'memory')
  assert.equal(new SqliteStore(file).kind, 'sqlite')
})

test('errors are Errors with the stable code, synchronous or not', async () => {
  const cms = new Cms()
  await assert.rejects(cms.call('no_such_method', {}), (error) => {
    assert.ok(error instanceof Error)
    assert.equal(error.code, 'invalid_value')
    assert.match(error.message, /call field method/)
    return true
  })
  await assert.rejects(cms.nodes({ id: 'operator', node: 'nowhere' }, '2026-09-01T00:00:00Z'), { code: 'unknown_node' })
  await assert.rejects(cms.nodes(operator, 'yesterday'), { code: 'bad_timestamp' })
  await assert.rejects(cms.monthEndFor(operator, '2026-13'), { code: 'invalid_period' })
  await assert.rejects(cms.call('nodes', { principal: operator, at: 10n }), (error) => {
    assert.equal(error.code, 'bad_json')
    assert.match(error.message, /nodes field params/)
    return true
  })
  assert.throws(() => cms.callSync('nodes', { principal: operator }), (error) => {
    assert.equal(error.code, 'bad_json')
    assert.match(error.message, /nodes field at: bad JSON: required, missing/)
    return true
  })
  for (const code of ['invalid_value', 'unknown_node', 'bad_timestamp', 'invalid_period', 'bad_json']) {
    assert.ok(errorCodes().includes(code))
  }
  await cms.close()
})

test('decimals cross as strings: a number where a decimal belongs is refused', async () => {
  const cms = new Cms()
  const meter = '9CD92D4C-BAFD-4492-B278-BEDC2DE8232A'
  await assert.rejects(cms.estimate(operator, 'platform', [{ meter, quantity: 100.5 }], '2026-09-01T00:00:00Z'), (error) => {
    assert.equal(error.code, 'bad_decimal')
    assert.match(error.message, /a JSON number: decimals are passed as strings/)
    return true
  })
  const lines = await cms.estimate(operator, 'platform', [{ meter, quantity: '100.5' }], new Date('2026-09-01T00:00:00Z'))
  assert.ok(Array.isArray(lines))
  await cms.close()
})

test('calls queued without awaiting run in the order they were made, and callSync waits for them', async () => {
  const cms = new Cms()
  const at = '2026-09-01T00:00:00Z'
  const added = ['a', 'b', 'c', 'd', 'e'].map((id) =>
    cms.execute(operator, at, { type: 'node_added', id, kind: 'partner', parent: null, name: id.toUpperCase() }),
  )
  // A refused command between them changes nothing and does not stop the queue.
  const refused = cms.execute(operator, at, { type: 'node_added', id: 'a', kind: 'partner', parent: null, name: 'again' })
  const later = cms.execute(operator, at, { type: 'node_added', id: 'f', kind: 'partner', parent: null, name: 'F' })
  const ids = cms.callSync('nodes', { principal: operator, at }).map((node) => node.id)
  assert.deepEqual(ids, ['platform', 'a', 'b', 'c', 'd', 'e', 'f'])
  const seqs = (await Promise.all(added)).map((result) => result.seq)
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y))
  assert.equal(new Set(seqs).size, seqs.length)
  await assert.rejects(refused, { code: 'duplicate_node' })
  assert.ok((await later).seq > seqs[seqs.length - 1])
  await cms.close()
})

test('a closed Cms refuses calls with invalid_value', async () => {
  const cms = new Cms()
  const pending = cms.call('version')
  await cms.close()
  assert.deepEqual(await pending, { version: version() })
  assert.equal(cms.closed, true)
  await assert.rejects(cms.call('version'), (error) => error.code === 'invalid_value' && /closed/.test(error.message))
  assert.throws(() => cms.callSync('version'), { code: 'invalid_value' })
  await cms.close() // closing twice is harmless
})

test('a store that cannot be opened is an error with its code', async () => {
  const nowhere = path.join(scratch, 'missing-folder', 'cms.db')
  assert.throws(() => new Cms(new SqliteStore(nowhere)), (error) => typeof error.code === 'string' && errorCodes().includes(error.code))
  await assert.rejects(Cms.open(new SqliteStore(nowhere)), (error) => errorCodes().includes(error.code))
})

test('every method of methods() is reachable through call', async () => {
  const cms = new Cms()
  const listed = methods()
  assert.ok(listed.length >= 40, `${listed.length} methods`)
  assert.deepEqual((await cms.call('methods')).map((method) => method.name), listed.map((method) => method.name))
  for (const method of listed) {
    assert.equal(typeof method.signature, 'string')
    assert.equal(typeof method.doc, 'string')
    // With no parameters, each method either runs or refuses a missing parameter by its own name: never
    // "no such method".
    try {
      await cms.call(method.name, {})
    } catch (error) {
      assert.ok(errorCodes().includes(error.code), `${method.name}: ${error.code}`)
      assert.doesNotMatch(error.message, /no such method/, method.name)
    }
  }
  await cms.close()
})

test('Cms.call runs off the main thread: timers fire while a long call runs', async () => {
  const cms = new Cms()
  // The sample page, ingested a hundred times under different names: every copy after the first is
  // duplicates, which still goes through parsing and deduplication.
  const page = fs.readFileSync(path.join(VECTORS, '..', 'data', 'azure-stack-hub-sample-usage.json'), 'utf8')
  let ticks = 0
  let settled = false
  const timer = setInterval(() => {
    if (!settled) ticks++
  }, 1)
  try {
    const pending = []
    for (let copy = 0; copy < 100; copy++) pending.push(cms.ingestPage(page, `page-${copy}.json`))
    const summaries = await Promise.all(pending)
    settled = true
    assert.equal(summaries[0].received, summaries[99].received)
    assert.equal(summaries[99].stored, 0)
    assert.ok(ticks > 0, 'no timer fired while 100 pages were ingested')
  } finally {
    clearInterval(timer)
  }
  await cms.close()
})

test('a store argument that is not a store is refused with bad_json', async () => {
  assert.throws(() => new Cms('cms.db'), (error) => error.code === 'bad_json' && /Cms field store/.test(error.message))
  await assert.rejects(Cms.open({ sqlite: 'cms.db' }), (error) => error.code === 'bad_json' && /Cms\.open field store/.test(error.message))
  const cms = new Cms(null)
  assert.equal(cms.store, 'memory')
  await cms.close()
})
