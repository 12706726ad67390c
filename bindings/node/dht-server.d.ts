// Type declarations for `require('dhtkit/dht-server')`, a drop-in for AlphaReign's dht-server.
import { EventEmitter } from 'events'

type MessageListener = (message: DHTServer.KrpcMessage, node: DHTServer.RemoteNode) => void

/**
 * The server. Events: 'listening' (options), 'error', 'messageRaw' (Buffer, node), and with
 * (message, node): 'message', 'response', 'query', 'getPeersResponse', 'findNodeResponse',
 * 'pingOrAnnounceResponse', 'findNodeQuery', 'getPeersQuery', 'announcePeerQuery', 'pingQuery'.
 */
declare class DHTServer extends EventEmitter {
  constructor (options?: DHTServer.ServerOptions)
  options: Required<DHTServer.ServerOptions>
  start (): Promise<unknown>
  makeNeighbours (): Promise<unknown>
  ping (node: DHTServer.RemoteNode): Promise<unknown>
  findNode (id: Buffer | string, node?: DHTServer.RemoteNode): Promise<unknown>
  getPeers (infoHash: Buffer | string, node?: DHTServer.RemoteNode): Promise<unknown>
  announcePeer (infoHash: Buffer | string, node?: DHTServer.RemoteNode): Promise<unknown>
  sendMessage (message: object | Buffer, node: DHTServer.RemoteNode): Promise<unknown>
  /** Stops the server (not in the original); the process can exit afterwards. */
  stop (): Promise<void>
  close (): Promise<void>
  on (event: 'listening', listener: (options: DHTServer.ServerOptions) => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: 'messageRaw', listener: (raw: Buffer, node: DHTServer.RemoteNode) => void): this
  on (event: 'message' | 'response' | 'query' | 'getPeersResponse' | 'findNodeResponse' | 'pingOrAnnounceResponse' | 'findNodeQuery' | 'getPeersQuery' | 'announcePeerQuery' | 'pingQuery', listener: MessageListener): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
}

declare namespace DHTServer {
  export interface RemoteNode {
    address: string
    port: number
  }

  export interface ServerOptions {
    address?: string
    port?: number
    bootstrapNodes?: RemoteNode[]
    maxNodes?: number
    debug?: boolean
  }

  /** A KRPC message, bencode-decoded: byte strings are Buffers (`t`, `y`, `q`, `a.info_hash`, …). */
  export interface KrpcMessage {
    t: Buffer
    y: Buffer
    q?: Buffer
    a?: { id: Buffer, info_hash?: Buffer, target?: Buffer, token?: Buffer, port?: number, implied_port?: number, [key: string]: any }
    r?: { id: Buffer, nodes?: Buffer, nodes6?: Buffer, values?: Buffer[], token?: Buffer, [key: string]: any }
    e?: [number, Buffer]
    [key: string]: any
  }

  /** The class itself, also as a named export. */
  export const DHT: typeof DHTServer
  /** What `new DHT(options)` fills in for missing options. */
  export const defaults: Required<ServerOptions>
}

export = DHTServer
