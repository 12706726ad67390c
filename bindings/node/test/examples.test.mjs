// The package as users get it: `npm pack`, installed offline into an empty directory, and
// both drop-ins' README examples run from there against a loopback network of
// bittorrent-dht nodes. The dht.js example must also end by itself (its last step closes
// every node): a handle left open fails it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { btSwarm, btAnnounce, randomHex } from './helpers.mjs'

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
let dir, swarm

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dhtkit-npm-'))
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: pkg }).toString().trim().split('\n').pop()
  const app = path.join(dir, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}')
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', path.join(dir, out)], { cwd: app })
  for (const f of fs.readdirSync(path.join(pkg, 'test', 'examples'))) fs.copyFileSync(path.join(pkg, 'test', 'examples', f), path.join(app, f))
  swarm = await btSwarm(6, 71)
})

after(async () => {
  await swarm.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs `node args` in the installed app; resolves with {code, stdout} or kills it after `ms`. */
function run (args, env, ms, until) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: path.join(dir, 'app'), env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    let done = false
    const finish = (code) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ code, stdout, stderr, child })
    }
    child.stdout.on('data', (d) => {
      stdout += d
      if (until && until(stdout)) finish('matched')
    })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('exit', (code) => finish(code))
    const timer = setTimeout(() => { finish('timeout') }, ms)
  })
}

test('the tarball holds the addon, the drop-ins and the type declarations', () => {
  const installed = path.join(dir, 'app', 'node_modules', 'dhtkit')
  for (const f of ['index.js', 'index.mjs', 'index.d.ts', 'lib/dhtjs.js', 'lib/dht-server.js', 'dhtkit.linux-x64.node', 'README.md']) {
    assert.ok(fs.existsSync(path.join(installed, f)), `${f} is in the package`)
  }
})

test("dht.js's README example runs and exits by itself", async () => {
  const ih = randomHex()
  const seeder = swarm.nodes[3]
  await btAnnounce(seeder, ih, 6999)
  const entry = swarm.nodes[0]
  const r = await run(['dhtjs-readme.js'], {
    CONNECT_ID: entry.nodeId.toString('hex'),
    CONNECT_ADDRESS: entry.host,
    CONNECT_PORT: String(entry.address().port),
    INFOHASH: ih
  }, 30000)
  if (r.code === 'timeout') r.child.kill('SIGKILL')
  assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}`)
  // It printed the seeder bittorrent-dht knows (the example closes on the first peer, so
  // whether its own announce landed first is a race: dropins.test.mjs checks advertising).
  assert.equal(r.stdout.trim().split('\n')[0], `${seeder.host} 6999`)
})

test("AlphaReign dht-server's README example logs the queries it answers", async () => {
  const ih = randomHex()
  const child = spawn(process.execPath, ['-r', './loopback-defaults.js', 'dht-server-readme.js'], {
    cwd: path.join(dir, 'app'),
    env: { ...process.env, BOOTSTRAP: swarm.bootstrap.join(','), ADDRESS: '127.72.1.1' }
  })
  let stdout = ''
  child.stdout.on('data', (d) => { stdout += d })
  try {
    const deadline = Date.now() + 30000
    while (!/DHT listening on 127\.72\.1\.1:\d+/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    const port = Number(/DHT listening on 127\.72\.1\.1:(\d+)/.exec(stdout)[1])
    // Every bittorrent-dht node learns the server, then looks the infohash up and announces it.
    for (const d of swarm.nodes) d.addNode({ host: '127.72.1.1', port })
    await new Promise((r) => setTimeout(r, 300))
    const want = [`onGetPeersQuery - new torrent: ${ih}`, `onAnnouncePeerQuery - new torrent: ${ih}`]
    while (Date.now() < deadline && !want.every((w) => stdout.includes(w))) {
      await btAnnounce(swarm.nodes[Math.floor(Math.random() * swarm.nodes.length)], ih, 6001)
      await new Promise((r) => setTimeout(r, 200))
    }
    for (const w of want) assert.ok(stdout.includes(w), `stdout has "${w}": ${stdout}`)
  } finally {
    child.kill('SIGKILL')
  }
})
