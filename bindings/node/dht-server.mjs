import DHT from './lib/dht-server.js'
export default DHT
export const { defaults } = DHT
