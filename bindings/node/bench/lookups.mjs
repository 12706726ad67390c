// get_peers time on a loopback network, for bench/node.sh: NODES nodes of one kind (the
// dhtkit package, or npm bittorrent-dht) in this one Node process, each on its own 127.x
// address and bootstrapped from the first; SEEDS infohashes each announced by one node;
// then LOOKUPS get_peers lookups, one at a time, from nodes that did not announce. A lookup's
// time runs from its start until it has finished (every contact answered or timed out), and
// until the first peer arrived. Prints one JSON line.
// usage: node bench/lookups.mjs dhtkit|bittorrent-dht [NODES] [LOOKUPS] [NET]
import { createRequire } from 'node:module'
import crypto from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
const require = createRequire(import.meta.url)
const kind = process.argv[2]
const count = Number(process.argv[3] || 48)
const lookups = Number(process.argv[4] || 40)
const net = Number(process.argv[5] || 201)
const addr = (i) => `127.${net}.${1 + (i >> 6)}.${1 + (i & 63)}`

async function dhtkitNode (i, boot) {
  const DHT = require('..')
  const d = new DHT({ host: addr(i), bootstrap: boot ? [boot] : [], limits: { perIpRate: 0 } })
  await d.ready()
  return {
    addr: `${addr(i)}:${d.address().port}`,
    settle: () => d.makeNeighbours(),
    announce: async (ih, port) => { await d.announce(ih, port) },
    lookup: async (ih) => {
      const t0 = process.hrtime.bigint()
      let first = null
      let n = 0
      for await (const p of d.getPeers(ih)) {
        void p
        if (first === null) first = process.hrtime.bigint()
        n++
      }
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, firstMs: first === null ? null : Number(first - t0) / 1e6, peers: n }
    },
    close: () => d.close()
  }
}

async function btNode (i, boot) {
  const BtDHT = (await import('bittorrent-dht')).default
  const d = new BtDHT({ bootstrap: boot ? [boot] : false, host: false })
  await new Promise((resolve) => d.listen(0, addr(i), resolve))
  if (boot) await new Promise((resolve) => { if (d.ready) resolve(); else d.once('ready', resolve) })
  return {
    addr: `${addr(i)}:${d.address().port}`,
    settle: () => new Promise((resolve) => d.lookup(crypto.randomBytes(20), () => resolve())),
    announce: (ih, port) => new Promise((resolve, reject) => d.announce(ih, port, (e) => (e ? reject(e) : resolve()))),
    lookup: (ih) => new Promise((resolve) => {
      const t0 = process.hrtime.bigint()
      let first = null
      let n = 0
      const onPeer = (peer, infoHash) => {
        if (infoHash.toString('hex') !== ih) return
        if (first === null) first = process.hrtime.bigint()
        n++
      }
      d.on('peer', onPeer)
      d.lookup(ih, () => {
        d.removeListener('peer', onPeer)
        resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, firstMs: first === null ? null : Number(first - t0) / 1e6, peers: n })
      })
    }),
    close: () => new Promise((resolve) => d.destroy(resolve))
  }
}

const make = kind === 'dhtkit' ? dhtkitNode : btNode
const nodes = [await make(0, null)]
for (let i = 1; i < count; i++) nodes.push(await make(i, nodes[0].addr))
for (const n of nodes) await n.settle()
await sleep(500)
const hashes = []
for (let i = 0; i < lookups; i++) {
  const ih = crypto.randomBytes(20).toString('hex')
  await nodes[i % count].announce(ih, 10000 + i)
  hashes.push(ih)
}
const times = []
const firsts = []
let found = 0
for (let i = 0; i < lookups; i++) {
  const r = await nodes[(i + (count >> 1)) % count].lookup(hashes[i])
  times.push(r.ms)
  if (r.firstMs !== null) firsts.push(r.firstMs)
  if (r.peers > 0) found++
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null }
const round = (x) => (x === null ? null : Math.round(x * 10) / 10)
console.log(JSON.stringify({
  kind, nodes: count, lookups, found,
  done_p50_ms: round(q(times, 0.5)), done_p95_ms: round(q(times, 0.95)),
  first_peer_p50_ms: round(q(firsts, 0.5)), first_peer_p95_ms: round(q(firsts, 0.95))
}))
await Promise.all(nodes.map((n) => n.close()))
process.exit(0)
