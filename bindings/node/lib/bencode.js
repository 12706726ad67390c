'use strict'
// Bencode for KRPC messages and BEP 44 values: byte strings decode to Buffers (as the
// `bencode` npm package does), dictionary keys to strings. Decoding is bounded: it refuses
// input nested deeper than `maxDepth` and never reads past the buffer.

function encode (value) {
  const parts = []
  put(value, parts)
  return Buffer.concat(parts)
}

function put (v, out) {
  if (Buffer.isBuffer(v)) {
    out.push(Buffer.from(`${v.length}:`), v)
  } else if (v instanceof Uint8Array) {
    put(Buffer.from(v.buffer, v.byteOffset, v.byteLength), out)
  } else if (typeof v === 'string') {
    put(Buffer.from(v), out)
  } else if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new TypeError(`bencode: not an integer: ${v}`)
    out.push(Buffer.from(`i${v}e`))
  } else if (typeof v === 'boolean') {
    out.push(Buffer.from(v ? 'i1e' : 'i0e'))
  } else if (Array.isArray(v)) {
    out.push(Buffer.from('l'))
    for (const x of v) put(x, out)
    out.push(Buffer.from('e'))
  } else if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined && v[k] !== null)
    keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    out.push(Buffer.from('d'))
    for (const k of keys) {
      put(Buffer.from(k), out)
      put(v[k], out)
    }
    out.push(Buffer.from('e'))
  } else {
    throw new TypeError(`bencode: cannot encode ${v === null ? 'null' : typeof v}`)
  }
}

function decode (buf, { maxDepth = 64 } = {}) {
  if (!Buffer.isBuffer(buf)) buf = Buffer.from(buf)
  let i = 0
  const fail = (why) => { throw new Error(`bencode: ${why} at byte ${i}`) }
  const int = (end) => {
    const s = buf.toString('latin1', i, end)
    if (!/^-?(0|[1-9][0-9]*)$/.test(s) || s === '-0') fail('bad integer')
    i = end + 1
    const n = Number(s)
    return Number.isSafeInteger(n) ? n : BigInt(s)
  }
  const bytes = () => {
    const colon = buf.indexOf(0x3a, i)
    if (colon < 0 || colon - i > 10) fail('bad string length')
    const s = buf.toString('latin1', i, colon)
    if (!/^(0|[1-9][0-9]*)$/.test(s)) fail('bad string length')
    const n = Number(s)
    const start = colon + 1
    if (start + n > buf.length) fail('string runs past the end')
    i = start + n
    return buf.subarray(start, start + n)
  }
  const value = (depth) => {
    if (depth > maxDepth) fail('nested too deep')
    if (i >= buf.length) fail('unexpected end')
    const c = buf[i]
    if (c === 0x69) { // i
      const end = buf.indexOf(0x65, i + 1)
      if (end < 0) fail('unterminated integer')
      i += 1
      return int(end)
    }
    if (c === 0x6c) { // l
      i += 1
      const list = []
      while (true) {
        if (i >= buf.length) fail('unterminated list')
        if (buf[i] === 0x65) { i += 1; return list }
        list.push(value(depth + 1))
      }
    }
    if (c === 0x64) { // d
      i += 1
      const dict = {}
      while (true) {
        if (i >= buf.length) fail('unterminated dictionary')
        if (buf[i] === 0x65) { i += 1; return dict }
        const k = bytes().toString()
        // An own property even for "__proto__": a key never reaches the prototype.
        Object.defineProperty(dict, k, { value: value(depth + 1), enumerable: true, writable: true, configurable: true })
      }
    }
    if (c >= 0x30 && c <= 0x39) return bytes()
    fail('unexpected byte')
  }
  const v = value(1)
  if (i !== buf.length) fail('trailing bytes')
  return v
}

module.exports = { encode, decode }
