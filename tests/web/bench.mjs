// Measures @sessionkit/web in headless Chromium against the local provider (not a test: run it
// by hand after scripts/web-test has built everything): `node bench.mjs`.
//   - getAccessToken() on a fresh token: median time per call, 11 rounds of 10,000 calls;
//   - freshAccessToken(), the synchronous read: median time per call, 11 rounds of 100,000;
//   - SessionKit.create() with a stored session (IndexedDB read + decrypt; discovery and JWKS
//     from their stored copies, no request): median of 21;
//   - compiling the shipped module (what a page load pays besides the download): median of 11;
//   - authHeaders() on a DPoP-bound session (a fresh proof signed by the non-extractable
//     WebCrypto key each call): median time per call, 11 rounds of 200 calls;
//   - the shipped size, from the package's size report;
//   - the floor of any start from an encrypted IndexedDB store, without a library, alone and
//     with the module compiling beside it (bench-pages/store-floor.js).
// Then side by side with oidc-client-ts (the library web developers pick instead), each on a
// minimal page of its own (bench-pages/) on the app's origin, signed in to the same provider in
// the same Chromium: page load and script start to token with a stored session, requests to
// the provider before the token, per-call token reads, one refresh round trip and the shipped
// size, ending with a markdown table.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStack } from '../../examples/pwa/serve.mjs';

const local = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const sizeReport = local('../../bindings/sessionkit-wasm/pkg/size.txt');
const oidcBundle = 'node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js';
for (const file of [sizeReport, local(oidcBundle)]) {
  if (!fs.existsSync(file)) {
    console.error(`${file} is missing: build the package (scripts/web-test) and run npm ci in tests/web`);
    process.exit(1);
  }
}

// The comparison's pages, served next to the app by the example's server (bench pages at
// /bench/, each library beside its page), and their redirect URIs at the provider.
const LIBRARIES = ['sessionkit', 'oidc-client-ts'];
const benchServing = {
  mounts: {
    '/bench/': local('bench-pages'),
    '/bench/pkg/': local('../../bindings/sessionkit-wasm/pkg'),
    '/bench/oidc-client-ts/': local('node_modules/oidc-client-ts/dist/browser'),
  },
  idp: { IDP_AUTO_APPROVE: '1', IDP_WEB_REDIRECT_PATHS: LIBRARIES.map((lib) => `/bench/${lib}.html`).join(',') },
};

const stack = await startStack({
  mounts: benchServing.mounts,
  idp: { ...benchServing.idp, IDP_ACCESS_TTL: '600' },
});
// A second provider whose access tokens last 2 s, for the refresh round trip: SessionKit
// refreshes only when a refresh is due (halfway through the token's life at the earliest).
let refreshStack;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers: 'block' });
  const page = await context.newPage();
  await page.goto(`${stack.origin}/`);
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'signed-out');
  await page.click('#login');
  await page.waitForFunction(() => document.getElementById('state').dataset.state === 'signed-in');
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  const perCallUs = await page.evaluate(async () => {
    const rounds = [];
    for (let r = 0; r < 11; r += 1) {
      const start = performance.now();
      for (let i = 0; i < 10_000; i += 1) await window.sessionKit.getAccessToken();
      rounds.push(((performance.now() - start) / 10_000) * 1000);
    }
    return rounds;
  });
  const syncNs = await page.evaluate(() => {
    const rounds = [];
    let token = null;
    for (let r = 0; r < 11; r += 1) {
      const start = performance.now();
      for (let i = 0; i < 100_000; i += 1) token = window.sessionKit.freshAccessToken();
      rounds.push(((performance.now() - start) / 100_000) * 1e6);
    }
    if (!token) throw new Error('no fresh token');
    return rounds;
  });
  const proofMs = await page.evaluate(async (url) => {
    if (window.sessionKit.tokenType() !== 'DPoP') throw new Error('the session is not DPoP-bound');
    const rounds = [];
    for (let r = 0; r < 11; r += 1) {
      const start = performance.now();
      for (let i = 0; i < 200; i += 1) await window.sessionKit.authHeaders('GET', url);
      rounds.push((performance.now() - start) / 200);
    }
    return rounds;
  }, `${stack.issuer}/__test/api`);
  const createMs = await page.evaluate(async (config) => {
    const SessionKit = window.sessionKit.constructor;
    const times = [];
    for (let r = 0; r < 21; r += 1) {
      const start = performance.now();
      const kit = await SessionKit.create({ ...config, redirectUri: `${location.origin}/`, trackActivity: false });
      times.push(performance.now() - start);
      if (!kit.status()) throw new Error('the stored session was not restored');
      kit.close();
    }
    return times;
  }, stack.config);
  // Compiling the shipped module, as a page load does (without the download): each round's bytes
  // differ by a custom section, so that no compiled copy is reused.
  const compileMs = await page.evaluate(async () => {
    const bytes = new Uint8Array(await (await fetch('/bench/pkg/sessionkit_wasm_bg.wasm')).arrayBuffer());
    const times = [];
    for (let r = 0; r < 11; r += 1) {
      const name = new TextEncoder().encode(`bench-${r}-${Math.random()}`);
      const section = new Uint8Array([0, name.length + 1, name.length, ...name]);
      const module = new Uint8Array(bytes.length + section.length);
      module.set(bytes);
      module.set(section, bytes.length);
      const start = performance.now();
      await WebAssembly.compile(module);
      times.push(performance.now() - start);
    }
    return times;
  });
  const size = fs.readFileSync(sizeReport, 'utf8');
  console.log(`getAccessToken() on a fresh token: median ${median(perCallUs).toFixed(2)} us per call `
    + `(rounds: ${perCallUs.map((x) => x.toFixed(2)).join(', ')})`);
  console.log(`freshAccessToken() (synchronous) on a fresh token: median ${median(syncNs).toFixed(0)} ns per call `
    + `(rounds: ${syncNs.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`authHeaders() on a DPoP session (ES256 proof via WebCrypto): median ${median(proofMs).toFixed(3)} ms `
    + `per call (rounds: ${proofMs.map((x) => x.toFixed(3)).join(', ')})`);
  console.log(`SessionKit.create() with a stored session: median ${median(createMs).toFixed(1)} ms `
    + `(min ${Math.min(...createMs).toFixed(1)}, max ${Math.max(...createMs).toFixed(1)})`);
  console.log(`WebAssembly.compile() of the shipped module (not streamed, never cached): median `
    + `${median(compileMs).toFixed(1)} ms (min ${Math.min(...compileMs).toFixed(1)}, max ${Math.max(...compileMs).toFixed(1)})`);
  console.log(`shipped size (bindings/sessionkit-wasm/pkg/size.txt):\n${size}`);
  await context.close();

  // Side by side with oidc-client-ts: first with every file served no-store (each load fetches
  // and compiles the library), then with the libraries' files cacheable, as an app serves its
  // content-hashed assets (the browser keeps them, and its compiled code for them).
  const compared = await compare(browser, stack, 'loads');
  stack.cacheable = ['/bench/pkg/', '/bench/oidc-client-ts/'];
  const comparedCached = await compare(browser, stack, 'loads');
  const floor = await storeFloor(browser, stack);
  stack.cacheable = [];
  refreshStack = await startStack({ mounts: benchServing.mounts, idp: { ...benchServing.idp, IDP_ACCESS_TTL: '2' } });
  const refreshed = await compare(browser, refreshStack, 'refresh');
  // Again with SessionKit's DPoP off, as oidc-client-ts runs by default: no proof to sign, and
  // no CORS preflight before each token request (the DPoP header makes the request non-simple).
  const refreshedNoDpop = await compare(browser, refreshStack, 'refresh', { dpop: 'off' });
  const shipped = {
    sessionkit: Number(/^total\s+\d+\s+(\d+)\s*$/m.exec(size)[1]),
    // gzip -9 as the package's size report does it.
    'oidc-client-ts': execFileSync('gzip', ['-9c', local(oidcBundle)]).length,
  };
  printTable(compared, comparedCached, refreshed, refreshedNoDpop, shipped);
  printFloor(floor);
} finally {
  await browser.close();
  await stack.stop();
  await refreshStack?.stop();
}

// Opens each library's bench page in a new context of `browser` against `on` (signing in on each
// page first), then measures: 'loads' (page loads with the stored session and token reads) or
// 'refresh' (refresh round trips). The libraries take turns round by round, so that the noise of
// a busy machine falls on both alike.
async function compare(browser, on, what, settings = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers: 'block' });
  // The pages' settings, without a request for them (`settings`: SessionKit's `dpop`).
  await context.addInitScript((config) => { window.benchConfig = config; },
    { issuer: on.issuer, clientId: 'sessionkit-web', ...settings });
  try {
    const pages = {};
    for (const lib of LIBRARIES) pages[lib] = await signedInPage(context, on, lib);
    const results = Object.fromEntries(LIBRARIES.map((lib) => [lib, what === 'loads'
      ? { load: [], script: [], requests: [], requestsAfter: [], firstRequestLeadMs: [] }
      : { refresh: [], requests: [] }]));
    if (what === 'loads') {
      for (let round = 0; round < 21; round += 1) {
        for (const lib of LIBRARIES) {
          const load = await reload(pages[lib], on);
          results[lib].load.push(load.tokenAt);
          results[lib].script.push(load.tokenAt - load.scriptStart);
          results[lib].requests.push(load.requests);
          results[lib].requestsAfter.push(load.requestsAfter);
          results[lib].firstRequestLeadMs.push(load.firstRequestLeadMs);
        }
      }
      for (const lib of LIBRARIES) Object.assign(results[lib], await tokenReads(pages[lib]));
    } else {
      // One refresh each first, not counted: oidc-client-ts fetches the discovery document on
      // its first token request (SessionKit has its stored copy).
      for (const lib of LIBRARIES) await refreshOnce(pages[lib], on);
      for (let round = 0; round < 21; round += 1) {
        for (const lib of LIBRARIES) {
          const { ms, requests } = await refreshOnce(pages[lib], on);
          results[lib].refresh.push(ms);
          results[lib].requests.push(requests);
        }
      }
    }
    return results;
  } finally {
    await context.close();
  }
}

// The page's result once it has its token (or knows it is signed out). `ready` is
// `nextReady(page)`, taken before the navigation whose page is awaited. The bench waits for the
// page's console message instead of polling the page: Playwright's polling runs its injected
// script in the page, whose parse and compile (about 8 ms on the page's main thread here) would
// land in the middle of a load being measured.
function nextReady(page) {
  const ready = page.waitForEvent('console', { predicate: (message) => message.text() === 'bench:ready', timeout: 60_000 });
  ready.catch(() => {}); // when the navigation itself failed, that error is the one reported
  return ready;
}

async function benchResult(page, ready) {
  await ready;
  const result = await page.evaluate(() => ({ ...window.benchResult, timeOrigin: performance.timeOrigin }));
  if (result.error) throw new Error(`${page.url()}: ${result.error}`);
  return result;
}

async function signedInPage(context, on, lib) {
  const page = await context.newPage();
  const loaded = nextReady(page);
  await page.goto(`${on.origin}/bench/${lib}.html`);
  let result = await benchResult(page, loaded);
  if (!result.signedIn) {
    // To the provider (which approves by itself) and back with a code.
    const back = nextReady(page);
    await page.evaluate(() => { window.bench.signIn(); });
    await page.waitForURL((url) => url.pathname === `/bench/${lib}.html` && url.searchParams.has('code'), { timeout: 60_000 });
    result = await benchResult(page, back);
    if (!result.signedIn) throw new Error(`${lib}: not signed in after the redirect`);
  }
  return page;
}

// The floor of any start from an encrypted IndexedDB store, without a library
// (bench-pages/store-floor.js): script start to the records read and decrypted, 21 loads
// alone and 21 with the shipped module compiling beside them, taking turns (which goes first
// alternates by round); run with the module cacheable, as in the cacheable comparison. Not
// interleaved with SessionKit's own loads: compare it with them in the same run only.
async function storeFloor(browser, on) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers: 'block' });
  try {
    const page = await context.newPage();
    const load = async (query) => {
      const ready = nextReady(page);
      await page.goto(`${on.origin}/bench/store-floor.html${query}`, { waitUntil: 'commit' });
      return benchResult(page, ready);
    };
    if (!(await load('')).written) throw new Error('store-floor: the first load found a database already there');
    await load('?beside-module'); // once, not counted: the module's first fetch and compile
    const results = { alone: [], besideModule: [], compiled: [] };
    const measure = async (query) => {
      const result = await load(query);
      if (typeof result.readAt !== 'number' || (query && typeof result.compiledAt !== 'number')) {
        throw new Error(`store-floor: no read or compile time (${JSON.stringify(result)})`);
      }
      if (query) {
        results.besideModule.push(result.readAt - result.scriptStart);
        results.compiled.push(result.compiledAt - result.scriptStart);
      } else {
        results.alone.push(result.readAt - result.scriptStart);
      }
    };
    for (let round = 0; round < 21; round += 1) {
      const order = round % 2 === 0 ? ['', '?beside-module'] : ['?beside-module', ''];
      for (const query of order) await measure(query);
    }
    return results;
  } finally {
    await context.close();
  }
}

function printFloor(floor) {
  const mid = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const spread = (xs) => `median ${mid(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
  console.log(`
The floor of a start from an encrypted IndexedDB store (bench-pages/store-floor.js: no library; open, one
readonly transaction for the two records and the AES-GCM key, both records decrypted), script start to
records in hand, 21 loads each (compare with SessionKit's cacheable script start to token above):
- alone: ${spread(floor.alone)}
- with the shipped .wasm (cacheable) fetched and compiled beside it: ${spread(floor.besideModule)}; the
  module compiled at ${spread(floor.compiled)}`);
}

// One reload with the stored session: the page's times, and the requests it sent to the
// provider (Playwright's request events) before its token was in hand and after (up to when the
// bench saw the token). Which side a request falls on is read from the page's Resource Timing,
// on the clock the page's token time is read from (Playwright's request times are wall-clock,
// a millisecond or two apart from it); one the page has no entry for counts as before.
async function reload(page, on) {
  let sent = 0;
  const count = (request) => { if (request.url().startsWith(`${on.issuer}/`)) sent += 1; };
  page.on('request', count);
  try {
    const ready = nextReady(page);
    await page.reload({ waitUntil: 'commit' });
    const result = await benchResult(page, ready);
    if (!result.signedIn) throw new Error(`${page.url()}: the stored session was not restored`);
    const total = sent;
    // The start times of the page's requests to the provider, once all of them are in its
    // Resource Timing (an entry appears with the response): 5 s at most.
    const starts = await page.waitForFunction(([issuer, n]) => {
      const found = performance.getEntriesByType('resource').filter((entry) => entry.name.startsWith(`${issuer}/`));
      return found.length >= n && found.map((entry) => entry.startTime);
    }, [on.issuer, total], { timeout: 5_000 }).then((handle) => handle.jsonValue(), () => []);
    const after = Math.min(total, starts.filter((start) => start >= result.tokenAt).length);
    const lead = starts.length ? result.tokenAt - Math.min(...starts) : null;
    return { ...result, requests: total - after, requestsAfter: after, firstRequestLeadMs: lead };
  } finally {
    page.off('request', count);
  }
}

// Per-call token reads on a fresh token: the async read in 11 rounds of 2,000 calls, the
// synchronous one (where the library has one) in 11 rounds of 100,000.
async function tokenReads(page) {
  const asyncUs = await page.evaluate(async () => {
    const rounds = [];
    for (let r = 0; r < 11; r += 1) {
      const start = performance.now();
      for (let i = 0; i < 2_000; i += 1) await window.bench.readToken();
      rounds.push(((performance.now() - start) / 2_000) * 1000);
    }
    if (!(await window.bench.readToken())) throw new Error('no token');
    return rounds;
  });
  const syncNs = await page.evaluate(() => {
    if (!window.bench.readTokenSync) return null;
    const rounds = [];
    let token = null;
    for (let r = 0; r < 11; r += 1) {
      const start = performance.now();
      for (let i = 0; i < 100_000; i += 1) token = window.bench.readTokenSync();
      rounds.push(((performance.now() - start) / 100_000) * 1e6);
    }
    if (!token) throw new Error('no fresh token');
    return rounds;
  });
  return { asyncUs, syncNs };
}

// One refresh round trip, in ms (the wait for SessionKit's refresh to be due is not counted),
// and the requests the page sent to the provider meanwhile (CORS preflights are not reported).
async function refreshOnce(page, on) {
  await page.evaluate(() => window.bench.waitUntilRefreshable());
  let requests = 0;
  const count = (request) => { if (request.url().startsWith(`${on.issuer}/`)) requests += 1; };
  page.on('request', count);
  try {
    return { ms: await page.evaluate(() => window.bench.refresh()), requests };
  } finally {
    page.off('request', count);
  }
}

function printTable(compared, comparedCached, refreshed, refreshedNoDpop, shipped) {
  const sk = 'sessionkit';
  const oc = 'oidc-client-ts';
  const mid = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : '-');
  const ms = (x) => `${x.toFixed(1)} ms`;
  // Requests per load: one number when every load sent as many, else the median (min-max).
  const spread = (xs) => (Math.min(...xs) === Math.max(...xs)
    ? `${xs[0]}` : `${mid(xs)} (${Math.min(...xs)}-${Math.max(...xs)})`);
  const requests = (r) => `${spread(r.requests)}, then ${spread(r.requestsAfter)}`;
  const row = (label, a, b, r) => `| ${label} | ${a} | ${b} | ${r} |`;
  const load = [mid(compared[sk].load), mid(compared[oc].load)];
  const script = [mid(compared[sk].script), mid(compared[oc].script)];
  const loadCached = [mid(comparedCached[sk].load), mid(comparedCached[oc].load)];
  const scriptCached = [mid(comparedCached[sk].script), mid(comparedCached[oc].script)];
  const asyncUs = [mid(compared[sk].asyncUs), mid(compared[oc].asyncUs)];
  const syncNs = compared[sk].syncNs && mid(compared[sk].syncNs);
  const refresh = [mid(refreshed[sk].refresh), mid(refreshed[oc].refresh)];
  const refreshNoDpop = [mid(refreshedNoDpop[sk].refresh), mid(refreshedNoDpop[oc].refresh)];
  const rows = [
    '| | @sessionkit/web | oidc-client-ts | ratio |',
    '| --- | ---: | ---: | ---: |',
    row('page load to token, stored session (navigation start to token), median of 21', ms(load[0]), ms(load[1]), ratio(...load)),
    row('script start to token, stored session, median of 21', ms(script[0]), ms(script[1]), ratio(...script)),
    row('page load to token, the libraries cacheable (immutable), median of 21', ms(loadCached[0]), ms(loadCached[1]),
      ratio(...loadCached)),
    row('script start to token, the libraries cacheable (immutable), median of 21', ms(scriptCached[0]),
      ms(scriptCached[1]), ratio(...scriptCached)),
    row('requests to the provider per load: before the token, then after it (until the bench saw it); median (min-max) of 21',
      requests(compared[sk]), requests(compared[oc]), '-'),
    row('token read, async, per call (median of 11 rounds of 2,000)', `${asyncUs[0].toFixed(2)} us`,
      `${asyncUs[1].toFixed(2)} us`, ratio(...asyncUs)),
    row('token read, sync, per call (median of 11 rounds of 100,000)', syncNs === null ? 'n/a' : `${syncNs.toFixed(0)} ns`,
      compared[oc].syncNs ? `${mid(compared[oc].syncNs).toFixed(0)} ns` : 'n/a', 'n/a'),
    row('one forced refresh round trip, median of 21', ms(refresh[0]), ms(refresh[1]), ratio(...refresh)),
    row('the same, SessionKit with DPoP off (as oidc-client-ts), median of 21', ms(refreshNoDpop[0]),
      ms(refreshNoDpop[1]), ratio(...refreshNoDpop)),
    row('shipped size, gzip -9', `${shipped[sk].toLocaleString('en')} B`, `${shipped[oc].toLocaleString('en')} B`,
      ratio(shipped[sk], shipped[oc])),
  ];
  console.log(`
@sessionkit/web vs oidc-client-ts 3.5.0, headless Chromium, same provider (loads, script and reads: access
tokens of 600 s; refresh: a provider with 2 s tokens):
${LIBRARIES.map((lib) => `- ${lib}, page loads to token (ms): ${compared[lib].load.map((x) => x.toFixed(1)).join(', ')}`).join('\n')}
${LIBRARIES.map((lib) => `- ${lib}, page loads to token, the library cacheable (ms): ${comparedCached[lib].load.map((x) => x.toFixed(1)).join(', ')}`).join('\n')}
${LIBRARIES.map((lib) => `- ${lib}, requests to the provider per load, before/after the token `
    + `(first one sent this many ms before the token): ${compared[lib].requests.map((n, i) => `${n}/${compared[lib].requestsAfter[i]}`
      + `${compared[lib].firstRequestLeadMs[i] === null ? '' : ` (${compared[lib].firstRequestLeadMs[i].toFixed(1)})`}`).join(', ')}`).join('\n')}
${LIBRARIES.map((lib) => `- ${lib}, refreshes (ms): ${refreshed[lib].refresh.map((x) => x.toFixed(1)).join(', ')}; `
    + `requests to the provider each: ${[...new Set(refreshed[lib].requests)].join(' or ')}`).join('\n')}
- sessionkit with DPoP off, refreshes (ms): ${refreshedNoDpop[sk].refresh.map((x) => x.toFixed(1)).join(', ')}

${rows.join('\n')}

ratio: @sessionkit/web / oidc-client-ts (below 1: SessionKit faster or smaller). Forced refresh: SessionKit has
no call for it, so getAccessToken() once a refresh is due (backgroundRefresh: false); oidc-client-ts:
signinSilent() with its refresh token. Both pages: the server's cache-control no-store (the library is
fetched and compiled on every load), except in the "cacheable" rows (each library's files served
public, max-age=31536000, immutable; the pages themselves still no-store), refresh only when asked; SessionKit with its defaults otherwise
(DPoP when the provider offers it: its refresh signs a proof), oidc-client-ts with its defaults otherwise
(no DPoP) and its user in localStorage. Sizes: SessionKit bindings/sessionkit-wasm/pkg/size.txt total
(index.js + .wasm); oidc-client-ts ${oidcBundle.replace('node_modules/', '')} (minified, jwt-decode included).`);
}
