// The TypeScript declarations compile against a program that uses the whole API as the
// README does (tsc --strict, no emit). The package resolves to itself through `exports`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))

test('the type declarations describe the API', () => {
  const tsc = require.resolve('typescript/bin/tsc')
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16',
    '--target', 'es2020', '--types', 'node', path.join(here, 'types', 'usage.ts')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})
