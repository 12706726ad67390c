// Type declarations for the `dhtkit` package's native API (`require('dhtkit')`).
import { EventEmitter } from 'events'

/** A node id, infohash or BEP 44 target: a 20-byte Buffer or 40 hex digits. */
export type Id = Buffer | Uint8Array | string

/** An address: "host:port" ("[v6]:port" for IPv6), `{host, port}` or `{address, port}`. */
export type Address = string | { host: string, port: number } | { address: string, port: number }

/** An address as the package reports it. */
export interface PeerAddress {
  host: string
  port: number
  family: 'IPv4' | 'IPv6'
}

/** A DHT node as the package reports it (`id` in hex). */
export interface NodeAddress extends PeerAddress {
  id: string
}

/** Rate limits against floods; every field optional, the core's defaults otherwise. */
export interface Limits {
  /** Queries per second answered for one source IP (0: no limit). */
  perIpRate?: number
  /** Burst allowed above `perIpRate` (default ten seconds' worth). */
  perIpBurst?: number
  /** Replies per second the node sends in all (0: no limit). */
  replyRate?: number
  /** Queries per second the node sends to one IP (0: no limit). */
  outboundRate?: number
  /** Burst allowed above `outboundRate`. */
  outboundBurst?: number
}

/** A saved state: what `save()` returns and `state` takes. */
export interface State {
  id: string
  nodes: Array<{ id: string, host?: string, address?: string, port: number }>
  advertised?: Array<{ infoHash: string, port?: number }>
}

export interface Options {
  /** Addresses to bind ("0.0.0.0:6881", "[::]:6881"); both for a dual-stack node. */
  bind?: Address | Address[]
  /** Host to bind when `bind` is not given (default "0.0.0.0"). */
  host?: string
  /** UDP port when `bind` is not given (default 0: any). */
  port?: number
  /** Bootstrap nodes; `false` or `[]` for none; default the public routers. */
  bootstrap?: Address[] | boolean
  /** A state from `save()` (or its JSON) to start from: the same id and nodes. */
  state?: State | string
  /** A state file read at start and written periodically and at close. */
  stateFile?: string
  /** The node id (otherwise from the state, or a BEP 42 id for the node's address). */
  nodeId?: Id
  /** BEP 43: query others but answer no one. */
  readOnly?: boolean
  /** Routing-table size bound. */
  maxNodes?: number
  /** Store the peers others announce (default true). */
  peerStore?: boolean
  /** Emit `datagram` and `message` events for every message sent and received. */
  messageEvents?: boolean
  /** Events buffered before the oldest are dropped. */
  eventCapacity?: number
  /** Lookup parallelism. */
  alpha?: number
  limits?: Limits
  /** Milliseconds between the announces of an advertised infohash. */
  advertiseInterval?: number
  /** Milliseconds between writes of `stateFile`. */
  saveInterval?: number
}

/** The statistics of a finished lookup. */
export interface LookupResult {
  [key: string]: unknown
}

/** A get_peers lookup: await it for every peer found, or `for await` it for each as found. */
export class PeerLookup implements PromiseLike<PeerAddress[]>, AsyncIterable<PeerAddress> {
  [Symbol.asyncIterator] (): AsyncIterator<PeerAddress>
  then<A = PeerAddress[], B = never> (resolve?: ((v: PeerAddress[]) => A | PromiseLike<A>) | null, reject?: ((e: any) => B | PromiseLike<B>) | null): Promise<A | B>
  catch<B = never> (reject?: ((e: any) => B | PromiseLike<B>) | null): Promise<PeerAddress[] | B>
  /** The lookup's statistics once it has been read to its end. */
  result (): LookupResult | undefined
}

/** A BEP 44 item read back and verified. */
export interface Item {
  target: string
  /** The value, bencode-decoded (byte strings as Buffers), or the raw bytes if not bencode. */
  v: any
  /** The value's bencoded bytes. */
  raw: Buffer
  /** Mutable items only. */
  k?: Buffer
  sig?: Buffer
  salt?: Buffer
  seq?: number
}

export interface PutOptions {
  /** Any bencodable value; a Buffer is taken as already bencoded. */
  v: any
  /** 32-byte ed25519 secret seed: makes the item mutable. */
  seed?: Buffer | Uint8Array
  salt?: Buffer | Uint8Array | string
  seq?: number
}

export interface PutResult {
  target: string
  /** Mutable items: the sequence number stored. */
  seq?: number
  /** How many nodes stored the item. */
  stored: number
  /** The refusals received. */
  errors: unknown[]
  /** The statistics of the lookup that found the nodes. */
  lookup: LookupResult
}

/** An error from the node, with a code: DHT_TIMEOUT, DHT_CLOSED, DHT_REFUSED, DHT_REMOTE
 * (with `krpcCode`), DHT_BAD_ADDRESS, DHT_BAD_ARGUMENT, DHT_STATE, DHT_IO, EADDRINUSE, EACCES. */
export interface DHTError extends Error {
  code: string
  krpcCode?: number
}

/**
 * A DHT node. Events: every core event by camelCase name (`peerFound`, `nodeAdded`,
 * `nodeRemoved`, `query`, `lookupFinished`, `idChanged`, `errorReceived`, `datagram`,
 * `message`, …) with a plain object; `peer` (peer, infoHash, event); `listening` (address);
 * `ready` (routing-table size after the first bootstrap); `warning` (socket error); `close`;
 * `error` only when start-up fails.
 */
export class DHT extends EventEmitter {
  constructor (options?: Options)
  /** Creates a node and waits until it is bound. */
  static create (options?: Options): Promise<DHT>
  /** The BEP 44 target of a mutable item (hex). */
  static mutableTarget (publicKey: Buffer | Uint8Array, salt?: Buffer | Uint8Array | string): string
  /** The BEP 44 target of an immutable value (hex). */
  static immutableTarget (v: any): string
  readonly id: string | undefined
  readonly nodeId: Buffer | undefined
  ready (): Promise<void>
  bootstrapped (): Promise<number>
  address (): { address: string, family: 'IPv4' | 'IPv6', port: number } | null
  addresses (): string[]
  ping (addr: Address): Promise<string>
  findNode (target: Id): Promise<NodeAddress[]>
  getPeers (infoHash: Id): PeerLookup
  announce (infoHash: Id, port?: number): Promise<{ announced: number, peers: PeerAddress[], lookup: LookupResult }>
  advertise (infoHash: Id, port?: number): Promise<void>
  unadvertise (infoHash: Id): Promise<void>
  put (options: PutOptions): Promise<PutResult>
  get (target: Id, options?: { salt?: Buffer | Uint8Array | string }): Promise<Item | null>
  publicKey (seed: Buffer | Uint8Array): Promise<string>
  sample (addr: Address): Promise<{ interval: number, num: number, samples: string[], nodes: NodeAddress[] }>
  scrape (infoHash: Id): Promise<{ seeds: number, peers: number } | null>
  request (addr: Address, method: 'ping' | 'find_node' | 'get_peers' | 'announce_peer' | 'sample_infohashes' | 'get', args?: { target?: Id, token?: Buffer | string, port?: number }): Promise<{ id: string, nodes: NodeAddress[], peers: PeerAddress[], token?: string, [key: string]: unknown }>
  addNode (addr: Address): Promise<void>
  makeNeighbours (): Promise<void>
  sendMessage (message: object | Buffer, addr: Address): Promise<void>
  routingTable (): Promise<Array<NodeAddress & { good: boolean, rttMs: number | null }>>
  stats (): Promise<Record<string, unknown>>
  save (): Promise<State>
  saveStateFile (): Promise<void>
  close (): Promise<void>
}

/** A bencode encoder and decoder (byte strings decode to Buffers). */
export const bencode: {
  encode (v: any): Buffer
  decode (b: Buffer | Uint8Array): any
}

/** The public routers a node bootstraps from by default. */
export const DEFAULT_BOOTSTRAP: string[]

export default DHT
