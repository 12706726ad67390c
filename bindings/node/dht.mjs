import dht from './lib/dhtjs.js'
export default dht
export const { node, defaults } = dht
