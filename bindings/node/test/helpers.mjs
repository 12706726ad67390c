// Shared set-up for the package's tests: loopback networks of npm bittorrent-dht and dhtkit
// nodes. Every wait here is bounded.
import BtDHT from 'bittorrent-dht'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)
export const DHT = require('..')

/** `count` bittorrent-dht nodes on 127.<net>.<i>.1, each bootstrapped from the first. */
export async function btSwarm (count, net) {
  const nodes = []
  for (let i = 1; i <= count; i++) {
    const bootstrap = nodes.length ? [`${nodes[0].host}:${nodes[0].address().port}`] : false
    const d = new BtDHT({ bootstrap, host: false })
    d.on('error', (e) => console.error(`bittorrent-dht ${i}: ${e.message}`))
    await new Promise((resolve) => d.listen(0, `127.${net}.${i}.1`, resolve))
    d.host = `127.${net}.${i}.1`
    d.addrString = `${d.host}:${d.address().port}`
    nodes.push(d)
  }
  // Let every node learn the others (bounded).
  await Promise.all(nodes.slice(1).map((d) => waitFor(() => d.toJSON().nodes.length > 0, 10000).catch(() => {})))
  for (const d of nodes) d.addNode({ host: nodes[nodes.length - 1].host, port: nodes[nodes.length - 1].address().port })
  await sleep(200)
  return {
    nodes,
    bootstrap: nodes.map((d) => d.addrString),
    close: () => Promise.all(nodes.map((d) => new Promise((resolve) => d.destroy(resolve))))
  }
}

/** Waits until `cond()` holds, polling; rejects after `ms`. */
export async function waitFor (cond, ms, what = 'condition') {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** A bittorrent-dht lookup for `ih`: the peers it saw, as "ip:port". */
export function btLookup (d, ih) {
  return new Promise((resolve) => {
    const peers = new Set()
    const onPeer = (peer, infoHash) => { if (infoHash.toString('hex') === ih) peers.add(`${peer.host}:${peer.port}`) }
    d.on('peer', onPeer)
    d.lookup(ih, () => { d.removeListener('peer', onPeer); resolve([...peers]) })
  })
}

export function btAnnounce (d, ih, port) {
  return new Promise((resolve, reject) => d.announce(ih, port, (e) => (e ? reject(e) : resolve())))
}

export function randomHex () {
  return require('crypto').randomBytes(20).toString('hex')
}
