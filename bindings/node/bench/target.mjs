// A load-test target for bench/node.sh: one node on ADDR:PORT, no bootstrap, either the
// dhtkit package (limits lifted, as `dhtkit node --per-ip-rate 0 --reply-rate 0`) or npm
// bittorrent-dht. Prints its pid, then runs until killed (at most 10 minutes).
// usage: node bench/target.mjs dhtkit|bittorrent-dht ADDR PORT
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const [kind, addr, port] = [process.argv[2], process.argv[3], Number(process.argv[4])]
if (kind === 'dhtkit') {
  const DHT = require('..')
  const d = new DHT({ host: addr, port, bootstrap: false, limits: { perIpRate: 0, replyRate: 0 } })
  d.ready().then(() => console.log(process.pid))
} else {
  const BtDHT = (await import('bittorrent-dht')).default
  const d = new BtDHT({ bootstrap: false })
  d.listen(port, addr, () => console.log(process.pid))
}
setTimeout(() => process.exit(0), 600_000)
