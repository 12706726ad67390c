// The package's bencode, which decodes what the network sends to dht-server listeners.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { encode, decode } = require('../lib/bencode.js')

test('round trip of a KRPC message, keys sorted, byte strings as Buffers', () => {
  const m = { y: 'q', t: Buffer.from([0, 255]), q: 'get_peers', a: { info_hash: Buffer.alloc(20, 1), id: Buffer.alloc(20, 2) }, n: [1, -2, 0] }
  const b = encode(m)
  assert.equal(b.toString('latin1'), 'd1:ad2:id20:' + '\x02'.repeat(20) + '9:info_hash20:' + '\x01'.repeat(20) + 'e1:nli1ei-2ei0ee1:q9:get_peers1:t2:\x00\xff1:y1:qe')
  const d = decode(b)
  assert.ok(Buffer.isBuffer(d.t) && Buffer.isBuffer(d.a.info_hash))
  assert.deepEqual(d.n, [1, -2, 0])
  assert.deepEqual(encode(d), b)
  assert.equal(decode(Buffer.from('i9007199254740993e')), 9007199254740993n)
})

test('malformed input is refused with an Error, never read past its end', () => {
  for (const bad of ['', 'i', 'i12', 'i-0e', 'i01e', 'ie', '5:abc', '01:a', 'l', 'd', 'd1:a', 'li1e', 'x', 'i1ei2e', '99999999999:a', 'd1:ai1e1:b']) {
    assert.throws(() => decode(Buffer.from(bad, 'latin1')), /bencode:/, JSON.stringify(bad))
  }
  assert.throws(() => decode(Buffer.from('l'.repeat(65) + 'e'.repeat(65))), /nested too deep/)
  assert.doesNotThrow(() => decode(Buffer.from('l'.repeat(63) + 'e'.repeat(63))))
})

test('a "__proto__" key is data, not a prototype', () => {
  const d = decode(Buffer.from('d9:__proto__d1:xi1eee'))
  assert.equal(Object.getPrototypeOf(d), Object.prototype)
  assert.equal(d.x, undefined)
  assert.deepEqual(Object.keys(d), ['__proto__'])
  assert.equal(({}).x, undefined)
})

test('random corruptions of a valid message decode or throw an Error (2,000 cases)', () => {
  const base = encode({ t: 'aa', y: 'r', r: { id: Buffer.alloc(20), nodes: Buffer.alloc(26 * 8), values: [Buffer.alloc(6), Buffer.alloc(6)], token: 'tok' } })
  let seed = 1
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  for (let k = 0; k < 2000; k++) {
    const b = Buffer.from(base)
    for (let j = 0; j <= rand(4); j++) b[rand(b.length)] = rand(256)
    const cut = rand(3) === 0 ? b.subarray(0, rand(b.length)) : b
    try {
      decode(cut)
    } catch (e) {
      assert.ok(e instanceof Error && /^bencode: /.test(e.message), e.message)
    }
  }
})
