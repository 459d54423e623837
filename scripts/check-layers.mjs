// Layering guard: the folder names are the architecture, and this keeps them honest.
//   domain   pure: imports only domain (no node:*, no packages, so no I/O, time or randomness)
//   protocol schemas and codecs: domain, protocol, node:buffer, node:crypto, zod
//   pki      certificates (the openssl-based CA): domain, node:*
//   observability  logs and Prometheus metrics: domain, node:*
//   control-api  JSON-over-HTTP route tables and their client (Unix socket control APIs, mTLS peer
//            APIs): domain, protocol, observability, node:*
//   host, vault, manager (process roles): domain, protocol, pki, observability, their own folder,
//            node:*, packages; host and manager also control-api;
//            host also native; vault and manager also persistence
//   guest    guest-side code (the NBD client): domain, protocol, guest, node:*, packages
//   persistence  PostgreSQL (embedded server, migrations, work queue): domain, protocol, persistence,
//            node:*, packages; used by the vault and management server roles, never by host
//   testing  the test kit: anything but cli and lab
//   cli, lab on top: anything
// and no import cycles anywhere under src/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const src = join(root, 'src');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) files.push(path);
  }
})(src);

const importRe =
  /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const layerOf = (file) => relative(src, file).split('/')[0];
const allowed = {
  domain: (spec, layer) => layer === 'domain' && !spec.isExternal,
  protocol: (spec, layer) =>
    spec.isExternal
      ? ['node:buffer', 'node:crypto', 'zod', 'zod/v4'].includes(spec.name)
      : ['domain', 'protocol'].includes(layer),
  host: (spec, layer) =>
    spec.isExternal ||
    ['domain', 'protocol', 'native', 'pki', 'observability', 'control-api', 'host'].includes(layer),
  pki: (spec, layer) => spec.isExternal || ['domain', 'pki'].includes(layer),
  observability: (spec, layer) => spec.isExternal || ['domain', 'observability'].includes(layer),
  'control-api': (spec, layer) =>
    spec.isExternal || ['domain', 'protocol', 'observability', 'control-api'].includes(layer),
  vault: (spec, layer) =>
    spec.isExternal || ['domain', 'protocol', 'pki', 'observability', 'persistence', 'vault'].includes(layer),
  manager: (spec, layer) =>
    spec.isExternal ||
    ['domain', 'protocol', 'pki', 'observability', 'persistence', 'control-api', 'manager'].includes(layer),
  native: (spec, layer) => spec.isExternal || layer === 'native',
  guest: (spec, layer) => spec.isExternal || ['domain', 'protocol', 'guest'].includes(layer),
  persistence: (spec, layer) => spec.isExternal || ['domain', 'protocol', 'persistence'].includes(layer),
  testing: (spec, layer) => spec.isExternal || !['cli', 'lab'].includes(layer),
  cli: () => true,
  lab: (spec, layer) => spec.isExternal || layer !== 'cli',
};

const problems = [];
const graph = new Map();
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const from = layerOf(file);
  const edges = [];
  for (const m of text.matchAll(importRe)) {
    const name = m[1] ?? m[2];
    const isExternal = !name.startsWith('.');
    let layer = null;
    if (!isExternal) {
      const target = resolve(dirname(file), name).replace(/\.js$/, '.ts');
      layer = layerOf(target);
      edges.push(target);
    }
    const rule = allowed[from];
    if (!rule) problems.push(`${relative(root, file)}: folder src/${from} has no layering rule`);
    else if (!rule({ name, isExternal }, layer))
      problems.push(`${relative(root, file)}: layer '${from}' may not import '${name}'`);
  }
  graph.set(file, edges);
}

// Cycle detection (iterative DFS with colours).
const colour = new Map();
for (const start of files) {
  if (colour.get(start)) continue;
  const stack = [[start, 0]];
  const path = [];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i === 0) {
      colour.set(node, 1);
      path.push(node);
    }
    const edges = graph.get(node) ?? [];
    if (i < edges.length) {
      top[1] = i + 1;
      const next = edges[i];
      const c = colour.get(next);
      if (c === 1) {
        const cyc = path
          .slice(path.indexOf(next))
          .concat(next)
          .map((f) => relative(src, f));
        problems.push(`import cycle: ${cyc.join(' -> ')}`);
      } else if (!c && graph.has(next)) stack.push([next, 0]);
    } else {
      colour.set(node, 2);
      path.pop();
      stack.pop();
    }
  }
}

if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`check-layers: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-layers: ${files.length} files, layering and cycles OK`);
