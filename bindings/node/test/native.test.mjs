// The native API against a loopback network of npm bittorrent-dht and dhtkit nodes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { DHT, btSwarm, btLookup, btAnnounce, waitFor, randomHex } from './helpers.mjs'

let swarm
const ours = []

before(async () => {
  swarm = await btSwarm(6, 61)
  for (let i = 1; i <= 3; i++) {
    // Three queries in a row from one IP exceed the default per-IP burst of the receiver:
    // the limits option lifts it for this test.
    ours.push(await DHT.create({ bind: `127.62.${i}.1:0`, bootstrap: swarm.bootstrap, limits: { perIpRate: 1000 } }))
  }
  await Promise.all(ours.map((d) => d.bootstrapped()))
})

after(async () => {
  await Promise.all(ours.map((d) => d.close()))
  await swarm.close()
})

test('addresses, ids and bootstrap', async () => {
  const [a] = ours
  assert.equal(a.address().address, '127.62.1.1')
  assert.match(a.id, /^[0-9a-f]{40}$/)
  assert.equal(a.nodeId.length, 20)
  const table = await a.routingTable()
  assert.ok(table.length >= 3, `routing table has ${table.length} nodes`)
  assert.ok(table.some((n) => n.host.startsWith('127.61.')), 'bittorrent-dht nodes are in the table')
})

test('ping a bittorrent-dht node and a dhtkit node', async () => {
  const bt = swarm.nodes[2]
  assert.equal(await ours[0].ping(bt.addrString), bt.nodeId.toString('hex'))
  assert.equal(await ours[0].ping({ host: '127.62.2.1', port: ours[1].address().port }), ours[1].id)
})

test('findNode returns the closest nodes, closest first', async () => {
  const target = swarm.nodes[3].nodeId.toString('hex')
  const nodes = await ours[0].findNode(target)
  assert.ok(nodes.length >= 3)
  assert.equal(nodes[0].id, target, 'the node itself comes first')
  assert.equal(nodes[0].host, swarm.nodes[3].host)
})

test('announce from dhtkit, found by bittorrent-dht; announce from bittorrent-dht, found by dhtkit', async () => {
  const ih = randomHex()
  const r = await ours[0].announce(ih, 7001)
  assert.ok(r.announced >= 1, `announced to ${r.announced} nodes`)
  const seen = await btLookup(swarm.nodes[4], ih)
  assert.ok(seen.includes('127.62.1.1:7001'), `bittorrent-dht saw ${seen}`)

  const ih2 = randomHex()
  await btAnnounce(swarm.nodes[5], ih2, 7002)
  const want = `${swarm.nodes[5].host}:7002`
  // As an async iterator: peers as they are found.
  const lookup = ours[1].getPeers(ih2)
  const streamed = []
  for await (const p of lookup) streamed.push(`${p.host}:${p.port}`)
  assert.ok(streamed.includes(want), `streamed ${streamed}`)
  assert.equal(lookup.result().kind, 'get_peers')
  assert.ok(lookup.result().responses >= 1)
  // As a promise of every peer.
  const all = await ours[2].getPeers(ih2)
  assert.ok(all.some((p) => `${p.host}:${p.port}` === want))
})

test('peer events for an advertised infohash', async () => {
  const ih = randomHex()
  await btAnnounce(swarm.nodes[1], ih, 7003)
  const got = new Promise((resolve) => {
    ours[2].on('peer', function onPeer (peer, infoHash, ev) {
      if (infoHash === ih && ev.advertised) { ours[2].removeListener('peer', onPeer); resolve(peer) }
    })
  })
  await ours[2].advertise(ih, 7004)
  const peer = await Promise.race([got, new Promise((resolve, reject) => setTimeout(() => reject(new Error('no peer event')), 15000))])
  assert.deepEqual([peer.host, peer.port], [swarm.nodes[1].host, 7003])
  await ours[2].unadvertise(ih)
  const stats = await ours[2].stats()
  assert.equal(stats.advertised, 0)
})

test('BEP 44: immutable and mutable items between dhtkit nodes', async () => {
  const value = { hello: 'world', n: 42 }
  const put = await ours[0].put({ v: value })
  assert.equal(put.target, DHT.immutableTarget(value))
  assert.ok(put.stored >= 1)
  const item = await ours[2].get(put.target)
  assert.equal(item.v.hello.toString(), 'world')
  assert.equal(item.v.n, 42)

  const seed = Buffer.alloc(32, 9)
  const k = await ours[0].publicKey(seed)
  const target = DHT.mutableTarget(k, 'salt')
  const p1 = await ours[0].put({ v: 'first', seed, salt: 'salt' })
  assert.equal(p1.target, target)
  assert.equal(p1.seq, 1)
  const p2 = await ours[1].put({ v: 'second', seed, salt: 'salt' })
  assert.equal(p2.seq, 2, 'the next put reads the stored seq and adds one')
  const got = await ours[2].get(target, { salt: 'salt' })
  assert.equal(got.v.toString(), 'second')
  assert.equal(got.seq, 2)
  assert.deepEqual(got.k, k)
  assert.equal(await ours[2].get(randomHex()), null)
})

test('one query to one node: get_peers, then announce_peer with its token, then a BEP 51 sample', async () => {
  const ih = randomHex()
  const b = ours[1]
  const to = `127.62.2.1:${b.address().port}`
  const r = await ours[0].request(to, 'get_peers', { target: ih })
  assert.equal(r.id, b.id)
  assert.match(r.token, /^[0-9a-f]+$/)
  await ours[0].request(to, 'announce_peer', { target: ih, token: r.token, port: 7005 })
  const s = await ours[0].sample(to)
  assert.ok(s.samples.includes(ih), 'the sample holds the infohash just announced')
  assert.ok(s.num >= 1)
})

test('errors carry a code', async () => {
  await assert.rejects(ours[0].ping('127.62.9.9:9'), (e) => e.code === 'DHT_TIMEOUT')
  await assert.rejects(ours[0].findNode('nothex'), (e) => e.code === 'DHT_BAD_ARGUMENT')
  await assert.rejects(ours[0].ping('no port here'), (e) => e.code === 'DHT_BAD_ADDRESS')
  await assert.rejects(DHT.create({ bind: ours[0].addresses()[0], bootstrap: [] }), (e) => e.code === 'EADDRINUSE')
})

test('events: queries received and nodes added, as plain objects', async () => {
  // Query events start once the addon has been told someone listens (asynchronously):
  // ping until one of ours shows up (bounded); other nodes' queries may come first.
  const pings = []
  const onQuery = (q) => { if (q.method === 'ping' && q.from.startsWith('127.61.1.1:')) pings.push(q) }
  ours[0].on('query', onQuery)
  await waitFor(async () => {
    await new Promise((resolve) => swarm.nodes[0]._rpc.query({ host: '127.62.1.1', port: ours[0].address().port }, { q: 'ping', a: { id: swarm.nodes[0].nodeId } }, resolve))
    return pings.length > 0
  }, 10000, 'a query event for our ping')
  ours[0].removeListener('query', onQuery)
  const q = pings[0]
  assert.equal(q.method, 'ping')
  assert.equal(q.answer, 'response')
  assert.equal(q.from.split(':')[0], '127.61.1.1')
})

test('save and restore: same id, same nodes', async () => {
  const state = JSON.parse(JSON.stringify(await ours[0].save()))
  assert.equal(state.id, ours[0].id)
  assert.ok(state.nodes.length >= 3)
  const again = await DHT.create({ bind: '127.62.4.1:0', bootstrap: false, state })
  try {
    assert.equal(again.id, ours[0].id)
    const table = await again.routingTable()
    const wanted = new Set(state.nodes.map((n) => `${n.host}:${n.port}`))
    await waitFor(async () => (await again.routingTable()).length > 0, 10000, 'restored nodes')
    const have = (await again.routingTable()).map((n) => `${n.host}:${n.port}`)
    assert.ok(have.every((a) => wanted.has(a)) || table.length === 0, 'nodes come from the state')
    assert.ok(have.length >= Math.min(3, wanted.size), `restored ${have.length} of ${wanted.size}`)
  } finally {
    await again.close()
  }
  await assert.rejects(again.ping(swarm.bootstrap[0]), (e) => e.code === 'DHT_CLOSED')
})

test('BEP 33 scrape and read-only mode on a dhtkit-only network', async () => {
  const nodes = []
  try {
    nodes.push(await DHT.create({ bind: '127.63.1.1:0', bootstrap: false }))
    for (let i = 2; i <= 4; i++) nodes.push(await DHT.create({ bind: `127.63.${i}.1:0`, bootstrap: [nodes[0].addresses()[0]] }))
    await Promise.all(nodes.map((d) => d.bootstrapped()))
    await nodes[0].makeNeighbours()
    const ih = randomHex()
    await nodes[1].announce(ih, 8001)
    await nodes[2].announce(ih, 8002)
    const s = await nodes[3].scrape(ih)
    assert.ok(s && s.peers + s.seeds >= 1, `scrape: ${JSON.stringify(s)}`)
    const ro = await DHT.create({ bind: '127.63.9.1:0', bootstrap: [nodes[0].addresses()[0]], readOnly: true })
    nodes.push(ro)
    await ro.bootstrapped()
    const q = await ro.request(nodes[0].addresses()[0], 'ping')
    assert.equal(q.id, nodes[0].id)
    const table0 = await nodes[0].routingTable()
    assert.ok(!table0.some((n) => n.host === '127.63.9.1'), 'a read-only node is not added to tables (BEP 43)')
  } finally {
    await Promise.all(nodes.map((d) => d.close()))
  }
})
