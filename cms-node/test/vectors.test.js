// Every conformance vector (tests/vectors/*.json and tests/vectors/calls/*.json) replayed through the Node
// binding's `Cms.call`, as cms-api's Rust runner does: case files as `evaluate_vector` calls, call files step
// by step on a fresh memory store and again on a fresh SQLite file (reopened where a case says so).
'use strict'

const assert = require('node:assert/strict')
const path = require('node:path')
const { describe, test } = require('node:test')

const { Cms, errorCodes } = require('..')
const { caseAsStep, checkStep, outcomeOf, replay, vectorFiles } = require('../support/vectors')

const files = vectorFiles()

test('the vectors are all there', () => {
  const calls = files.filter((file) => file.kind === 'calls')
  assert.ok(files.length - calls.length >= 6, 'case files')
  assert.ok(calls.length >= 8, 'call files')
  assert.ok(files.every((file) => Array.isArray(file.cases) && file.cases.length > 0))
})

for (const { file, kind, cases } of files.filter((entry) => entry.kind === 'cases')) {
  describe(`${path.basename(file)} (${kind})`, () => {
    const cms = new Cms()
    for (const [index, vectorCase] of cases.entries()) {
      test(`#${index} ${vectorCase.name}`, async () => {
        const step = caseAsStep(vectorCase)
        const why = checkStep(step, await outcomeOf(cms.call(step.method, step.params)))
        assert.equal(why, null, why)
      })
    }
  })
}

for (const backing of ['memory', 'sqlite']) {
  for (const { file, cases } of files.filter((entry) => entry.kind === 'calls')) {
    describe(`${path.basename(file)} on ${backing}`, () => {
      for (const [index, vectorCase] of cases.entries()) {
        test(`#${index} ${vectorCase.name}`, async () => {
          // Every step counts but `reopen`; a case that only opens (expecting an error) counts once.
          const expected = vectorCase.open_error ? 1 : vectorCase.steps.filter((step) => step.reopen === undefined).length
          assert.equal(await replay(vectorCase, backing), expected)
        })
      }
    })
  }
}

test('every public error code is expected by some vector, and the binding knows them all', () => {
  const codes = new Set()
  const walk = (value) => {
    if (Array.isArray(value)) value.forEach(walk)
    else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key === 'code' && typeof item === 'string') codes.add(item)
        walk(item)
      }
    }
  }
  for (const { cases } of files) {
    for (const vectorCase of cases) {
      walk(vectorCase.expect)
      walk(vectorCase.open_error)
      for (const step of vectorCase.steps || []) {
        walk(step.error)
        walk(step.result)
      }
    }
  }
  const missing = errorCodes().filter((code) => !codes.has(code))
  assert.deepEqual(missing, [])
  for (const code of codes) assert.ok(errorCodes().includes(code), `${code} is not a code of the binding`)
})
