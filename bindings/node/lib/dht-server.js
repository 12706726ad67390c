'use strict'
// A drop-in for AlphaReign's dht-server: new DHT(options), start(), makeNeighbours(),
// ping / findNode / getPeers / announcePeer / sendMessage, and its events with messages
// shaped as bencode-decoded KRPC (Buffers for byte strings). Unlike the original, the node
// answers every query itself, correctly (its own transaction ids echoed, real tokens, a
// peer store), so listeners only observe.
const { EventEmitter } = require('events')
const crypto = require('crypto')
const DHT = require('..')
const bencode = require('./bencode')

/** What `new DHT(options)` fills in for missing options (tests point these at loopback). */
const defaults = {
  address: '0.0.0.0',
  bootstrapNodes: [
    { address: 'router.bittorrent.com', port: 6881 },
    { address: 'dht.transmissionbt.com', port: 6881 }
  ],
  debug: false,
  maxNodes: 2000,
  port: 6881
}

function hexOf (v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex')
  return String(v).toLowerCase()
}

const { nodeAddress } = DHT._internal

class DHTServer extends EventEmitter {
  constructor (options = {}) {
    super()
    this.options = { ...defaults, ...options }
    this._dht = null
  }

  /** Binds the socket and joins the network; emits 'listening' with the options. */
  start () {
    if (this._dht) return this._ready
    const o = this.options
    const d = new DHT({
      host: o.address,
      port: o.port,
      bootstrap: (o.bootstrapNodes || []).map((n) => ({ host: n.address || n.host, port: n.port })),
      maxNodes: o.maxNodes,
      messageEvents: true
    })
    this._dht = d
    d.on('datagram', (e) => this._onDatagram(e))
    d.on('warning', (err) => this._error(err))
    this._ready = d.ready().then(() => {
      this.options.port = d.address().port
      this.emit('listening', this.options)
      return d
    }, (err) => {
      this._error(err)
      return null
    })
    return this._ready
  }

  _error (err) {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else process.nextTick(() => { throw err })
  }

  _onDatagram (e) {
    const node = nodeAddress(e.from)
    const raw = e.bytes
    this.emit('messageRaw', raw, node)
    let message
    try {
      message = bencode.decode(raw)
    } catch (err) {
      if (this.options.debug) console.error(`dht-server: undecodable message from ${e.from}: ${err.message}`)
      return
    }
    if (!message || typeof message !== 'object' || !Buffer.isBuffer(message.y)) return
    if (this.options.debug) console.log(`dht-server: ${message.y} from ${e.from}`)
    this.emit('message', message, node)
    const y = message.y.toString()
    if (y === 'r' && message.r) {
      this.emit('response', message, node)
      const r = message.r
      if (r.token || r.values) this.emit('getPeersResponse', message, node)
      else if (r.nodes || r.nodes6) this.emit('findNodeResponse', message, node)
      else this.emit('pingOrAnnounceResponse', message, node)
    } else if (y === 'q' && Buffer.isBuffer(message.q)) {
      this.emit('query', message, node)
      const q = message.q.toString()
      const name = { find_node: 'findNodeQuery', get_peers: 'getPeersQuery', announce_peer: 'announcePeerQuery', ping: 'pingQuery' }[q]
      if (name) this.emit(name, message, node)
    }
  }

  async _d () {
    const d = this._dht ? await this._ready : await this.start()
    if (!d) throw new Error('the DHT server did not start')
    return d
  }

  /** A node from the routing table, for calls made without one. */
  async _anyNode (d) {
    const t = await d.routingTable()
    if (t.length === 0) return null
    const n = t[crypto.randomInt(t.length)]
    return { address: n.host, port: n.port }
  }

  // The query methods resolve with the answer (or null when there was none); answers also
  // arrive as events. They never reject, so a caller that ignores them loses nothing.
  async _quiet (f) {
    try {
      return await f(await this._d())
    } catch (err) {
      if (this.options.debug) console.error(`dht-server: ${err.message}`)
      return null
    }
  }

  /** Pings `node`. */
  ping (node) {
    return this._quiet((d) => d.request({ host: node.address, port: node.port }, 'ping'))
  }

  /** Asks `node` (or, without one, a node from the table) for the nodes closest to `nodeId`. */
  findNode (nodeId, node) {
    return this._quiet(async (d) => {
      node = node || await this._anyNode(d)
      if (!node) return null
      return d.request({ host: node.address, port: node.port }, 'find_node', { target: hexOf(nodeId) })
    })
  }

  /** Asks `node` for peers of `infoHash` (hex); without a node, runs a whole lookup. */
  getPeers (infoHash, node) {
    return this._quiet(async (d) => {
      if (node) return d.request({ host: node.address, port: node.port }, 'get_peers', { target: hexOf(infoHash) })
      return d.getPeers(hexOf(infoHash))
    })
  }

  /** Announces `infoHash` on our port to `node` (after a get_peers for its token), or to the
   * nodes closest to it. */
  announcePeer (infoHash, node) {
    return this._quiet(async (d) => {
      const ih = hexOf(infoHash)
      const port = this.options.port
      if (!node) return d.announce(ih, port)
      const to = { host: node.address, port: node.port }
      const r = await d.request(to, 'get_peers', { target: ih })
      if (!r.token) return null
      return d.request(to, 'announce_peer', { target: ih, token: r.token, port })
    })
  }

  /** Fills the routing table from the nodes it has (and the bootstrap nodes). */
  makeNeighbours () {
    return this._quiet((d) => d.makeNeighbours())
  }

  /** Sends `message` (a KRPC object, bencoded here; or a Buffer) to `node`. */
  sendMessage (message, node) {
    return this._quiet((d) => d.sendMessage(message, { host: node.address, port: node.port }))
  }

  /** Stops the server (not in the original; the process can exit after it). */
  stop () {
    return this._dht ? this._dht.close() : Promise.resolve()
  }

  /** Same as `stop()`. */
  close () {
    return this.stop()
  }
}

module.exports = DHTServer
module.exports.DHT = DHTServer
module.exports.defaults = defaults
