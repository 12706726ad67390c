'use strict'
// Loads the addon built by `npm run build` (build.js), shipped inside the package.
const path = require('path')
const file = path.join(__dirname, '..', `dhtkit.${process.platform}-${process.arch}.node`)
let native
try {
  native = require(file)
} catch (e) {
  const err = new Error(`dhtkit: the native addon for ${process.platform}-${process.arch} could not be loaded from ${file} (${e.message}); run \`npm run build\` in bindings/node, or install a package built for this platform`)
  err.code = 'DHT_NO_ADDON'
  throw err
}

/** An Error from a native one whose message is `CODE|text`. */
function wrapError (e) {
  if (!(e instanceof Error)) return e
  const m = /^([A-Z][A-Z0-9_]*)\|([\s\S]*)$/.exec(e.message)
  if (!m) return e
  const err = new Error(m[2])
  err.code = m[1]
  const remote = /^DHT_REMOTE_(-?\d+)$/.exec(m[1])
  if (remote) {
    err.code = 'DHT_REMOTE'
    err.krpcCode = Number(remote[1])
  }
  return err
}

/** Runs a native promise, turning its errors into Errors with a `code`. */
async function call (p) {
  try {
    return await p
  } catch (e) {
    throw wrapError(e)
  }
}

module.exports = { native, call, wrapError }
