// The conformance vectors' protocol in JavaScript: the same matching, substitution and replay as the Rust
// reference runner (cms-api/src/vectors.rs), driving the Node binding's `Cms.call`.
'use strict'

const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')

const { Cms, MemoryStore, SqliteStore } = require('..')

const VECTORS = path.resolve(__dirname, '..', '..', 'tests', 'vectors')
const EVALUATE = 'evaluate_vector'

/** The `*.json` files of a folder, by name. */
function jsonFiles(folder) {
  return fs
    .readdirSync(folder)
    .filter((name) => name.endsWith('.json') && fs.statSync(path.join(folder, name)).isFile())
    .sort()
    .map((name) => path.join(folder, name))
}

/** A plain decimal (`-?digits(.digits)?`) as [sign, digits without leading zeros, fraction without trailing zeros]. */
function plainDecimal(text) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text)
  if (!match) return null
  const whole = match[2].replace(/^0+/, '')
  const fraction = (match[3] || '').replace(/0+$/, '')
  const zero = whole === '' && fraction === ''
  return [zero ? '' : match[1], whole, fraction].join('|')
}

function show(value) {
  return JSON.stringify(value)
}

/**
 * Whether `actual` matches `expected` (the protocol of cms-api/src/vectors.rs): expected object fields must be
 * present and match (others allowed; an expected null may be missing), arrays match item by item with the
 * same length, two plain decimals match when equal as numbers; anything else must be equal. Returns null, or
 * the path of the first difference.
 */
function matches(actual, expected, at) {
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      return `${at}: expected ${show(expected)}, got ${show(actual)}`
    }
    for (const [key, value] of Object.entries(expected)) {
      const inner = `${at}.${key}`
      if (Object.prototype.hasOwnProperty.call(actual, key)) {
        const why = matches(actual[key], value, inner)
        if (why) return why
      } else if (value !== null) {
        return `${inner}: missing, expected ${show(value)}`
      }
    }
    return null
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${at}: expected ${show(expected)}, got ${show(actual)}`
    if (expected.length !== actual.length) {
      return `${at}: expected ${expected.length} items, got ${actual.length}: ${show(actual)}`
    }
    for (let index = 0; index < expected.length; index++) {
      const why = matches(actual[index], expected[index], `${at}[${index}]`)
      if (why) return why
    }
    return null
  }
  if (typeof expected === 'string' && typeof actual === 'string') {
    if (expected === actual) return null
    const [left, right] = [plainDecimal(actual), plainDecimal(expected)]
    if (left !== null && left === right) return null
    return `${at}: expected ${show(expected)}, got ${show(actual)}`
  }
  return expected === actual ? null : `${at}: expected ${show(expected)}, got ${show(actual)}`
}

/** Whether an error has the expected code (and its message the expected fragment); null, or why not. */
function errorMatches(error, expected) {
  if (!(error instanceof Error)) return `expected an Error, got ${show(error)}`
  if (error.code !== expected.code) return `expected error ${expected.code}, got ${error.code}: ${error.message}`
  if (expected.message_contains && !error.message.includes(expected.message_contains)) {
    return `message ${show(error.message)} lacks ${show(expected.message_contains)}`
  }
  return null
}

/** Check one call's outcome ({ok, value} or {ok: false, error}) against a step; null, or why not. */
function checkStep(step, outcome) {
  if (step.error) {
    return outcome.ok ? `expected error ${step.error.code}, got a result: ${show(outcome.value)}` : errorMatches(outcome.error, step.error)
  }
  if (!outcome.ok) return `unexpected error ${outcome.error.code}: ${outcome.error.message}`
  return step.result === undefined ? null : matches(outcome.value, step.result, 'result')
}

/** The step a case of the case files is replayed as. */
function caseAsStep(vectorCase) {
  const step = { method: EVALUATE, params: { case: vectorCase } }
  if (vectorCase.expect && vectorCase.expect.error) step.error = vectorCase.expect.error
  else step.result = vectorCase.expect
  return step
}

/** Replace each token (`{vectors}`, `{scratch}`, `{http}`) in every string of a value. */
function substitute(value, tokens) {
  if (typeof value === 'string') return tokens.reduce((text, [token, by]) => text.split(token).join(by), value)
  if (Array.isArray(value)) return value.map((item) => substitute(item, tokens))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, tokens)]))
  }
  return value
}

/** A canned HTTP server on 127.0.0.1 answering the replies of a case's `http` (first path prefix wins, 404 otherwise). */
async function startFixture(replies) {
  let url = ''
  const server = http.createServer((request, response) => {
    request.resume()
    request.on('end', () => {
      const requestPath = request.url.split('?')[0]
      const reply = replies.find((candidate) => requestPath.startsWith(candidate.path))
      const status = reply ? reply.status : 404
      const body = reply ? reply.body.split('{http}').join(url) : 'no fixture reply for this path'
      response.writeHead(status, { 'Content-Type': 'application/json', Connection: 'close' })
      response.end(body)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${server.address().port}`
  return { url, close: () => new Promise((resolve) => server.close(resolve)) }
}

async function outcomeOf(promise) {
  try {
    return { ok: true, value: await promise }
  } catch (error) {
    return { ok: false, error }
  }
}

function storeOf(spec) {
  if (spec === 'memory') return new MemoryStore()
  if (spec && typeof spec.sqlite === 'string') return new SqliteStore(spec.sqlite)
  throw new Error(`unknown store spec ${show(spec)}`)
}

/**
 * Replay one case of a call file on a fresh Cms (`backing`: 'memory' or 'sqlite' for cases naming no store);
 * returns the number of steps that passed, or throws naming the first failure.
 */
async function replay(vectorCase, backing) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cms-node-vectors-'))
  const fixture = vectorCase.http ? await startFixture(vectorCase.http) : null
  try {
    const tokens = [
      ['{vectors}', VECTORS],
      ['{scratch}', scratch],
      ['{http}', fixture ? fixture.url : ''],
    ]
    let spec
    if (vectorCase.open !== undefined) spec = substitute(vectorCase.open, tokens)
    else spec = backing === 'sqlite' ? { sqlite: path.join(scratch, 'cms.db') } : 'memory'
    const opened = await outcomeOf(Cms.open(storeOf(spec)))
    if (vectorCase.open_error) {
      if (opened.ok) throw new Error(`open: expected error ${vectorCase.open_error.code}, the store opened`)
      const why = errorMatches(opened.error, vectorCase.open_error)
      if (why) throw new Error(`open: ${why}`)
      return 1
    }
    if (!opened.ok) throw new Error(`open: ${opened.error.code}: ${opened.error.message}`)
    let cms = opened.value
    let passed = 0
    try {
      for (const [index, step] of vectorCase.steps.entries()) {
        if (step.reopen !== undefined) {
          if (spec !== 'memory') {
            await cms.close()
            cms = await Cms.open(storeOf(spec))
          }
          continue
        }
        const params = substitute(step.params === undefined ? null : step.params, tokens)
        const outcome = await outcomeOf(cms.call(step.method, params))
        const why = checkStep(step, outcome)
        if (why) throw new Error(`step ${index} (${step.method}): ${why}`)
        passed++
      }
    } finally {
      await cms.close()
    }
    return passed
  } finally {
    if (fixture) await fixture.close()
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

/** Every vector file: [{file, kind: 'cases' | 'calls', cases}]. */
function vectorFiles() {
  const load = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
  return [
    ...jsonFiles(VECTORS).map((file) => ({ file, kind: 'cases', cases: load(file).cases })),
    ...jsonFiles(path.join(VECTORS, 'calls')).map((file) => ({ file, kind: 'calls', cases: load(file).cases })),
  ]
}

module.exports = { VECTORS, caseAsStep, checkStep, matches, outcomeOf, replay, vectorFiles }
