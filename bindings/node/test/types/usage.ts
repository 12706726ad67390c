// Compiled with `tsc --noEmit --strict` by types.test.mjs: the declarations describe the API
// the way the README uses it.
import DHT, { PeerLookup, bencode } from 'dhtkit'
import * as dhtjs from 'dhtkit/dht.js'
import DHTServer = require('dhtkit/dht-server')

async function native (): Promise<void> {
  const dht = new DHT({ host: '127.0.0.1', bootstrap: false, limits: { perIpRate: 100 } })
  dht.on('peer', (peer: { host: string, port: number }, infoHash: string) => console.log(peer.host, infoHash))
  await dht.ready()
  const lookup: PeerLookup = dht.getPeers('a4104a9d2f5615601c429fe8bab8177c47c05c84')
  for await (const p of lookup) console.log(p.host, p.port, p.family)
  const all = await dht.getPeers(Buffer.alloc(20))
  console.log(all.length)
  const put = await dht.put({ v: 'hello' })
  const item = await dht.get(put.target)
  if (item) console.log(item.v, item.raw.length)
  const key: string = await dht.publicKey(Buffer.alloc(32))
  console.log(DHT.mutableTarget(Buffer.from(key, 'hex'), 'salt'), DHT.immutableTarget('x'))
  const state = await dht.save()
  const again = await DHT.create({ state, bootstrap: [] })
  await again.close()
  const enc: Buffer = bencode.encode({ a: 1 })
  console.log(bencode.decode(enc))
  try {
    await dht.ping('127.0.0.2:1')
  } catch (e) {
    console.log((e as { code?: string }).code)
  }
  await dht.close()
}

function dropInDhtJs (): void {
  const node = dhtjs.node.create(0)
  node.connect({ address: '127.0.0.1', port: 6881 })
  node.advertise(Buffer.alloc(20), 13589)
  node.on('peer:new', (infohash: Buffer, peer: { address: string, port: number }, isAdvertised: boolean) => {
    if (isAdvertised) console.log(infohash.toString('hex'), peer.address, peer.port)
  })
  const state = node.save()
  node.close()
  dhtjs.node.create(JSON.parse(JSON.stringify(state))).close()
}

function dropInServer (): void {
  const dht = new DHTServer({ address: '127.0.0.1', port: 0, bootstrapNodes: [] })
  dht.on('listening', (o) => console.log(o.address, o.port))
  dht.on('getPeersQuery', (message, node) => console.log(message.a?.info_hash?.toString('hex'), node.address))
  void dht.start()
  void dht.makeNeighbours()
  void dht.sendMessage({ t: 'aa', y: 'q', q: 'ping', a: { id: Buffer.alloc(20) } }, { address: '127.0.0.1', port: 1 })
  void dht.stop()
}

void native
void dropInDhtJs
void dropInServer
