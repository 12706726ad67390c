'use strict'
// dhtkit for Node.js: a BitTorrent Mainline DHT node (BEP 5, 32, 33, 42, 43, 44, 51) in a
// native addon, behind an idiomatic EventEmitter and Promises.
const { EventEmitter } = require('events')
const crypto = require('crypto')
const { native, call, wrapError } = require('./lib/native')
const bencode = require('./lib/bencode')

/** The public routers a node bootstraps from unless told otherwise. */
const DEFAULT_BOOTSTRAP = [
  'router.bittorrent.com:6881',
  'dht.transmissionbt.com:6881',
  'router.utorrent.com:6881',
  'dht.libtorrent.org:25401'
]

/** Hex of a 20-byte id given as a Buffer or as 40 hex digits. */
function hex20 (what, v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    if (v.length !== 20) throw argError(`${what} must be 20 bytes, not ${v.length}`)
    return Buffer.from(v).toString('hex')
  }
  if (typeof v === 'string' && /^[0-9a-fA-F]{40}$/.test(v)) return v.toLowerCase()
  throw argError(`${what} must be a 20-byte Buffer or 40 hex digits`)
}

function argError (message) {
  const e = new TypeError(message)
  e.code = 'DHT_BAD_ARGUMENT'
  return e
}

/** `host:port` from a string, `{host, port}` or `{address, port}`. */
function addrString (a) {
  if (typeof a === 'string') return a
  if (a && typeof a === 'object' && a.port !== undefined) {
    const host = a.host || a.address
    if (!host) throw argError('an address needs a host')
    return host.includes(':') && !host.startsWith('[') ? `[${host}]:${a.port}` : `${host}:${a.port}`
  }
  throw argError('an address is "host:port" or {host, port}')
}

/** `{host, port, family}` from "ip:port" / "[ip]:port". */
function parseAddr (s) {
  const i = s.lastIndexOf(':')
  let host = s.slice(0, i)
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { host, port: Number(s.slice(i + 1)), family: host.includes(':') ? 'IPv6' : 'IPv4' }
}

/** `{address, port}` (the drop-ins' form) from "ip:port" / "[ip]:port". */
function nodeAddress (s) {
  const { host, port } = parseAddr(s)
  return { address: host, port }
}

function toValue (v) {
  return Buffer.isBuffer(v) ? v : bencode.encode(v)
}

/** The JavaScript event name of a core event. */
function jsEventName (core) {
  if (core === 'error') return 'errorReceived'
  return core.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
}

/** The core event names a JavaScript event needs (the inverse of `jsEventName`). */
function coreEventNames (js) {
  switch (js) {
    case 'peer': return ['peer_found']
    case 'warning': return ['socket_error']
    case 'errorReceived': return ['error']
    case 'ready': case 'close': case 'error': case 'newListener': case 'removeListener': return []
  }
  return typeof js === 'string' ? [js.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] : []
}

/** An item read back: the value decoded, and its raw bytes. */
function itemFromJson (j) {
  if (!j) return null
  const raw = Buffer.from(j.v, 'hex')
  let v
  try { v = bencode.decode(raw) } catch { v = raw }
  const item = { target: j.target, v, raw }
  if (j.k) {
    item.k = Buffer.from(j.k, 'hex')
    item.sig = Buffer.from(j.sig, 'hex')
    item.salt = Buffer.from(j.salt, 'hex')
    item.seq = j.seq
  }
  return item
}

function nodesFromJson (list) {
  return list.map((n) => ({ id: n.id, ...parseAddr(n.addr) }))
}

/**
 * A get_peers lookup: `await` it for every peer found (an array), or iterate it with
 * `for await` to take peers as they arrive. `result()` gives the lookup's statistics.
 */
class PeerLookup {
  constructor (started) {
    this._started = started
    this._used = false
  }

  async * [Symbol.asyncIterator] () {
    if (this._used) throw argError('a lookup can be read once')
    this._used = true
    const l = await this._started
    while (true) {
      const p = await call(l.next())
      if (p === null) break
      yield parseAddr(p)
    }
    this._result = JSON.parse(await call(l.finish()))
  }

  /** The lookup's statistics, once it has been read to its end. */
  result () {
    return this._result
  }

  async _all () {
    const peers = []
    for await (const p of this) peers.push(p)
    return peers
  }

  then (resolve, reject) {
    return this._all().then(resolve, reject)
  }

  catch (reject) {
    return this._all().catch(reject)
  }
}

/**
 * A DHT node. It starts binding and bootstrapping as soon as it is constructed; `ready()`
 * resolves once it is bound (and `'listening'` is emitted), `bootstrapped()` once the first
 * bootstrap has finished.
 *
 * Events: one for every event of the core, by its camelCase name (`peerFound`, `nodeAdded`,
 * `query`, `lookupFinished`, …, with the core's `error` — a KRPC error received — as
 * `errorReceived`), each with a plain object; and `peer` (peer, infoHash, event), `listening`,
 * `ready`, `warning` (a socket error), `close`. `error` is emitted only when start-up fails.
 */
class DHT extends EventEmitter {
  constructor (opts = {}) {
    super()
    this._closed = false
    this._native = null
    this._nodeId = opts.nodeId ? hex20('nodeId', opts.nodeId) : undefined
    // Only the events someone listens to cross from the addon (see `_syncEvents`).
    this.on('newListener', (name) => this._syncEvents(name))
    this.on('removeListener', () => this._syncEvents())
    this._opening = this._open(opts)
    this._opening.catch((e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e)
    })
  }

  /** Creates a node and waits until it is bound. */
  static async create (opts) {
    const d = new DHT(opts)
    await d.ready()
    return d
  }

  async _open (opts) {
    const bind = []
    if (opts.bind) bind.push(...(Array.isArray(opts.bind) ? opts.bind : [opts.bind]).map(addrString))
    else bind.push(addrString({ host: opts.host || '0.0.0.0', port: opts.port || 0 }))
    let bootstrap = opts.bootstrap
    if (bootstrap === false) bootstrap = []
    if (bootstrap === undefined || bootstrap === true) bootstrap = DEFAULT_BOOTSTRAP
    const limits = opts.limits || {}
    const o = {
      bind,
      bootstrap: bootstrap.map(addrString),
      state: opts.state ? JSON.stringify(stateToFile(opts.state)) : undefined,
      stateFile: opts.stateFile,
      id: this._nodeId,
      readOnly: opts.readOnly,
      maxNodes: opts.maxNodes,
      peerStore: opts.peerStore,
      messageEvents: opts.messageEvents,
      eventCapacity: opts.eventCapacity,
      alpha: opts.alpha,
      perIpRate: limits.perIpRate,
      perIpBurst: limits.perIpBurst,
      replyRate: limits.replyRate,
      outboundRate: limits.outboundRate,
      outboundBurst: limits.outboundBurst,
      advertiseIntervalMs: opts.advertiseInterval,
      saveIntervalMs: opts.saveInterval
    }
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k]
    const n = await call(native.open(o))
    this._native = n
    this._syncEvents()
    this._addresses = n.addresses()
    this._id = n.id()
    this._pump = this._runEvents(n)
    if (this._closed) {
      await n.close()
    } else {
      n.bootstrapped().then((nodes) => { if (!this._closed) this.emit('ready', nodes) }, () => {})
    }
    return n
  }

  /** Tells the addon which core events to deliver: those with listeners (plus `adding`,
   * a listener being added), and the ones the class itself uses. */
  _syncEvents (adding) {
    if (!this._native) return
    const names = new Set(['listening', 'id_changed'])
    for (const e of [...this.eventNames(), adding]) {
      if (e !== undefined && this.listenerCount(e) + (e === adding ? 1 : 0) > 0) for (const c of coreEventNames(e)) names.add(c)
    }
    this._native.setEvents([...names])
    // The core makes a query or response event only while someone listens to one.
    const rpc = names.has('query') || names.has('response')
    if (rpc !== this._rpcEvents) {
      this._rpcEvents = rpc
      this._native.setRpcEvents(rpc).catch(() => {})
    }
  }

  async _runEvents (n) {
    while (true) {
      const batch = await n.nextEvents(256)
      if (batch === null) break
      for (const e of batch) {
        try {
          this._dispatch(e)
        } catch (err) {
          // A listener threw: surface it as Node does for any listener, not as a lost
          // promise rejection.
          process.nextTick(() => { throw err })
        }
      }
    }
    this.emit('close')
  }

  _dispatch (e) {
    const ev = JSON.parse(e.json)
    if (e.bytes) ev.bytes = e.bytes
    switch (e.name) {
      case 'listening':
        this.emit('listening', parseAddr(ev.addr))
        return
      case 'id_changed':
        this._id = ev.id
        break
      case 'socket_error':
        this.emit('warning', new Error(ev.message))
        break
      case 'peer_found':
        this.emit('peer', parseAddr(ev.peer), ev.info_hash, ev)
        break
    }
    this.emit(jsEventName(e.name), ev)
  }

  _n () {
    if (this._closed) {
      const e = new Error('the DHT node is closed')
      e.code = 'DHT_CLOSED'
      return Promise.reject(e)
    }
    return this._opening
  }

  /** Resolves once the node is bound. */
  async ready () {
    await this._opening
  }

  /** Resolves with the routing-table size once the first bootstrap has finished. */
  async bootstrapped () {
    return call((await this._n()).bootstrapped())
  }

  /** The node id as 40 hex digits (`undefined` until bound unless given as `nodeId`). */
  get id () {
    return this._id || this._nodeId
  }

  /** The node id as a Buffer. */
  get nodeId () {
    return this.id && Buffer.from(this.id, 'hex')
  }

  /** `{address, family, port}` of the (first) bound socket, like dgram's. */
  address () {
    if (!this._addresses) return null
    const a = parseAddr(this._addresses[0])
    return { address: a.host, family: a.family, port: a.port }
  }

  /** Every bound address, as "ip:port". */
  addresses () {
    return this._addresses ? [...this._addresses] : []
  }

  /** Pings a node; resolves with its id (hex). */
  async ping (addr) {
    return call((await this._n()).ping(addrString(addr)))
  }

  /** An iterative find_node: the closest nodes to `target`, `[{id, host, port}]`. */
  async findNode (target) {
    const t = hex20('target', target)
    return nodesFromJson(JSON.parse(await call((await this._n()).findNode(t))))
  }

  /** A get_peers lookup: await it for all peers, or `for await` it for each as found. */
  getPeers (infoHash) {
    const ih = hex20('infoHash', infoHash)
    return new PeerLookup(this._n().then((n) => call(n.getPeers(ih))))
  }

  /** Announces once that we have `infoHash` on TCP `port` (omitted: implied port). */
  async announce (infoHash, port) {
    const ih = hex20('infoHash', infoHash)
    const r = JSON.parse(await call((await this._n()).announce(ih, port)))
    return { announced: r.announced, peers: r.peers.map(parseAddr), lookup: r.lookup }
  }

  /** Keeps announcing `infoHash` until `unadvertise` (now, then every advertise interval). */
  async advertise (infoHash, port) {
    return call((await this._n()).advertise(hex20('infoHash', infoHash), port))
  }

  /** Stops advertising `infoHash`. */
  async unadvertise (infoHash) {
    return call((await this._n()).unadvertise(hex20('infoHash', infoHash)))
  }

  /**
   * BEP 44 put. `{v}` stores an immutable item; `{v, seed, salt?, seq?}` a mutable one
   * signed with the 32-byte ed25519 secret `seed` (`seq` omitted: one more than the newest
   * stored, with compare-and-swap). `v` is any bencodable value (a Buffer is taken as
   * already bencoded). Resolves with `{target, seq, stored, errors}`.
   */
  async put (opts) {
    if (!opts || opts.v === undefined) throw argError('put needs a value v')
    const n = await this._n()
    const v = toValue(opts.v)
    let r
    if (opts.seed) {
      const salt = opts.salt ? Buffer.from(opts.salt) : Buffer.alloc(0)
      r = await call(n.putMutable(Buffer.from(opts.seed), salt, v, opts.seq))
    } else {
      r = await call(n.putImmutable(v))
    }
    return JSON.parse(r)
  }

  /** BEP 44 get: the item stored under `target` (hex or Buffer), verified; `null` if none. */
  async get (target, opts = {}) {
    const t = hex20('target', target)
    const salt = opts.salt ? Buffer.from(opts.salt) : undefined
    return itemFromJson(JSON.parse(await call((await this._n()).get(t, salt))))
  }

  /** The ed25519 public key of a 32-byte secret seed. */
  async publicKey (seed) {
    return call((await this._n()).publicKey(Buffer.from(seed)))
  }

  /** The BEP 44 target of a mutable item: SHA-1 of its public key and salt (hex). */
  static mutableTarget (publicKey, salt) {
    return crypto.createHash('sha1').update(Buffer.from(publicKey)).update(salt ? Buffer.from(salt) : Buffer.alloc(0)).digest('hex')
  }

  /** The BEP 44 target of an immutable value (hex). */
  static immutableTarget (v) {
    return crypto.createHash('sha1').update(toValue(v)).digest('hex')
  }

  /** BEP 51: a sample of the infohashes one node stores. */
  async sample (addr) {
    const s = JSON.parse(await call((await this._n()).sample(addrString(addr))))
    return { interval: s.interval, num: s.num, samples: s.samples, nodes: nodesFromJson(s.nodes) }
  }

  /** BEP 33: `{seeds, peers}` estimated for `infoHash`, or `null` when no node sent filters. */
  async scrape (infoHash) {
    return JSON.parse(await call((await this._n()).scrape(hex20('infoHash', infoHash))))
  }

  /**
   * One query to one node: `method` is ping, find_node, get_peers, announce_peer,
   * sample_infohashes or get; `args` may hold `target` (hex or Buffer), `token`, `port`.
   */
  async request (addr, method, args = {}) {
    const target = args.target ? hex20('target', args.target) : undefined
    const token = args.token ? Buffer.from(args.token, typeof args.token === 'string' ? 'hex' : undefined) : undefined
    const r = JSON.parse(await call((await this._n()).request(addrString(addr), method, target, token, args.port)))
    r.nodes = nodesFromJson(r.nodes)
    r.peers = r.peers.map(parseAddr)
    return r
  }

  /** Adds a node: it is pinged and enters the routing table if it answers. */
  async addNode (addr) {
    return call((await this._n()).addNode(addrString(addr)))
  }

  /** Refreshes every bucket and bootstraps again. */
  async makeNeighbours () {
    return call((await this._n()).makeNeighbours())
  }

  /** Sends a KRPC message as it is (an object to bencode, or a Buffer already bencoded). */
  async sendMessage (message, addr) {
    return call((await this._n()).sendMessage(toValue(message), addrString(addr)))
  }

  /** The routing table: `[{id, host, port, good, rttMs}]`. */
  async routingTable () {
    const t = JSON.parse(await call((await this._n()).routingTable()))
    return t.map((n) => ({ id: n.id, ...parseAddr(n.addr), good: n.good, rttMs: n.rtt_ms }))
  }

  /** Counters and sizes. */
  async stats () {
    return JSON.parse(await call((await this._n()).stats()))
  }

  /** The node's state, `{id, nodes, advertised}`, for `new DHT({state})` later. */
  async save () {
    const f = JSON.parse(await call((await this._n()).state()))
    return stateFromFile(f)
  }

  /** Writes the state file now (with `stateFile`). */
  async saveStateFile () {
    return call((await this._n()).saveState())
  }

  /** Stops the node (writing the state file, if any). Safe to call twice. */
  async close () {
    if (this._closed) return this._closing
    this._closed = true
    this._closing = (async () => {
      let n
      try { n = await this._opening } catch { return }
      await n.close()
      await this._pump
    })()
    return this._closing
  }
}

/** The state object `save()` returns, in the state-file form the core reads. */
function stateToFile (s) {
  if (typeof s === 'string') s = JSON.parse(s)
  if (s.version) return s
  return {
    version: 1,
    id: hex20('state.id', s.id),
    nodes: (s.nodes || []).map((n) => ({ id: hex20('node id', n.id), addr: addrString(n) })),
    advertised: (s.advertised || []).map((a) => ({ info_hash: hex20('infoHash', a.infoHash), port: a.port ?? null }))
  }
}

function stateFromFile (f) {
  return {
    id: f.id,
    nodes: f.nodes.map((n) => ({ id: n.id, ...parseAddr(n.addr) })),
    advertised: (f.advertised || []).map((a) => ({ infoHash: a.info_hash, port: a.port ?? undefined }))
  }
}

module.exports = DHT
module.exports.DHT = DHT
module.exports.default = DHT
module.exports.PeerLookup = PeerLookup
module.exports.bencode = bencode
module.exports.DEFAULT_BOOTSTRAP = DEFAULT_BOOTSTRAP
module.exports._internal = { addrString, parseAddr, nodeAddress, hex20, wrapError, stateToFile, stateFromFile }
