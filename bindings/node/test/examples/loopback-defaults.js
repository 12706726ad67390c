// Preloaded before the dht-server example: its defaults point at the test's loopback
// network instead of the public routers (BOOTSTRAP="ip:port,ip:port", ADDRESS).
const { defaults } = require('dhtkit/dht-server')
defaults.bootstrapNodes = process.env.BOOTSTRAP.split(',').map((a) => {
  const i = a.lastIndexOf(':')
  return { address: a.slice(0, i), port: Number(a.slice(i + 1)) }
})
defaults.address = process.env.ADDRESS
defaults.port = 0
