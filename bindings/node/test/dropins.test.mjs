// Both drop-ins beyond their README examples, on a loopback network of bittorrent-dht
// nodes: dht.js's advertise, save and restore; dht-server's query methods, its events and
// the shape of its messages, and its answers as bittorrent-dht sees them.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { btSwarm, btAnnounce, btLookup, waitFor, randomHex } from './helpers.mjs'

const require = createRequire(import.meta.url)
const dhtjs = require('../lib/dhtjs.js')
const DHTServer = require('../lib/dht-server.js')

let swarm
before(async () => { swarm = await btSwarm(6, 81) })
after(async () => { await swarm.close() })

function closed (node) {
  return new Promise((resolve) => { node.once('close', resolve); node.close() })
}

test('dht.js: advertise is announced to the network, and peers announced to it are reported', async () => {
  const node = dhtjs.node.create({ address: '127.82.1.1' })
  const entry = swarm.nodes[0]
  node.connect({ address: entry.host, port: entry.address().port })
  const ih = randomHex()
  const events = []
  node.on('peer:new', (infohash, peer, isAdvertised) => events.push({ ih: infohash.toString('hex'), peer, isAdvertised }))
  node.advertise(Buffer.from(ih, 'hex'), 13590)
  // bittorrent-dht finds the node's announce (bounded retries: the announce may still run).
  await waitFor(async () => (await btLookup(swarm.nodes[4], ih)).includes('127.82.1.1:13590'), 20000, 'the advertised peer')
  // A bittorrent-dht node announcing the same infohash is reported as a peer of an
  // advertised service (it announces to the dht.js node, among others).
  await waitFor(async () => {
    await btAnnounce(swarm.nodes[2], ih, 7002)
    return events.some((e) => e.ih === ih && e.peer.port === 7002 && e.isAdvertised)
  }, 20000, "peer:new for bittorrent-dht's announce")
  // Another infohash, not advertised: reported with isAdvertised false.
  const other = randomHex()
  await waitFor(async () => {
    await btAnnounce(swarm.nodes[3], other, 7003)
    return events.some((e) => e.ih === other)
  }, 20000, 'peer:new for an infohash not advertised')
  assert.ok(events.filter((e) => e.ih === other).every((e) => !e.isAdvertised))
  await closed(node)
})

test('dht.js: save() survives JSON and create(state) restores the id, the nodes and the adverts', async () => {
  const node = dhtjs.node.create({ address: '127.82.2.1' })
  const entry = swarm.nodes[1]
  node.connect({ address: entry.host, port: entry.address().port })
  const ih = randomHex()
  node.advertise(Buffer.from(ih, 'hex'), 13591)
  await waitFor(() => node.save().nodes.length >= 3, 20000, 'the table to fill')
  const state = JSON.parse(JSON.stringify(node.save()))
  assert.match(state.id, /^[0-9a-f]{40}$/)
  assert.deepEqual(state.advertised, [{ infohash: ih, port: 13591 }])
  await closed(node)
  // Restored: the same id, and it works with no connect at all (the saved nodes are enough).
  const old = dhtjs.node.create(state)
  assert.equal(old.id.toString('hex'), state.id)
  await new Promise((resolve) => old.once('listening', resolve))
  assert.equal(old.port, state.port)
  assert.equal(old.address, '127.82.2.1')
  const restored = await old._dht
  const table = await restored.routingTable()
  assert.ok(table.length >= 1, 'saved nodes answered')
  assert.ok(table.every((n) => state.nodes.some((s) => s.address === n.host && s.port === n.port)), 'the table holds saved nodes')
  await waitFor(async () => (await btLookup(swarm.nodes[5], ih)).includes(`127.82.2.1:13591`), 20000, 'the restored advert')
  await closed(old)
})

test('dht-server: the query methods, their events and KRPC-shaped messages', async () => {
  const server = new DHTServer({ address: '127.83.1.1', port: 0, bootstrapNodes: swarm.nodes.slice(0, 2).map((d) => ({ address: d.host, port: d.address().port })) })
  const seen = {}
  for (const ev of ['message', 'response', 'query', 'getPeersResponse', 'findNodeResponse', 'pingOrAnnounceResponse', 'findNodeQuery', 'getPeersQuery', 'announcePeerQuery', 'pingQuery']) {
    seen[ev] = []
    server.on(ev, (message, node) => seen[ev].push({ message, node }))
  }
  const raw = []
  server.on('messageRaw', (b, node) => raw.push({ b, node }))
  let listening
  server.on('listening', (o) => { listening = o })
  await server.start()
  assert.equal(listening.address, '127.83.1.1')
  assert.ok(listening.port > 0)
  server.makeNeighbours()
  const bt = swarm.nodes[3]
  const to = { address: bt.host, port: bt.address().port }

  const pong = await server.ping(to)
  assert.equal(pong.id, bt.nodeId.toString('hex'))
  await waitFor(() => seen.pingOrAnnounceResponse.some((e) => e.node.port === to.port), 5000, 'pingOrAnnounceResponse')
  const m = seen.response.find((e) => e.node.port === to.port).message
  assert.ok(Buffer.isBuffer(m.t) && Buffer.isBuffer(m.y) && Buffer.isBuffer(m.r.id), 'byte strings are Buffers')
  assert.equal(m.y.toString(), 'r')
  assert.ok(raw.length > 0 && Buffer.isBuffer(raw[0].b))

  const found = await server.findNode(randomHex(), to)
  assert.ok(found.nodes.length > 0)
  await waitFor(() => seen.findNodeResponse.length > 0, 5000, 'findNodeResponse')

  // bittorrent-dht announces through the server: the server answers get_peers with a real
  // token, accepts announce_peer, and tells the listeners about both.
  const ih = randomHex()
  bt.addNode({ host: '127.83.1.1', port: listening.port })
  await waitFor(async () => {
    await btAnnounce(bt, ih, 7010)
    return seen.announcePeerQuery.some((e) => e.message.a.info_hash.toString('hex') === ih)
  }, 20000, 'announcePeerQuery')
  const q = seen.getPeersQuery.find((e) => e.message.a.info_hash.toString('hex') === ih)
  assert.ok(q && q.message.q.toString() === 'get_peers' && Buffer.isBuffer(q.message.a.id))
  assert.ok(seen.query.length >= 2)
  // The server stored the announce: a get_peers to it returns the peer.
  const answer = await server.getPeers(ih)
  assert.ok(answer.some((p) => p.port === 7010), `peers: ${JSON.stringify(answer)}`)
  await waitFor(() => seen.getPeersResponse.length > 0, 5000, 'getPeersResponse')

  // announcePeer to one node: get_peers for its token, then announce_peer on our port.
  const ih2 = randomHex()
  const ann = await server.announcePeer(ih2, to)
  assert.ok(ann, 'the announce was answered')
  await waitFor(async () => (await btLookup(swarm.nodes[0], ih2)).includes(`127.83.1.1:${listening.port}`), 20000, 'the announce seen by bittorrent-dht')

  // sendMessage sends a KRPC object as it is; the answer arrives as events.
  const before = seen.pingOrAnnounceResponse.length
  await server.sendMessage({ t: Buffer.from('zz'), y: 'q', q: 'ping', a: { id: Buffer.alloc(20, 7) } }, to)
  await waitFor(() => seen.pingOrAnnounceResponse.length > before, 5000, 'the answer to sendMessage')
  assert.equal(seen.pingOrAnnounceResponse.at(-1).message.t.toString(), 'zz')

  // A query the server receives: bittorrent-dht pings it.
  await waitFor(() => new Promise((resolve) => {
    bt._rpc.query({ host: '127.83.1.1', port: listening.port }, { q: 'ping', a: { id: bt.nodeId } }, (err, res) => resolve(!err && res && res.r && Buffer.isBuffer(res.r.id)))
  }), 5000, 'a ping answered')
  assert.ok(seen.pingQuery.length > 0)
  // Methods never reject: a node that does not answer gives null.
  assert.equal(await server.ping({ address: '127.83.9.9', port: 9 }), null)
  await server.stop()
})
