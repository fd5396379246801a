// monthEnd: a generated month (../shared/bench/gen_month.py) billed through the Node binding, byte-for-byte
// equal to the DuckDB peer (../shared/bench/peer_duckdb.py, an independent implementation), from usage.csv and
// from Usage API pages; the summary agrees with the files; errors reject with their code; the event loop keeps
// running meanwhile.
'use strict'

const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { Cms, monthEnd } = require('..')
const { matches } = require('../support/vectors')

const ROOT = path.resolve(__dirname, '..', '..')
const BENCH = path.resolve(ROOT, '..', 'shared', 'bench')
const VECTORS = path.join(ROOT, 'tests', 'vectors')
// The Python with numpy, polars and duckdb that scripts/test.sh sets up (CMS_PYTHON), or the repo's venv.
const PYTHON = process.env.CMS_PYTHON || path.join(ROOT, '.venv', 'bin', 'python')
const OUTPUTS = ['invoice_lines.csv', 'invoices.csv', 'commissions.csv', 'overrides.csv']

let scratch
let data
let peer

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cms-node-month-end-'))
  data = path.join(scratch, 'month')
  peer = path.join(scratch, 'duckdb')
  const run = (script, ...args) => execFileSync(PYTHON, [path.join(BENCH, script), ...args], { stdio: 'pipe' })
  run('gen_month.py', data, '--subscriptions', '8', '--seed', '11', '--json-pages')
  run('peer_duckdb.py', data, peer)
})

after(() => fs.rmSync(scratch, { recursive: true, force: true }))

function assertSameFiles(out, reference) {
  for (const name of OUTPUTS) {
    const [ours, theirs] = [path.join(out, name), path.join(reference, name)].map((file) => fs.readFileSync(file))
    assert.ok(theirs.length > 0, `${name} of the reference is empty`)
    assert.ok(ours.equals(theirs), `${name} differs from ${reference}`)
  }
}

/** The data rows of a CSV file (header left out). */
function rows(file) {
  return fs.readFileSync(file, 'utf8').trim().split('\n').slice(1)
}

/** The exact sum of decimal strings, as a decimal string with `scale` digits. */
function sumDecimals(values, scale) {
  const total = values.reduce((sum, value) => {
    const [whole, fraction = ''] = value.replace('-', '').split('.')
    const units = BigInt(whole + fraction.padEnd(scale, '0').slice(0, scale))
    return sum + (value.startsWith('-') ? -units : units)
  }, 0n)
  const digits = (total < 0n ? -total : total).toString().padStart(scale + 1, '0')
  return `${total < 0n ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`
}

test('monthEnd on usage.csv writes what DuckDB writes, and its summary agrees with the files', async () => {
  const out = path.join(scratch, 'csv')
  const summary = await monthEnd(data, out, { threads: 2 })
  assertSameFiles(out, peer)
  assert.equal(summary.period, '2026-10')
  assert.equal(summary.threads, 2)
  assert.equal(summary.usageRows, rows(path.join(data, 'usage.csv')).length)
  assert.ok(summary.duplicates > 0, 'the generator writes duplicates')
  assert.equal(summary.counted + summary.duplicates + summary.beforePeriod + summary.afterPeriod, summary.usageRows)
  assert.equal(summary.invoices, rows(path.join(out, 'invoices.csv')).length)
  assert.equal(summary.invoiceLines, rows(path.join(out, 'invoice_lines.csv')).length)
  assert.equal(summary.commissionStatements, rows(path.join(out, 'commissions.csv')).length)
  assert.equal(summary.overrides, rows(path.join(out, 'overrides.csv')).length)
  assert.deepEqual(summary.outputs, OUTPUTS.map((name) => path.join(out, name)))
  assert.deepEqual(summary.unpriced, [])
  // Decimals are strings: the total of every invoice, exactly.
  const header = fs.readFileSync(path.join(out, 'invoices.csv'), 'utf8').split('\n')[0].split(',')
  const totalColumn = header.indexOf('total')
  assert.ok(totalColumn >= 0, `invoices.csv has a total column: ${header}`)
  const totals = Object.values(summary.totals)
  assert.equal(totals.length, 1)
  assert.equal(typeof totals[0], 'string')
  assert.equal(
    sumDecimals([totals[0]], 2),
    sumDecimals(rows(path.join(out, 'invoices.csv')).map((row) => row.split(',')[totalColumn]), 2),
  )
})

test('monthEnd on the Usage API pages of the same month writes the same bytes', async () => {
  const out = path.join(scratch, 'pages')
  const summary = await monthEnd(data, out, { pagesDir: path.join(data, 'usage-pages'), threads: 1 })
  assertSameFiles(out, peer)
  assert.equal(summary.threads, 1)
})

test('the facade method month_end through Cms.call gives the same summary and files', async () => {
  const out = path.join(scratch, 'facade')
  const cms = new Cms()
  const viaCall = await cms.call('month_end', { data, out, threads: 1 })
  const viaFunction = await monthEnd(data, path.join(scratch, 'function'), { threads: 1 })
  assertSameFiles(out, peer)
  assert.equal(viaCall.usage_rows, viaFunction.usageRows)
  assert.equal(viaCall.counted, viaFunction.counted)
  assert.deepEqual(viaCall.totals, viaFunction.totals)
  await cms.close()
})

test('the event loop keeps running while a month-end runs', async () => {
  let ticks = 0
  let resolved = false
  const timer = setInterval(() => {
    if (!resolved) ticks++
  }, 1)
  try {
    const pending = monthEnd(data, path.join(scratch, 'loop'), { pagesDir: path.join(data, 'usage-pages'), threads: 1 })
    assert.ok(pending instanceof Promise)
    const summary = await pending
    resolved = true
    assert.ok(summary.usageRows > 30000)
    // A month-end run on the main thread would resolve before any timer could fire.
    assert.ok(ticks > 0, 'no timer fired during the month-end')
  } finally {
    clearInterval(timer)
  }
})

test('a missing data folder rejects with code io, naming it', async () => {
  const missing = path.join(scratch, 'nowhere')
  const pending = monthEnd(missing, path.join(scratch, 'out-missing'))
  assert.ok(pending instanceof Promise)
  await assert.rejects(pending, (error) => {
    assert.ok(error instanceof Error)
    assert.equal(error.code, 'io')
    assert.match(error.message, /nowhere: cannot read: no such data folder/)
    return true
  })
  assert.equal(fs.existsSync(path.join(scratch, 'out-missing')), false)
})

test('bad input rejects with the code of the fault and names the line', async () => {
  const broken = path.join(scratch, 'broken')
  fs.cpSync(path.join(VECTORS, 'calls', 'workload'), broken, { recursive: true })
  const usage = fs.readFileSync(path.join(broken, 'usage.csv'), 'utf8').split('\n')
  const fields = usage[3].split(',')
  fields[4] = '1;5' // the quantity column
  usage[3] = fields.join(',')
  fs.writeFileSync(path.join(broken, 'usage.csv'), usage.join('\n'))
  await assert.rejects(monthEnd(broken, path.join(scratch, 'out-broken'), { threads: 1 }), (error) => {
    assert.equal(error.code, 'bad_decimal')
    assert.match(error.message, /usage\.csv line 4/)
    return true
  })
})

test('unpriced usage is reported, or rejected with unpriced_meter when strict', async () => {
  const unpriced = path.join(VECTORS, 'calls', 'workload-unpriced')
  const summary = await monthEnd(unpriced, path.join(scratch, 'unpriced'), { threads: 1 })
  const expected = [
    { subscription: '0bb4db71-be57-4209-851d-3d24f4c0cf83', meter: '00000000-0000-4000-8000-00000000BEEF', quantity: '5' },
  ]
  // Quantities are exact decimal strings (compared as numbers: the text keeps the usage's scale).
  assert.equal(matches(summary.unpriced, expected, 'unpriced'), null)
  const cms = new Cms()
  const viaCall = await cms.call('month_end', { data: unpriced, out: path.join(scratch, 'unpriced-call'), threads: 1 })
  await cms.close()
  assert.deepEqual(summary.unpriced, viaCall.unpriced)
  await assert.rejects(monthEnd(unpriced, path.join(scratch, 'strict'), { strict: true }), { code: 'unpriced_meter' })
})

test('wrong arguments reject with bad_json naming them', async () => {
  const workload = path.join(VECTORS, 'calls', 'workload')
  await assert.rejects(monthEnd(42, scratch), (error) => error.code === 'bad_json' && /monthEnd field dataDir/.test(error.message))
  await assert.rejects(monthEnd(workload, scratch, { threads: 0 }), (error) => error.code === 'bad_json' && /options\.threads/.test(error.message))
  await assert.rejects(monthEnd(workload, scratch, { pages: 'x' }), (error) => error.code === 'bad_json' && /options\.pages/.test(error.message))
  await assert.rejects(monthEnd(workload, scratch, 'fast'), { code: 'bad_json' })
})
