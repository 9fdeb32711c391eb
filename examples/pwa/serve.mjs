// Serves the built example (dist/) on http://127.0.0.1 next to the local OpenID provider
// (tests/idp/server.mjs), with /config.json pointing the app at it. Used by `scripts/pwa` for a
// person to try, and by the end-to-end tests (tests/web), which import `startStack`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
const idpScript = path.join(here, '../../tests/idp/server.mjs');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.webmanifest': 'application/manifest+json',
  '.css': 'text/css',
};

function startIdp(env) {
  const child = spawn(process.execPath, [idpScript], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('the provider did not start in 30 s')), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve({ child, ...JSON.parse(line) });
    });
    child.once('exit', (code) => reject(new Error(`the provider exited (${code})`)));
  });
}

// The file `urlPath` names under `root`, or null when it names none there (a directory, a
// missing file, a path that leaves `root`, or an escape that does not decode).
function fileUnder(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  const file = path.normalize(path.join(root, decoded));
  if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return null;
  return file;
}

// The file for a URL path under a mount (see `startStack`), or null when there is none.
function mountedFile(mounts, pathname) {
  const prefix = Object.keys(mounts).filter((p) => pathname.startsWith(p)).sort((a, b) => b.length - a.length)[0];
  if (prefix === undefined) return null;
  return fileUnder(path.resolve(mounts[prefix]), pathname.slice(prefix.length));
}

/**
 * Starts the static server and the provider. `idp`: extra provider environment (IDP_ACCESS_TTL,
 * IDP_AUTO_APPROVE); `config`: the app's settings (changeable later through `stack.config`);
 * `mounts`: extra URL prefixes served from other directories, e.g. `{ '/bench/': dir }` (the
 * bench's pages; none by default). A path under a mount without a file there is a 404, not the app.
 * Everything is served `no-store`, except files under the URL prefixes listed in
 * `stack.cacheable` (empty at first, changeable later): those are served as an app serves its
 * content-hashed assets, cacheable for a year and immutable.
 */
export async function startStack({ port = 0, idp = {}, config = {}, mounts = {} } = {}) {
  for (const prefix of Object.keys(mounts)) {
    // '/bench' would also take '/benchmark.js' from the app.
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`a mount is a path ending in '/': ${prefix}`);
  }
  const stack = { config: {}, cacheable: [] };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(stack.config));
      return;
    }
    const mounted = Object.keys(mounts).some((prefix) => url.pathname.startsWith(prefix));
    const file = mounted ? mountedFile(mounts, url.pathname) : (fileUnder(dist, url.pathname) ?? path.join(dist, 'index.html'));
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const cacheable = stack.cacheable.some((prefix) => url.pathname.startsWith(prefix));
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
      'cache-control': cacheable ? 'public, max-age=31536000, immutable' : 'no-store',
      // The package works under a strict policy: WebAssembly needs only 'wasm-unsafe-eval'.
      'content-security-policy': `default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; `
        + `style-src 'self' 'unsafe-inline'; connect-src 'self' ${stack.issuer}; img-src 'self' data:`,
      'referrer-policy': 'no-referrer',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const provider = await startIdp({ IDP_WEB_ORIGIN: origin, ...idp });
  stack.issuer = provider.issuer;
  stack.origin = origin;
  stack.provider = provider;
  stack.config = {
    issuer: provider.issuer,
    clientId: 'sessionkit-web',
    apiUrl: `${provider.issuer}/__test/api`,
    apiOrigins: [provider.issuer],
    ...config,
  };
  stack.stop = async () => {
    provider.child.kill('SIGTERM');
    await new Promise((resolve) => server.close(resolve));
    server.closeAllConnections?.();
  };
  return stack;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    console.error('examples/pwa/dist is missing: run scripts/pwa (it builds the package and the app)');
    process.exit(1);
  }
  const stack = await startStack({
    port: Number(process.env.PWA_PORT || 5173),
    config: { idleTimeoutSeconds: 120, warningLeadSeconds: 30 },
  });
  console.log(`
The example app:   ${stack.origin}/
The local provider: ${stack.issuer} (any user name and password sign in)

The provider's certificate comes from a CA made just now (${stack.provider.ca}). Open the app in a
browser that trusts it, for example:
  chromium --ignore-certificate-errors --user-data-dir=$(mktemp -d) ${stack.origin}/

Ctrl-C stops both.`);
  const stop = async () => { await stack.stop(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
