// A process ends by itself after close(): nothing native keeps the event loop alive. The
// control shows the check can fail: the same script without close() is still running.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const script = (close) => `
const DHT = require(${JSON.stringify(pkg)})
;(async () => {
  const a = await DHT.create({ bind: '127.73.1.1:0', bootstrap: false })
  const b = await DHT.create({ bind: '127.73.2.1:0', bootstrap: [a.addresses()[0]] })
  await b.bootstrapped()
  await b.ping(a.addresses()[0])
  await b.announce('${'ab'.repeat(20)}', 6000)
  await a.getPeers('${'ab'.repeat(20)}')
  // A lookup still running at close: close() rejects it with DHT_CLOSED (or it ended first).
  b.getPeers('${'cd'.repeat(20)}').catch((e) => { if (e.code !== 'DHT_CLOSED') throw e })
  console.log('done')
  ${close ? 'a.close(); b.close()' : ''}
})()
`

function runFor (code, ms) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', code])
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve({ exited: false, out }) }, ms)
    child.on('exit', (c) => { clearTimeout(timer); resolve({ exited: true, code: c, out }) })
  })
}

test('a process exits by itself after close()', async () => {
  const r = await runFor(script(true), 15000)
  assert.equal(r.out.trim(), 'done')
  assert.ok(r.exited, 'the process did not exit within 15 s of close()')
  assert.equal(r.code, 0)
})

test('control: without close() the node keeps the process alive', async () => {
  const r = await runFor(script(false), 4000)
  assert.equal(r.out.trim(), 'done')
  assert.equal(r.exited, false)
})
