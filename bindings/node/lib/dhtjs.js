'use strict'
// A drop-in for indutny's dht.js (`require('dht.js')`): dht.node.create(port | state |
// options), node.connect({address, port, id?}), node.advertise(infohash, port), the
// 'peer:new' (infohash, peer, isAdvertised) event, node.save() and node.close(); over a
// dhtkit node, which answers every query and keeps announcing what it advertises.
const { EventEmitter } = require('events')
const crypto = require('crypto')
const DHT = require('..')

const { addrString, nodeAddress } = DHT._internal

// Nodes still shutting down: a node created from a saved state may want the port one of
// them holds, so a new node binds after they have let go.
const closing = new Set()

/** How long `connect` waits for the node it was given to answer before going on. */
const CONNECT_WAIT_MS = 5000

/** Options a node is created with when `create` is given none (tests point these at loopback). */
const defaults = { address: '0.0.0.0', bootstrap: [] }

class Node extends EventEmitter {
  constructor (arg) {
    super()
    let opts
    if (arg === undefined || arg === null) opts = {}
    else if (typeof arg === 'number') opts = { port: arg }
    else if (typeof arg === 'object') opts = { ...arg }
    else throw new TypeError('dht.node.create takes a port, a saved state or options')
    const state = Array.isArray(opts.nodes) && opts.id ? opts : null
    this.id = state ? Buffer.from(state.id, 'hex') : (opts.id ? Buffer.from(opts.id) : crypto.randomBytes(20))
    this.port = opts.port || 0
    this.address = opts.address || defaults.address
    this._nodes = new Map() // "ip:port" -> hex id, mirrored from the core's events
    this._advertised = new Map() // hex infohash -> port
    for (const n of state ? state.nodes : []) this._nodes.set(`${n.address}:${n.port}`, n.id)
    for (const a of (state && state.advertised) || []) this._advertised.set(a.infohash, a.port)
    this._closed = false
    this._waiting = new Map() // "ip:port" -> resolve, for connect waiting on a node's answer
    const pending = [...closing]
    const boot = opts.bootstrap || defaults.bootstrap
    this._dht = (async () => {
      await Promise.allSettled(pending)
      const d = new DHT({
        host: this.address,
        port: this.port,
        nodeId: this.id,
        bootstrap: boot,
        state: state ? {
          id: state.id,
          nodes: state.nodes.map((n) => ({ id: n.id, address: n.address, port: n.port })),
          advertised: [...this._advertised].map(([infoHash, port]) => ({ infoHash, port }))
        } : undefined
      })
      this._wire(d)
      await d.ready()
      return d
    })()
    this._dht.then((d) => {
      this.port = d.address().port
      this.emit('listening', d.address())
    }, (e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e)
      else process.emitWarning(`dht.js node could not start: ${e.message}`)
    })
  }

  _wire (d) {
    d.on('nodeAdded', (e) => {
      this._nodes.set(e.addr, e.id)
      const w = this._waiting.get(e.addr)
      if (w) {
        this._waiting.delete(e.addr)
        w()
      }
    })
    d.on('nodeRemoved', (e) => this._nodes.delete(e.addr))
    d.on('idChanged', (e) => { this.id = Buffer.from(e.id, 'hex') })
    d.on('peerFound', (e) => {
      const p = nodeAddress(e.peer)
      this.emit('peer:new', Buffer.from(e.info_hash, 'hex'), p, this._advertised.has(e.info_hash))
    })
    d.on('query', (e) => {
      // A peer announcing itself to us.
      if (e.method === 'announce_peer' && e.peer && e.info_hash) {
        this.emit('peer:new', Buffer.from(e.info_hash, 'hex'), nodeAddress(e.peer), this._advertised.has(e.info_hash))
      }
    })
  }

  // Operations run one after another, in the order they were called: an advertise made
  // right after connect looks up through the node connect added.
  _with (f) {
    if (this._closed) return
    this._queue = (this._queue || this._dht).then((d) => f(d).then(() => d, () => d))
    this._queue.catch(() => {})
  }

  /** Adds a known node: it is pinged and joins the routing table if it answers. */
  connect (node) {
    if (!node || !node.address || !node.port) throw new TypeError('connect needs {address, port}')
    const key = addrString(node)
    this._with(async (d) => {
      // The node joins the table when it answers our ping: wait for that (at most
      // CONNECT_WAIT_MS), so that what is called next (advertise) looks up through it.
      const answered = new Promise((resolve) => {
        const t = setTimeout(resolve, CONNECT_WAIT_MS)
        this._waiting.set(key, () => { clearTimeout(t); resolve() })
      })
      await d.addNode({ host: node.address, port: node.port })
      if (!this._nodes.has(key)) await answered
      this._waiting.delete(key)
      // Once the table has a node, fill it from there.
      await d.makeNeighbours()
    })
  }

  /** Announces `infohash` (a 20-byte Buffer) on `port`, now and periodically. */
  advertise (infohash, port) {
    const hex = Buffer.from(infohash).toString('hex')
    this._advertised.set(hex, port)
    this._with(async (d) => { await d.advertise(hex, port) })
  }

  /** The node's state as a plain object (JSON-safe): give it to `create` to restore. */
  save () {
    return {
      id: this.id.toString('hex'),
      address: this.address,
      port: this.port,
      nodes: [...this._nodes].map(([addr, id]) => ({ id, ...nodeAddress(addr) })),
      advertised: [...this._advertised].map(([infohash, port]) => ({ infohash, port }))
    }
  }

  /** Stops the node; the process can exit once it has. */
  close () {
    if (this._closed) return
    this._closed = true
    const p = this._dht.then((d) => d.close(), () => {})
    closing.add(p)
    p.finally(() => {
      closing.delete(p)
      this.emit('close')
    })
  }
}

module.exports = {
  node: { create: (arg) => new Node(arg), Node },
  defaults
}
