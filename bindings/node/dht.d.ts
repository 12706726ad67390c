// Type declarations for `require('dhtkit/dht.js')`, a drop-in for indutny's dht.js.
import { EventEmitter } from 'events'

export interface Peer {
  address: string
  port: number
}

/** What `node.save()` returns: plain data that survives JSON. */
export interface SavedState {
  id: string
  address: string
  port: number
  nodes: Array<{ id: string, address: string, port: number }>
  advertised: Array<{ infohash: string, port: number }>
}

export interface CreateOptions {
  port?: number
  address?: string
  id?: Buffer
  /** Bootstrap nodes as "host:port" (default none, as dht.js). */
  bootstrap?: string[]
}

/** A node. Events: 'peer:new' (infohash, peer, isAdvertised), 'listening', 'close', 'error'. */
export class Node extends EventEmitter {
  id: Buffer
  port: number
  address: string
  /** Adds a known node; later calls wait until it has answered (at most 5 s). */
  connect (node: { address: string, port: number, id?: Buffer }): void
  /** Announces `infohash` on `port`, now and periodically. */
  advertise (infohash: Buffer, port: number): void
  save (): SavedState
  close (): void
  on (event: 'peer:new', listener: (infohash: Buffer, peer: Peer, isAdvertised: boolean) => void): this
  on (event: 'listening', listener: (address: { address: string, family: string, port: number }) => void): this
  on (event: 'close', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
}

export const node: {
  /** A node on `port`, from a saved state, or with options. */
  create (arg?: number | SavedState | CreateOptions): Node
  Node: typeof Node
}

/** Options a node is created with when `create` is given none. */
export const defaults: { address: string, bootstrap: string[] }
