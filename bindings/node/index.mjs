import DHT from './index.js'
export default DHT
export const { PeerLookup, bencode, DEFAULT_BOOTSTRAP } = DHT
export { DHT }
