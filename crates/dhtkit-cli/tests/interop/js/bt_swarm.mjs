// A swarm of npm bittorrent-dht nodes on loopback, driven by JSON lines on stdin (dhtkit's
// interop test). Node i listens on 127.<net>.<i>.1:<port>, its own /24.
//
// Commands and answers, one JSON object per line:
//   {"cmd":"status"}                                   -> {"tables":[nodes per node]}
//   {"cmd":"announce","idx":i,"ih":hex,"port":p}       -> {"ok":true} or {"error":...}
//   {"cmd":"lookup","idx":i,"ih":hex,"want":"ip:port","timeout":s}
//                                                      -> {"peers":[...],"found":bool}
//   {"cmd":"quit"}
// Every wait is bounded; the script exits when stdin closes.
import DHT from 'bittorrent-dht'
import readline from 'node:readline'

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
)
const count = Number(args.count ?? 5)
const net = Number(args.net ?? 100)
const port = Number(args.port ?? 16881)
const bootstrap = (args.bootstrap ?? '').split(',').filter(Boolean)

const answer = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const nodes = []
for (let i = 1; i <= count; i++) {
  const dht = new DHT({ bootstrap, host: false })
  dht.on('error', (e) => process.stderr.write(`bt_swarm: node ${i}: ${e.message}\n`))
  nodes.push(dht)
  await new Promise((resolve) => dht.listen(port, `127.${net}.${i}.1`, resolve))
}
process.stderr.write(`bt_swarm: ${count} bittorrent-dht nodes on 127.${net}.x.1:${port}\n`)
answer({ ready: true })

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  const cmd = JSON.parse(line)
  if (cmd.cmd === 'quit') {
    answer({ ok: true })
    break
  } else if (cmd.cmd === 'status') {
    answer({ tables: nodes.map((d) => d.toJSON().nodes.length) })
  } else if (cmd.cmd === 'announce') {
    const err = await new Promise((resolve) => nodes[cmd.idx].announce(cmd.ih, cmd.port, resolve))
    answer(err ? { error: String(err) } : { ok: true })
  } else if (cmd.cmd === 'lookup') {
    const dht = nodes[cmd.idx]
    const peers = new Set()
    const onPeer = (peer, infoHash) => {
      if (infoHash.toString('hex') === cmd.ih) peers.add(`${peer.host}:${peer.port}`)
    }
    dht.on('peer', onPeer)
    const deadline = Date.now() + 1000 * (cmd.timeout ?? 10)
    await new Promise((resolve) => dht.lookup(cmd.ih, resolve))
    while (!peers.has(cmd.want) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    dht.removeListener('peer', onPeer)
    answer({ peers: [...peers].sort(), found: peers.has(cmd.want) })
  } else {
    answer({ error: `unknown command ${cmd.cmd}` })
  }
}
for (const d of nodes) d.destroy()
process.exit(0)
