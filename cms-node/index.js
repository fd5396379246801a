// The package's entry point: loads the prebuilt native addon for this platform (`cms-node.<platform>.node`,
// written by `npm run build`, or shipped in a platform package `cms-node-<platform>`) and re-exports it.
// The API and its documentation are in index.d.ts, generated from the Rust by napi-rs.
'use strict'

const { existsSync, readFileSync } = require('node:fs')
const { join } = require('node:path')

/** The C library of this Linux process: musl or glibc (prebuilt addons differ). */
function linuxLibc() {
  try {
    const report = process.report && process.report.getReport()
    const header = report && (typeof report === 'string' ? JSON.parse(report) : report).header
    if (header && header.glibcVersionRuntime) return 'gnu'
  } catch {
    // No report: look at the loader instead.
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu'
  } catch {
    return 'gnu'
  }
}

/** napi-rs's platform names: linux-x64-gnu, darwin-arm64, win32-x64-msvc, ... */
function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${linuxLibc()}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function load() {
  const platform = platformName()
  const local = join(__dirname, `cms-node.${platform}.node`)
  if (existsSync(local)) return require(local)
  const packaged = `cms-node-${platform}`
  try {
    return require(packaged)
  } catch (error) {
    if (error && error.code !== 'MODULE_NOT_FOUND') throw error
  }
  const error = new Error(
    `cms-node: no native addon for ${platform}: neither ${local} nor the package ${packaged} exists. ` +
      `Build it with \`npm install && npm run build\` in ${__dirname} (needs Rust), ` +
      'or install the prebuilt package for this platform.',
  )
  error.code = 'native_addon_missing'
  throw error
}

module.exports = load()
