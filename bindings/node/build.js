'use strict'
// `npm run build`: builds the addon with cargo (release) and copies it next to package.json
// as dhtkit.<platform>-<arch>.node, stripped of debug information.
const { execFileSync } = require('child_process')
const fs = require('fs')
const path = require('path')

const root = path.resolve(__dirname, '..', '..')
const env = { ...process.env }
execFileSync('cargo', ['build', '--release', '-p', 'dhtkit-node'], { cwd: root, stdio: 'inherit', env })
const target = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
const lib = { linux: 'libdhtkit_node.so', darwin: 'libdhtkit_node.dylib', win32: 'dhtkit_node.dll' }[process.platform]
const from = path.join(target, 'release', lib)
const to = path.join(__dirname, `dhtkit.${process.platform}-${process.arch}.node`)
fs.copyFileSync(from, to)
try {
  execFileSync('strip', ['--strip-debug', to], { stdio: 'inherit' })
} catch (e) {
  console.warn(`strip failed (${e.message}); the addon keeps its debug information`)
}
console.log(`built ${path.relative(process.cwd(), to)} (${(fs.statSync(to).size / 1e6).toFixed(1)} MB)`)
// The licence files live at the repository's root; the package carries copies.
for (const f of ['LICENSE-MIT', 'LICENSE-APACHE']) fs.copyFileSync(path.join(root, f), path.join(__dirname, f))
