// Where a page load or a refresh spends its time (not a test: run it by hand after
// scripts/web-test, like bench.mjs): `node trace.mjs [load|refresh] [sessionkit|oidc-client-ts]`.
// Env: DPOP=off|whenSupported|required (SessionKit's setting; its default otherwise), ROUNDS,
// CACHEABLE=1 (the libraries' files served cacheable and immutable, as an app serves its
// content-hashed assets; no-store otherwise), CDP_TIMING=1 (each provider request's connection
// reuse and timing, as Chromium reports it).
//
// Each bench page (bench-pages/) runs with the browser calls a session library makes wrapped by
// an init script that stamps performance.now() when each starts and settles: fetch, the
// WebAssembly compile, IndexedDB opens and transactions (to their `complete`), WebCrypto, storage
// persistence, Web Locks (requested, granted, released) and BroadcastChannel posts. The provider logs each request it
// handles with its own time (IDP_LOG_REQUESTS), CORS preflights included, which the page cannot
// see. Printed per round: the timeline, from the start of the page's script (load) or of the call
// that refreshes (refresh).
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStack } from '../../examples/pwa/serve.mjs';

const [what = 'load', lib = 'sessionkit'] = process.argv.slice(2);
if (!['load', 'refresh'].includes(what) || !['sessionkit', 'oidc-client-ts'].includes(lib)) {
  console.error('usage: node trace.mjs [load|refresh] [sessionkit|oidc-client-ts]');
  process.exit(2);
}
const rounds = Number(process.env.ROUNDS || 3);
const local = (relative) => fileURLToPath(new URL(relative, import.meta.url));

const stack = await startStack({
  mounts: {
    '/bench/': local('bench-pages'),
    '/bench/pkg/': local('../../bindings/sessionkit-wasm/pkg'),
    '/bench/oidc-client-ts/': local('node_modules/oidc-client-ts/dist/browser'),
  },
  idp: {
    IDP_AUTO_APPROVE: '1',
    IDP_WEB_REDIRECT_PATHS: `/bench/${lib}.html`,
    // A refresh is due halfway through a token's life: 2 s tokens for the refresh trace.
    IDP_ACCESS_TTL: what === 'refresh' ? '2' : '600',
    IDP_LOG_REQUESTS: '1',
  },
});
if (process.env.CACHEABLE === '1') stack.cacheable = ['/bench/pkg/', '/bench/oidc-client-ts/'];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers: 'block' });
  await context.addInitScript((config) => { window.benchConfig = config; },
    { issuer: stack.issuer, clientId: 'sessionkit-web', dpop: process.env.DPOP });
  await context.addInitScript(wrapBrowserCalls);
  const page = await context.newPage();
  if (process.env.CDP_TIMING === '1') await printConnectionTiming(context, page);
  await page.goto(`${stack.origin}/bench/${lib}.html`);
  await page.waitForFunction(() => window.benchResult);
  const first = await page.evaluate(() => window.benchResult);
  if (first.error) throw new Error(`${lib}: ${first.error}`);
  await page.evaluate(() => { window.bench.signIn(); });
  await page.waitForURL((url) => url.searchParams.has('code'), { timeout: 60_000 });
  await page.waitForFunction(() => window.benchResult && window.benchResult.signedIn, null, { timeout: 60_000 });
  // One round first, not printed: oidc-client-ts fetches the discovery document on its first
  // refresh, and the first load compiles what later loads find in the code cache.
  for (let round = -1; round < rounds; round += 1) {
    const print = round >= 0;
    if (print) console.error(`--- ${lib}, ${what} ${round + 1} (the provider's lines: its own time per request)`);
    let summary;
    if (what === 'load') {
      // The page says when it is done (see bench.mjs's benchResult: polling would run
      // Playwright's script in the page during the load).
      const ready = page.waitForEvent('console', { predicate: (m) => m.text() === 'bench:ready', timeout: 60_000 });
      ready.catch(() => {}); // a failed reload is the error reported
      await page.reload({ waitUntil: 'commit' });
      await ready;
      const loaded = await page.evaluate(() => window.benchResult);
      if (!loaded.signedIn) throw new Error(`${lib}: ${loaded.error || 'the stored session was not restored'}`);
      const { scriptStart, tokenAt } = loaded;
      summary = `script start ${scriptStart.toFixed(1)} ms, token at ${tokenAt.toFixed(1)} ms (since navigation)`;
      if (print) printTimeline(await page.evaluate(() => window.traceLog), scriptStart);
    } else {
      await page.evaluate(() => window.bench.waitUntilRefreshable());
      const start = await page.evaluate(() => { window.traceLog.length = 0; return performance.now(); });
      const ms = await page.evaluate(() => window.bench.refresh());
      summary = `refresh ${ms.toFixed(1)} ms`;
      if (print) printTimeline(await page.evaluate(() => window.traceLog), start);
    }
    if (print) console.error(summary);
  }
} finally {
  await browser.close();
  await stack.stop();
}

// CDP_TIMING=1: for each request to the provider, whether the browser reused a connection and
// where its time went (connect, TLS, sent to headers received), from Chromium's own timing.
async function printConnectionTiming(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ response }) => {
    const { pathname } = new URL(response.url);
    if (!response.url.startsWith(stack.issuer) || !response.timing) return;
    const t = response.timing;
    const span = (from, to) => (from >= 0 && to >= 0 ? (to - from).toFixed(1) : '-');
    console.error(`  cdp: ${pathname} connection ${response.connectionId}${response.connectionReused ? ' reused' : ' new'}, `
      + `connect ${span(t.connectStart, t.connectEnd)} ms (TLS ${span(t.sslStart, t.sslEnd)}), `
      + `sent to headers ${span(t.sendEnd, t.receiveHeadersEnd)} ms, queued ${span(0, t.sendStart)} ms`);
  });
}

function printTimeline(log, origin) {
  for (const [at, line] of log) console.error(`${(at - origin).toFixed(1).padStart(7)} ${line}`);
}

// Runs in the page before its scripts: wraps the calls named above ("> x" when x starts,
// "< x" when it settles, "<! x" when it fails). Names only: no URL query, body or key.
function wrapBrowserCalls() {
  window.traceLog = [];
  const log = (line) => window.traceLog.push([performance.now(), line]);
  const wrap = (owner, name, label) => {
    const original = owner[name];
    owner[name] = function wrapped(...args) {
      let tag = name;
      try {
        tag = label(args);
      } catch {
        // a label is only a label: the call itself must go on as the page made it
      }
      log(`> ${tag}`);
      const result = original.apply(this, args);
      if (result && typeof result.then === 'function') result.then(() => log(`< ${tag}`), () => log(`<! ${tag}`));
      return result;
    };
  };
  const path = (input) => new URL(input.url || String(input), location.href).pathname;
  wrap(window, 'fetch', ([input, init]) => `fetch ${(init && init.method) || input.method || 'GET'} ${path(input)}`);
  for (const name of ['instantiateStreaming', 'compileStreaming', 'instantiate', 'compile']) {
    wrap(WebAssembly, name, () => `WebAssembly.${name}`);
  }
  for (const name of ['sign', 'verify', 'importKey', 'exportKey', 'encrypt', 'decrypt', 'digest', 'generateKey']) {
    wrap(SubtleCrypto.prototype, name, () => `crypto.subtle.${name}`);
  }
  // The request's promise settles when the lock is released: the grant is stamped when the
  // callback (the last argument) starts.
  const requestLock = LockManager.prototype.request;
  LockManager.prototype.request = function tracedRequest(...args) {
    const tag = `Web Lock ${String(args[0]).split('|')[0]}`;
    const callback = args[args.length - 1];
    if (typeof callback === 'function') {
      args[args.length - 1] = (...lockArgs) => {
        log(`= ${tag} granted`);
        return callback(...lockArgs);
      };
    }
    log(`> ${tag} requested`);
    const result = requestLock.apply(this, args);
    result.then(() => log(`< ${tag} released`), () => log(`<! ${tag}`));
    return result;
  };
  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function tracedOpen(...args) {
    log(`> IndexedDB open ${args[0]}`);
    const request = open.apply(this, args);
    request.addEventListener('success', () => log(`< IndexedDB open ${args[0]}`));
    request.addEventListener('error', () => log(`<! IndexedDB open ${args[0]}`));
    request.addEventListener('blocked', () => log(`<! IndexedDB open ${args[0]} blocked`));
    return request;
  };
  const transaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function tracedTransaction(...args) {
    const tag = `IndexedDB ${args[1] || 'readonly'} ${args[0]}`;
    log(`> ${tag}`);
    const started = transaction.apply(this, args);
    started.addEventListener('complete', () => log(`< ${tag}`));
    started.addEventListener('abort', () => log(`<! ${tag}`));
    return started;
  };
  if (navigator.storage) {
    for (const name of ['persist', 'persisted']) wrap(StorageManager.prototype, name, () => `navigator.storage.${name}`);
  }
  const post = BroadcastChannel.prototype.postMessage;
  BroadcastChannel.prototype.postMessage = function tracedPost(...args) {
    log('BroadcastChannel post');
    return post.apply(this, args);
  };
}
