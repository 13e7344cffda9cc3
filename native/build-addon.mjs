// Builds the native engine during `npm install`. A failed build must never fail the install: the rest of the
// service works without it, and the local-based provider then reports local_backend_unavailable.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = path.dirname(fileURLToPath(import.meta.url));
if (process.env.EVAPORATE_SKIP_NATIVE === '1') {
  console.warn('[evaporate] EVAPORATE_SKIP_NATIVE=1: not building the local BASED engine.');
  process.exit(0);
}

function findNodeGyp() {
  // npm exports its bundled node-gyp to lifecycle scripts; otherwise look beside the running npm / node
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((c) => c && fs.existsSync(c));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.warn('[evaporate] node-gyp not found: the local BASED engine is not built (the service works without it).');
  process.exit(0);
}
const jobs = String(Math.max(1, Math.min(4, (await import('node:os')).availableParallelism())));
// Node's own headers: an official Node build (nodejs.org tarball, the npm `node` package) carries them in
// include/node beside its bin/, and node-gyp would otherwise download them, which fails offline.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const localHeaders = !process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_version.h'));
const result = spawnSync(process.execPath, [gyp, 'rebuild', '-j', jobs, ...(localHeaders ? [`--nodedir=${prefix}`] : [])], { cwd: nativeDir, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn('[evaporate] Building the local BASED engine failed; the service still works, the local-based provider will be unavailable.');
  process.exit(0);
}

// The CUDA backend, where nvcc and cmake exist: a library (native/build-cuda/libbased_cuda.so) the addon loads at
// run time when a GPU is visible (native/src/backend_select.cpp). Without it the engine runs on the CPU.
const has = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
if (process.env.EVAPORATE_SKIP_CUDA === '1') process.exit(0);
if (!(has(process.env.CUDACXX || 'nvcc') && has('cmake'))) {
  console.warn('[evaporate] nvcc or cmake not found: the local BASED engine is built for the CPU only.');
  process.exit(0);
}
const buildDir = path.join(nativeDir, 'build-cuda');
const configure = spawnSync('cmake', ['-S', nativeDir, '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release'], { stdio: 'inherit' });
const built =
  configure.status === 0 && spawnSync('cmake', ['--build', buildDir, '--target', 'based_cuda', '-j', jobs], { stdio: 'inherit' }).status === 0;
if (!built) console.warn('[evaporate] Building the CUDA backend failed; the local BASED engine runs on the CPU.');
process.exit(0);
