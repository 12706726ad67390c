// npm bittorrent-dht as a load-test target: one node on ADDR:PORT, no bootstrap. Prints its
// pid, then runs until killed (or 10 minutes).
// usage: node crates/dhtkit-cli/tests/interop/js/bt_node.mjs ADDR PORT (beside its node_modules)
import DHT from 'bittorrent-dht'
const [addr, port] = [process.argv[2], Number(process.argv[3])]
const dht = new DHT({ bootstrap: false })
dht.listen(port, addr, () => console.log(process.pid))
setTimeout(() => process.exit(0), 600_000)
