// kadspec adapter protocol v1 over js-libp2p (libp2p 3, @libp2p/kad-dht 16).
//
// Run: node adapter.mjs   (on Node 20 it loads polyfill.mjs first; `--import` is not needed)
// stdin: one JSON request per line; stdout: hello, replies and events, one JSON object per line;
// stderr: free logs. One process runs any number of named nodes (TCP, noise, yamux, identify,
// identify push, ping, kad-dht).
//
// Three settings keep the DHT alive on 127.0.0.1 (see ../shared/research/real-implementations.md):
// kad-dht's clientMode defaults to client unless a *public* address appears, so mode "server" passes
// clientMode:false; its default peerInfoMapper drops private addresses, so every node here keeps
// them (passthroughMapper), or no loopback peer ever enters a routing table; and the connection
// manager refuses a host's inbound connections beyond 5 a second (inboundConnectionThreshold),
// which on loopback, where every peer is the host 127.0.0.1, turns away joiners that start
// together (5 of 9 got in): loopback is on the allow list, which skips that limit.
//
// crash and stop are one: js-libp2p's stop(), which closes the listener and every connection;
// the node reports nothing after it. restart starts a new js-libp2p node with the old one's
// private key, datastore (its provider records and peer store, as a disk would keep them) and
// bound addresses, so it is the same peer on the same port (capability crash_restart). Timings
// stay unsupported: js-libp2p lets one set some of them (provider validity, cleanup and
// reprovide intervals, the self-query period) but no request deadline and no provide retry,
// both of which the judge reads, so the judge keeps its defaults for js-libp2p.
//
// Keys are text on the protocol. The key rule: text -> CIDv1 raw over sha2-256 of its UTF-8 bytes
// (the kad key is that CID's multihash); text that parses as a CID (bafk.../bafy...) is that CID.

// first import, so evaluated before any js-libp2p module: Node 20 lacks Promise.withResolvers
import './polyfill.mjs'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, identifyPush } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

const PROTOCOL = 'kadspec-adapter/1'
const ADAPTER_VERSION = '0.1.0'
const START = performance.now()
// js-libp2p keeps a provider record this long (PROVIDERS_VALIDITY in @libp2p/kad-dht)
const PROVIDER_VALIDITY_MS = 48 * 3600 * 1000
const DEFAULT_PROVIDE_TIMEOUT_MS = 30000
const BOOTSTRAP_DIAL_TIMEOUT_MS = 10000

const nodes = new Map() // name -> { libp2p, dht, name, halted }
// name -> what a crashed or stopped node keeps for its restart: its start arguments, private key
// (same peer ID), datastore (provider records, as a disk would keep them) and bound addresses
// (same port)
const kept = new Map()

function nowMs () {
  return Math.round(performance.now() - START)
}

function write (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

function log (...parts) {
  process.stderr.write(parts.join(' ') + '\n')
}

class AdapterError extends Error {
  constructor (kind, message) {
    super(message)
    this.kind = kind
  }
}

// --- keys ----------------------------------------------------------------------------------

async function cidForKey (text) {
  if (typeof text !== 'string' || text.length === 0) {
    throw new AdapterError('bad-request', 'key must be a non-empty string')
  }
  let cid
  if (/^baf[ky]/.test(text)) {
    try {
      cid = CID.parse(text)
    } catch {
      cid = undefined
    }
  }
  if (cid === undefined) {
    cid = CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
  }
  return cid
}

function multihashName (bytes) {
  return Buffer.from(bytes).toString('hex')
}

// A wire key (events, provider records): base58btc of the key bytes a kad message carries, the
// target's peer ID for FIND_NODE, Qm... for content (CONFRUN's protocol.wire_key).
function wireKey (bytes) {
  if (bytes == null || bytes.length === 0) return null
  return base58btc.baseEncode(bytes)
}

// --- addresses -----------------------------------------------------------------------------

function withoutPeer (addr) {
  const text = addr.toString()
  const at = text.indexOf('/p2p/')
  return at === -1 ? text : text.slice(0, at)
}

function peerInfo (info) {
  return {
    peer_id: info.id.toString(),
    addrs: unique((info.multiaddrs ?? []).map(withoutPeer))
  }
}

function unique (items) {
  return [...new Set(items)]
}

async function peerAddrs (libp2p, peerId) {
  try {
    const peer = await libp2p.peerStore.get(peerId)
    return unique(peer.addresses.map(a => withoutPeer(a.multiaddr)))
  } catch {
    return []
  }
}

// --- nodes ---------------------------------------------------------------------------------

function requireNode (name) {
  const node = nodes.get(name)
  if (node === undefined && kept.has(name)) throw new AdapterError('failed', `node ${JSON.stringify(name)} is not running (stopped or crashed)`)
  if (node === undefined) throw new AdapterError('unknown-node', `no running node named ${JSON.stringify(name)}`)
  return node
}

function emit (node, event, fields) {
  if (node.halted) return // a crashed or stopped node reports nothing more
  write({ type: 'event', node: node.name, time_ms: nowMs(), event, ...fields })
}

function clientModeFor (mode) {
  if (mode === 'server') return false
  if (mode === 'client') return true
  if (mode === 'auto') return undefined // js-libp2p switches to server on a public address only
  throw new AdapterError('bad-request', `mode must be auto, server or client, not ${JSON.stringify(mode)}`)
}

async function start (args) {
  const name = args.node
  if (typeof name !== 'string' || name.length === 0) throw new AdapterError('bad-request', 'node must be a non-empty string')
  if (nodes.has(name) || kept.has(name)) throw new AdapterError('bad-request', `node ${JSON.stringify(name)} was already started`)
  return await launch(name, args, null)
}

// Starts a node from its start arguments; `previous` (what a crashed or stopped node kept) gives
// it back its key, datastore and port.
async function launch (name, args, previous) {
  const mode = args.mode ?? 'auto'
  const clientMode = clientModeFor(mode)
  let listen
  let bootstrap
  try {
    listen = previous?.listen ?? [multiaddr(args.listen ?? '/ip4/127.0.0.1/tcp/0')]
    bootstrap = (args.bootstrap ?? []).map(a => multiaddr(a))
  } catch (error) {
    throw new AdapterError('bad-request', `bad multiaddr: ${error.message}`)
  }
  const options = args.options ?? {}
  const dhtInit = {
    peerInfoMapper: passthroughMapper,
    allowQueryWithZeroPeers: options.allow_query_with_zero_peers === true
  }
  if (clientMode !== undefined) dhtInit.clientMode = clientMode
  const libp2p = await createLibp2p({
    addresses: { listen: listen.map(a => a.toString()) },
    privateKey: previous?.privateKey,
    datastore: previous?.datastore,
    connectionManager: { allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      identifyPush: identifyPush(),
      ping: ping(),
      dht: kadDHT(dhtInit)
    }
  })
  const node = { name, args, libp2p, dht: libp2p.services.dht, mode: null, halted: false }
  nodes.set(name, node)
  observe(node)
  emitModeIfChanged(node)
  for (const addr of bootstrap) {
    try {
      await libp2p.dial(addr, { signal: AbortSignal.timeout(BOOTSTRAP_DIAL_TIMEOUT_MS) })
    } catch (error) {
      log(`${name}: bootstrap dial ${addr} failed: ${error.message}`)
    }
  }
  return {
    peer_id: libp2p.peerId.toString(),
    listen_addrs: unique(libp2p.components.transportManager.getAddrs().map(withoutPeer))
  }
}

function emitModeIfChanged (node) {
  const mode = node.dht.getMode()
  if (mode !== node.mode) {
    node.mode = mode
    emit(node, 'mode_changed', { mode })
  }
}

// Subscribes to what js-libp2p lets us see. kad traffic is observed by wrapping the DHT's
// network (outgoing requests) and rpc (incoming requests) objects: internal, but the only place
// where every message passes, including the self-query and table refresh ones.
function observe (node) {
  const { libp2p, dht } = node
  libp2p.addEventListener('connection:open', event => {
    const connection = event.detail
    emit(node, 'connection_opened', {
      peer: connection.remotePeer.toString(),
      direction: connection.direction,
      remote_addr: withoutPeer(connection.remoteAddr)
    })
  })
  libp2p.addEventListener('connection:close', event => {
    const connection = event.detail
    emit(node, 'connection_closed', {
      peer: connection.remotePeer.toString(),
      direction: connection.direction,
      remote_addr: withoutPeer(connection.remoteAddr)
    })
  })
  libp2p.addEventListener('peer:identify', event => {
    const result = event.detail
    emit(node, 'identify_received', {
      peer: result.peerId.toString(),
      listen_addrs: unique(result.listenAddrs.map(withoutPeer)),
      observed_addr: result.observedAddr == null ? null : withoutPeer(result.observedAddr),
      protocols: [...result.protocols]
    })
  })
  libp2p.addEventListener('self:peer:update', () => emitModeIfChanged(node))
  dht.routingTable.addEventListener('peer:add', event => {
    const peerId = event.detail
    void peerAddrs(libp2p, peerId).then(addrs => emit(node, 'routing_table_added', { peer: peerId.toString(), addrs }))
  })
  dht.routingTable.addEventListener('peer:remove', event => {
    const peerId = event.detail
    void peerAddrs(libp2p, peerId).then(addrs => emit(node, 'routing_table_removed', { peer: peerId.toString(), addrs }))
  })
  const setMode = dht.setMode.bind(dht)
  dht.setMode = async (mode, options) => {
    await setMode(mode, options)
    emitModeIfChanged(node)
  }
  wrapOutgoing(node, 'sendRequest')
  wrapOutgoing(node, 'sendMessage')
  const handleMessage = dht.rpc.handleMessage.bind(dht.rpc)
  dht.rpc.handleMessage = async (peerId, message) => {
    emit(node, 'kad_request_received', {
      kad_type: message.type,
      peer: peerId.toString(),
      key: wireKey(message.key),
      providers: (message.providers ?? []).map(pbPeer)
    })
    const response = await handleMessage(peerId, message)
    if (response != null) {
      emit(node, 'kad_response_sent', {
        kad_type: response.type,
        peer: peerId.toString(),
        key: wireKey(response.key ?? message.key),
        closer_peers: (response.closer ?? []).map(pbPeer),
        provider_peers: (response.providers ?? []).map(pbPeer)
      })
    }
    return response
  }
}

function wrapOutgoing (node, method) {
  const network = node.dht.network
  const original = network[method].bind(network)
  network[method] = async function * (to, message, options) {
    for await (const event of original(to, message, options)) {
      if (event.name === 'SEND_QUERY') {
        emit(node, 'kad_request_sent', {
          kad_type: message.type,
          peer: to.toString(),
          key: wireKey(message.key),
          providers: (message.providers ?? []).map(pbPeer)
        })
      } else if (event.name === 'PEER_RESPONSE' && method === 'sendRequest') {
        emit(node, 'kad_response_received', {
          kad_type: event.messageName,
          peer: to.toString(),
          key: wireKey(message.key),
          closer_peers: (event.closer ?? []).map(peerInfo),
          provider_peers: (event.providers ?? []).map(peerInfo)
        })
      }
      yield event
    }
  }
}

function pbPeer (peer) {
  // a protobuf PeerInfo: id = the peer ID's multihash bytes, addrs = binary multiaddrs
  let id
  try {
    id = peerIdText(peer.id)
  } catch {
    id = multihashName(peer.id ?? new Uint8Array())
  }
  const addrs = []
  for (const bytes of peer.multiaddrs ?? []) {
    try {
      addrs.push(withoutPeer(multiaddr(bytes)))
    } catch {
      // an address we cannot parse is left out of the event, not a crash
    }
  }
  return { peer_id: id, addrs: unique(addrs) }
}

let peerIdFromMultihashBytes
function peerIdText (bytes) {
  return peerIdFromMultihashBytes(bytes).toString()
}

async function loadPeerIdParser () {
  const { peerIdFromMultihash } = await import('@libp2p/peer-id')
  const Digest = await import('multiformats/hashes/digest')
  peerIdFromMultihashBytes = bytes => peerIdFromMultihash(Digest.decode(bytes))
}

async function dial (args) {
  const node = requireNode(args.node)
  let addr
  try {
    addr = multiaddr(args.addr)
  } catch (error) {
    throw new AdapterError('bad-request', `bad multiaddr: ${error.message}`)
  }
  try {
    await node.libp2p.dial(addr, { signal: AbortSignal.timeout(BOOTSTRAP_DIAL_TIMEOUT_MS) })
  } catch (error) {
    throw new AdapterError('failed', `dial ${args.addr}: ${error.message}`)
  }
  return {}
}

async function provide (args) {
  const node = requireNode(args.node)
  const cid = await cidForKey(args.key)
  const timeout = Number(args.timeout_ms ?? DEFAULT_PROVIDE_TIMEOUT_MS)
  const acknowledged = new Set()
  let reason = null
  try {
    for await (const event of node.dht.provide(cid, { signal: AbortSignal.timeout(timeout) })) {
      // js-libp2p writes ADD_PROVIDER without waiting for a reply: a PEER_RESPONSE for it means
      // the record was written to that peer's stream, the most js-libp2p itself counts
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'ADD_PROVIDER') {
        acknowledged.add(event.from.toString())
      }
    }
  } catch (error) {
    reason = `${error.name}: ${error.message}`
  }
  const count = acknowledged.size
  const outcome = count > 0 ? 'success' : 'failure'
  if (outcome === 'failure' && reason === null) reason = 'no peer took the record'
  const result = { outcome, count, reason: outcome === 'success' ? null : reason }
  emit(node, 'provide_outcome', { key: args.key, ...result })
  return result
}

async function findProviders (args) {
  const node = requireNode(args.node)
  const cid = await cidForKey(args.key)
  const deadline = Number(args.deadline_ms ?? 10000)
  if (!Number.isFinite(deadline) || deadline <= 0) throw new AdapterError('bad-request', 'deadline_ms must be a positive number')
  const found = new Map() // peer id -> set of addrs (js-libp2p repeats providers)
  try {
    for await (const event of node.dht.findProviders(cid, { signal: AbortSignal.timeout(deadline) })) {
      if (event.name === 'PROVIDER') {
        for (const info of event.providers) {
          const addrs = found.get(info.id.toString()) ?? new Set()
          for (const addr of peerInfo(info).addrs) addrs.add(addr)
          found.set(info.id.toString(), addrs)
        }
      }
    }
  } catch (error) {
    if (error.name !== 'AbortError' && error.name !== 'TimeoutError') {
      throw new AdapterError('failed', `${error.name}: ${error.message}`)
    }
    // the deadline passed: what was found so far is the answer
  }
  const providers = [...found].map(([peerId, addrs]) => ({ peer_id: peerId, addrs: [...addrs] }))
  emit(node, 'find_outcome', { key: args.key, providers })
  return { providers }
}

async function snapshot (args) {
  const node = requireNode(args.node)
  const { libp2p, dht } = node
  const listen = unique(libp2p.components.transportManager.getAddrs().map(withoutPeer))
  const announced = unique(libp2p.getMultiaddrs().map(withoutPeer))
  const connections = libp2p.getConnections().map(connection => ({
    peer_id: connection.remotePeer.toString(),
    direction: connection.direction,
    remote_addr: withoutPeer(connection.remoteAddr)
  }))
  const routingTable = []
  for (const entry of dht.routingTable.kb.toIterable()) {
    routingTable.push({ peer_id: entry.peerId.toString(), addrs: await peerAddrs(libp2p, entry.peerId) })
  }
  const protocols = {}
  for (const peerId of unique(libp2p.getConnections().map(c => c.remotePeer.toString()))) {
    const connection = libp2p.getConnections().find(c => c.remotePeer.toString() === peerId)
    try {
      protocols[peerId] = [...(await libp2p.peerStore.get(connection.remotePeer)).protocols]
    } catch {
      protocols[peerId] = []
    }
  }
  const records = []
  const wallToAdapter = Date.now() - nowMs()
  const prefix = `${dht.providers.datastorePrefix}/`
  for await (const entry of libp2p.components.datastore.query({ prefix })) {
    const parts = entry.key.toString().split('/')
    const provider = parts.pop()
    const key = parts.pop()
    const received = readVarint(entry.value)
    let keyBytes
    try {
      keyBytes = base32Decode(key)
    } catch {
      continue
    }
    let addrs = []
    const match = libp2p.getConnections().find(c => c.remotePeer.toString() === provider)
    if (match !== undefined) addrs = await peerAddrs(libp2p, match.remotePeer)
    else if (provider === libp2p.peerId.toString()) addrs = announced
    records.push({
      key: wireKey(keyBytes),
      provider,
      addrs,
      expires_at_ms: received + PROVIDER_VALIDITY_MS - wallToAdapter
    })
  }
  return {
    peer_id: libp2p.peerId.toString(),
    mode: dht.getMode(),
    listen_addrs: listen,
    // js-libp2p announces its listen addresses plus the observed ones it has confirmed; only the
    // latter are external addresses in the spec's sense
    external_addrs: announced.filter(a => !listen.includes(a)),
    connections,
    routing_table: routingTable,
    protocols,
    provider_records: records,
    time_ms: nowMs()
  }
}

function readVarint (bytes) {
  let value = 0
  let scale = 1
  for (const byte of bytes) {
    value += (byte & 0x7f) * scale
    if ((byte & 0x80) === 0) break
    scale *= 128
  }
  return value
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
function base32Decode (text) {
  const out = []
  let bits = 0
  let value = 0
  for (const char of text.toLowerCase()) {
    const index = BASE32.indexOf(char)
    if (index === -1) throw new Error(`not base32: ${char}`)
    value = (value << 5) | index
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Uint8Array.from(out)
}

async function setMode (args) {
  const node = requireNode(args.node)
  if (args.mode === 'auto') {
    // js-libp2p decides automatically only when started without clientMode; it cannot go back
    throw new AdapterError('unsupported', 'js-libp2p cannot switch back to automatic mode at run time')
  }
  clientModeFor(args.mode) // bad-request for anything but auto, server, client
  await node.dht.setMode(args.mode)
  return {}
}

// stop and crash alike: js-libp2p has one way down, stop(), which closes the listener and every
// connection; the node reports nothing from then on, as a killed process would not
async function stopNode (args) {
  const node = requireNode(args.node)
  node.halted = true
  nodes.delete(node.name)
  kept.set(node.name, {
    args: node.args,
    privateKey: node.libp2p.components.privateKey,
    datastore: node.libp2p.components.datastore,
    listen: node.libp2p.components.transportManager.getAddrs().map(a => multiaddr(withoutPeer(a)))
  })
  await node.libp2p.stop()
  return {}
}

// a new js-libp2p node with the crashed one's key, datastore and port, bootstrapping as it did
async function restart (args) {
  const name = args.node
  if (nodes.has(name)) await stopNode(args)
  const previous = kept.get(name)
  if (previous === undefined) throw new AdapterError('unknown-node', `no node named ${JSON.stringify(name)} was started`)
  kept.delete(name)
  try {
    await launch(name, previous.args, previous)
  } catch (error) {
    kept.set(name, previous) // still down: a later restart may try again
    throw error
  }
  return {}
}

async function shutdown () {
  const running = [...nodes.values()]
  nodes.clear()
  await Promise.allSettled(running.map(node => node.libp2p.stop()))
  return {}
}

const OPS = {
  start,
  dial,
  provide,
  find_providers: findProviders,
  snapshot,
  set_mode: setMode,
  stop: stopNode,
  crash: stopNode,
  restart,
  shutdown
}

async function serve (line) {
  let request
  try {
    request = JSON.parse(line)
  } catch (error) {
    // no id to answer to: the protocol has no reply for this line, so say it on stderr
    log(`ignored a line that is not JSON (${error.message}): ${line.slice(0, 160)}`)
    return
  }
  const id = Number.isInteger(request?.id) && request.id >= 0 ? request.id : null
  if (id === null) {
    log(`ignored a request without an integer id: ${line.slice(0, 160)}`)
    return
  }
  if (request?.type !== 'request' || typeof request.op !== 'string') {
    write({ type: 'reply', id, ok: false, error: { kind: 'bad-request', message: 'expected {"type": "request", "id": int, "op": str, "args": {}}' } })
    return
  }
  const op = OPS[request.op]
  if (op === undefined) {
    const kind = 'bad-request'
    write({ type: 'reply', id, ok: false, error: { kind, message: `op ${request.op} is not supported by the js-libp2p adapter` } })
    return
  }
  try {
    const result = await op(request.args ?? {})
    write({ type: 'reply', id, ok: true, result })
  } catch (error) {
    const kind = error instanceof AdapterError ? error.kind : 'failed'
    write({ type: 'reply', id, ok: false, error: { kind, message: error.message ?? String(error) } })
  }
  if (request.op === 'shutdown') process.exit(0)
}

async function main () {
  await loadPeerIdParser()
  write({
    type: 'hello',
    protocol: PROTOCOL,
    implementation: 'js-libp2p',
    version: `libp2p ${await dependencyVersion('libp2p')}, @libp2p/kad-dht ${await dependencyVersion('@libp2p/kad-dht')}, adapter ${ADAPTER_VERSION}`,
    capabilities: { auto_mode: true, timings: false, crash_restart: true, events: true }
  })
  const input = createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', line => {
    if (line.trim().length > 0) void serve(line)
  })
  input.on('close', () => {
    // end of input without a shutdown request: stop the nodes and leave
    void shutdown().finally(() => process.exit(0))
  })
}

async function dependencyVersion (name) {
  const { readFile } = await import('node:fs/promises')
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
  try {
    return JSON.parse(await readFile(url, 'utf8')).version
  } catch {
    return 'unknown'
  }
}

process.on('unhandledRejection', error => log('unhandled rejection:', error?.stack ?? error))
void main()
