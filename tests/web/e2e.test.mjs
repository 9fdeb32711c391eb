// End-to-end tests of @sessionkit/web in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against the local OpenID provider over TLS. The app under test is the PWA
// example (examples/pwa, built with Vite), served by its own serve.mjs.
//
// Run by scripts/test after the package and the example are built; alone: `npm test` here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startStack } from '../../examples/pwa/serve.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// Short-lived access tokens, so that refreshes happen within a test.
const ACCESS_TTL_SECONDS = 6;

let stack;
let browser;
let baseConfig;

before(async () => {
  stack = await startStack({ idp: { IDP_AUTO_APPROVE: '1', IDP_ACCESS_TTL: String(ACCESS_TTL_SECONDS) } });
  baseConfig = { ...stack.config, activityThrottleMs: 500 };
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** A request to the provider's test endpoints, trusting its CA. */
function idp(method, path, body) {
  const ca = fs.readFileSync(stack.provider.ca);
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'application/json' } : {};
    const req = https.request(`${stack.issuer}${path}`, { method, ca, headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve(body ? JSON.parse(body) : null));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

async function resetStats() {
  await idp('POST', '/__test/reset');
}

/** Polls `check` until it returns a truthy value (bounded). */
async function eventually(check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * A fresh browser profile (its own IndexedDB) with the app configured by `config`. Collects
 * page errors and console lines from every tab, to show that nothing throws or logs a token.
 */
async function newApp(config = {}, { serviceWorkers = 'block' } = {}) {
  stack.config = { ...baseConfig, ...config };
  const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers });
  const app = { context, errors: [], console: [], callbacks: [] };
  app.openTab = async () => {
    const page = await context.newPage();
    page.on('pageerror', (error) => app.errors.push(String(error)));
    page.on('console', (message) => app.console.push(message.text()));
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame() && frame.url().includes('code=')) app.callbacks.push(frame.url());
    });
    await page.goto(`${stack.origin}/`);
    await waitForState(page, ['signed-in', 'signed-out']);
    return page;
  };
  return app;
}

function waitForState(page, wanted, timeout = 20_000) {
  return page.waitForFunction(
    (states) => states.includes(document.getElementById('state').dataset.state),
    [].concat(wanted), { timeout, polling: 100 },
  );
}

async function signIn(page) {
  await waitForState(page, 'signed-out');
  await page.click('#login');
  // Provider (auto-approved login and consent), then back to the app with a code.
  await waitForState(page, 'signed-in');
}

/** An app with `tabs` tabs, signed in through the first (the others restore the session). */
async function signedIn(config = {}, tabs = 1, options = {}) {
  const app = await newApp(config, options);
  const first = await app.openTab();
  await signIn(first);
  const pages = [first];
  while (pages.length < tabs) {
    const page = await app.openTab();
    await waitForState(page, 'signed-in'); // restored from the shared, encrypted store
    pages.push(page);
  }
  return { app, pages };
}

/** Clicks "Call the protected API" and expects a 200. */
async function callApi(page) {
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('api').textContent.startsWith('200'));
}

/** Nothing threw in any tab; the profile is closed. */
async function finish(app) {
  assert.deepEqual(app.errors, []);
  await app.context.close();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const untilExpired = () => sleep((ACCESS_TTL_SECONDS + 1) * 1000);

const token = (page) => page.evaluate(() => window.sessionKit.getAccessToken());
const events = (page) => page.evaluate(() => (window.sessionEvents || []).map((e) => ({ ...e })));
const errorOf = (page, script, arg) => page.evaluate(
  async ([body, value]) => {
    try {
      await new Function('value', `return (${body})(value)`)(value);
      return null;
    } catch (error) {
      return { name: error.name, message: error.message, isError: error instanceof Error };
    }
  },
  [script, arg],
);

test('redirect sign-in with PKCE, then an authorized API call; the callback works once', async () => {
  const app = await newApp();
  const page = await app.openTab();
  await signIn(page);
  assert.equal(await page.textContent('#subject'), 'alice');
  assert.ok(!page.url().includes('code='), 'the code is removed from the address bar');
  const authorize = app.callbacks.length;
  assert.equal(authorize, 1, 'one redirect back with a code');

  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('api').textContent !== '(none yet)');
  assert.match(await page.textContent('#api'), /^200 .*"sub":"alice"/);
  // The synchronous read for hot paths gives the same fresh token, without a promise.
  const [fresh, awaited] = await page.evaluate(async () =>
    [window.sessionKit.freshAccessToken(), await window.sessionKit.getAccessToken()]);
  assert.ok(fresh && fresh === awaited, 'freshAccessToken() is the current token');

  // Replaying the callback: the pending login was single-use.
  const replay = await errorOf(page, '(url) => window.sessionKit.handleRedirectCallback(url)', app.callbacks[0]);
  assert.equal(replay?.name, 'InvalidInputError');
  assert.ok(replay.isError, 'errors are Error subclasses');
  const code = new URL(app.callbacks[0]).searchParams.get('code');
  assert.ok(code && !replay.message.includes(code), 'the message does not carry the code');
  assert.equal(await page.getAttribute('#state', 'data-state'), 'signed-in', 'a refused callback loses nothing');

  // The authorized fetch never sends the token to an origin it was not told about.
  const elsewhere = await errorOf(page, '(url) => window.sessionKit.fetch(url)', 'https://elsewhere.example/');
  assert.equal(elsewhere?.name, 'InvalidInputError');
  await finish(app);
});

test('DPoP: the tokens are bound to a browser key no script can read; every API call carries a proof', async () => {
  const { app, pages: [page, other] } = await signedIn({}, 2);
  assert.equal(await page.evaluate(() => window.sessionKit.tokenType()), 'DPoP');
  const api = `${stack.issuer}/__test/api`;
  const call = (tab) => tab.evaluate(async (url) => {
    const response = await window.sessionKit.fetch(url);
    return { status: response.status, body: await response.json() };
  }, api);
  const first = await call(page);
  assert.equal(first.status, 200);
  assert.equal(first.body.dpop, true, 'the API saw a DPoP-bound token and checked its proof');
  // The token alone (as a thief would have it) is refused; so is a proof used twice.
  const stolen = await page.evaluate(async (url) => {
    const token = await window.sessionKit.getAccessToken();
    const bearer = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    const headers = await window.sessionKit.authHeaders('GET', url);
    const once = await fetch(url, { headers });
    const twice = await fetch(url, { headers });
    return { bearer: bearer.status, once: once.status, twice: twice.status, names: Object.keys(headers).sort() };
  }, api);
  assert.deepEqual(stolen, { bearer: 401, once: 200, twice: 401, names: ['Authorization', 'DPoP'] });
  // The other tab signs with the same key (shared through IndexedDB).
  assert.equal((await call(other)).status, 200);
  // An API that asks for its nonce gets one retry, invisibly to the app.
  await idp('POST', '/__test/dpop', { apiNonce: true });
  try {
    assert.equal((await call(page)).status, 200);
    assert.equal((await call(other)).status, 200);
  } finally {
    await idp('POST', '/__test/dpop', { apiNonce: false });
  }
  // authHeaders keeps to apiOrigins like fetch.
  const elsewhere = await errorOf(page, '(url) => window.sessionKit.authHeaders("GET", url)', 'https://elsewhere.example/');
  assert.equal(elsewhere?.name, 'InvalidInputError');
  // The key's database cleared while the session's record stays: a new tab cannot sign, and the
  // session ends (everywhere) with an error that says so, instead of retrying forever.
  await page.evaluate(() => new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase('sessionkit-dpop');
    request.onsuccess = resolve;
    request.onerror = () => reject(request.error);
  }));
  const fresh = await app.openTab();
  await waitForState(fresh, 'signed-in');
  const lost = await errorOf(fresh, '(url) => window.sessionKit.fetch(url)', api);
  assert.equal(lost?.name, 'ReauthenticationRequiredError');
  assert.match(lost.message, /no longer in its key store/);
  await waitForState(fresh, 'signed-out');
  await waitForState(page, 'signed-out');
  await finish(app);
});

// Issue 11, finding 9.
test('the authorized fetch follows no redirect with the token; apiOrigins take https origins only', async () => {
  const { app, pages: [page] } = await signedIn();
  const redirected = await page.evaluate(async (url) => {
    const response = await window.sessionKit.fetch(url);
    return { type: response.type, status: response.status };
  }, `${stack.issuer}/__test/api-redirect`);
  assert.deepEqual(redirected, { type: 'opaqueredirect', status: 0 }, 'the redirect is returned, not followed');
  await finish(app);

  for (const origin of ['data:text/plain,hello', 'http://api.example', 'not a url']) {
    const bad = await newApp({ apiOrigins: [origin] });
    const tab = await bad.context.newPage();
    await tab.goto(`${stack.origin}/`);
    await waitForState(tab, 'error');
    assert.match(await tab.textContent('#state'), /MisconfiguredError: config\.apiOrigins/, origin);
    await bad.context.close();
  }
});

test('logout clears the service worker caches; API answers are never cached', async () => {
  const { app, pages: [page] } = await signedIn({}, 1, { serviceWorkers: 'allow' });
  await page.evaluate(() => navigator.serviceWorker.ready);
  // What an app might have put there while signed in.
  await page.evaluate(async () => (await caches.open('app-data')).put('/me', new Response('{"name":"alice"}')));
  await page.click('#logout');
  await page.waitForURL((url) => url.href.startsWith(`${stack.issuer}/session/end`));
  const back = await app.context.newPage();
  await back.goto(`${stack.origin}/`);
  await waitForState(back, 'signed-out');
  const cached = await back.evaluate(async () => {
    const urls = [];
    for (const name of await caches.keys()) {
      for (const request of await (await caches.open(name)).keys()) urls.push(`${name} ${new URL(request.url).pathname}`);
    }
    return urls;
  });
  assert.ok(!cached.some((entry) => entry.startsWith('app-data')), `cleared at logout: ${cached}`);
  assert.ok(cached.every((entry) => / (\/|\/index\.html|\/assets\/.*|\/icon\.svg|\/manifest\.webmanifest)$/.test(entry)),
    `only the shell is cached: ${cached}`);
  await finish(app);
});

test('tampered ID tokens are refused in the browser (WebCrypto signature check, claims, alg)', async () => {
  const app = await newApp();
  const page = await app.openTab();
  for (const tamper of ['signature', 'alg_none', 'hmac', 'nonce', 'aud']) {
    await idp('POST', '/__test/fault', { path: '/token', mode: 'tamper', tamper });
    await page.click('#login');
    await page.waitForFunction(() => /Error: /.test(document.getElementById('api').textContent), null, { timeout: 20_000 });
    const shown = await page.textContent('#api');
    assert.match(shown, /^InvalidInputError: /, `${tamper}: ${shown}`);
    assert.equal(await page.getAttribute('#state', 'data-state'), 'signed-out', `${tamper}: nobody is signed in`);
    await page.evaluate(() => { document.getElementById('api').textContent = '(none yet)'; });
  }
  await idp('POST', '/__test/faults/clear');
  // The signature check accepts the provider's real tokens (RS256 here).
  await signIn(page);
  await finish(app);
});

test('refresh with rotation: a new access token, the old refresh token spent once', async () => {
  const { app, pages: [page] } = await signedIn();
  await resetStats();
  const first = await token(page);
  await eventually(async () => (await events(page)).some((e) => e.type === 'refreshed'), 'a background refresh');
  const second = await token(page);
  assert.notEqual(second, first, 'the refreshed token is a new one');
  const stats = await idp('GET', '/__test/stats');
  assert.ok(stats.token.refresh_token >= 1, 'the provider saw a refresh grant');
  assert.deepEqual(stats.tokenErrors, {}, 'no refresh was refused (no replay)');
  await callApi(page);
  await finish(app);
});

test('two tabs with an expired token make one refresh and both stay signed in', async () => {
  const { app, pages: [tabA, tabB] } = await signedIn({ backgroundRefresh: false }, 2);
  const before = await token(tabA);
  // Let the access token expire, with nobody refreshing in the background.
  await untilExpired();
  await resetStats();
  const askMany = (page) => page.evaluate(() => Promise.all(
    Array.from({ length: 5 }, () => window.sessionKit.getAccessToken()),
  ));
  const [fromA, fromB] = await Promise.all([askMany(tabA), askMany(tabB)]);
  const all = new Set([...fromA, ...fromB]);
  assert.equal(all.size, 1, 'both tabs use the same refreshed token');
  assert.ok(!all.has(before), 'and it is a new one');
  const stats = await idp('GET', '/__test/stats');
  assert.equal(stats.token.refresh_token, 1, 'exactly one refresh grant for two tabs and ten callers');
  assert.deepEqual(stats.tokenErrors, {}, 'no replayed refresh token');
  for (const tab of [tabA, tabB]) {
    assert.equal(await tab.getAttribute('#state', 'data-state'), 'signed-in');
  }
  await callApi(tabB);
  await finish(app);
});

test('a provider answering 503 keeps the session: RetryLaterError, then a refresh once it recovers', async () => {
  const { app, pages: [page] } = await signedIn({ backgroundRefresh: false });
  await untilExpired();
  await resetStats();
  await idp('POST', '/__test/fault', { path: '/token', mode: 'status', status: 503, retryAfter: 1 });
  const refused = await errorOf(page, '() => window.sessionKit.getAccessToken()', null);
  assert.equal(refused?.name, 'RetryLaterError');
  assert.equal(await page.getAttribute('#state', 'data-state'), 'signed-in', 'a transient failure never ends it');
  const fresh = await eventually(
    () => page.evaluate(() => window.sessionKit.getAccessToken().catch(() => null)),
    'a refresh after the backoff',
  );
  assert.ok(fresh);
  const stats = await idp('GET', '/__test/stats');
  assert.deepEqual(stats.tokenErrors, { temporarily_unavailable: 1 }, 'one attempt met the 503, no retry storm');
  assert.equal(stats.token.refresh_token, 1, 'then one refresh reached the provider');
  await callApi(page);
  await finish(app);
});

test('logout with the revocation endpoint down wipes at once and revokes later', async () => {
  const { app, pages: [page] } = await signedIn();
  await resetStats();
  // Three 503s: the transport's own quick retries of the refresh token's revocation all fail.
  await idp('POST', '/__test/fault', { path: '/token/revocation', mode: 'status', status: 503, times: 3 });
  const endSession = await page.evaluate(() => window.sessionKit.logout({ redirect: false }));
  assert.ok(endSession.startsWith(`${stack.issuer}/session/end?`), 'the end-session URL is offered');
  assert.equal(await page.evaluate(() => window.sessionKit.status()), null, 'signed out at once');
  // 3 failed attempts, then the access token's revocation; the refresh token's is retried from
  // the durable queue 5 s later, without anybody asking: a fifth request.
  await eventually(async () => (await idp('GET', '/__test/stats')).revocation >= 5, 'the retried revocation');
  await finish(app);
});

test('a refresh lock held by a hung tab times out (session kept); closing that tab frees it', async () => {
  const { app, pages: [tabA] } = await signedIn({ backgroundRefresh: false });
  // Another tab of the origin takes the refresh lock and never lets go.
  const hung = await app.context.newPage();
  await hung.goto(`${stack.origin}/`);
  const lockName = `sessionkit-refresh|${stack.issuer}|sessionkit-web`;
  await hung.evaluate((name) => new Promise((held) => {
    navigator.locks.request(name, () => { held(); return new Promise(() => {}); });
  }), lockName);
  await untilExpired();
  await resetStats();
  const refused = await errorOf(tabA, '() => window.sessionKit.getAccessToken()', null);
  assert.equal(refused?.name, 'RetryLaterError', 'the wait for the lock is bounded');
  assert.equal(await tabA.getAttribute('#state', 'data-state'), 'signed-in', 'and the session is kept');
  assert.equal((await idp('GET', '/__test/stats')).token.refresh_token, undefined, 'nothing was sent');
  // The browser releases a closed tab's locks: the next attempt (after the short backoff) refreshes.
  await hung.close();
  const fresh = await eventually(
    () => tabA.evaluate(() => window.sessionKit.getAccessToken().catch(() => null)),
    'a refresh once the lock is free',
  );
  assert.ok(fresh);
  assert.equal((await idp('GET', '/__test/stats')).token.refresh_token, 1);
  await finish(app);
});

test('sign-in in one tab reaches the others; logout in one signs out the others, revokes, opens end-session', async () => {
  // Tab B is open, signed out, before tab A signs in: the sign-in reaches it over the channel.
  const app = await newApp();
  const tabB = await app.openTab();
  const tabA = await app.openTab();
  await signIn(tabA);
  await waitForState(tabB, 'signed-in');
  assert.equal(await tabB.textContent('#subject'), 'alice');
  await resetStats();
  await tabA.click('#logout');
  await tabA.waitForURL((url) => url.href.startsWith(`${stack.issuer}/session/end`));
  await waitForState(tabB, 'signed-out');
  await eventually(async () => (await idp('GET', '/__test/stats')).revocation >= 1, 'the revocation');
  const ended = await errorOf(tabB, '() => window.sessionKit.getAccessToken()', null);
  assert.equal(ended?.name, 'ReauthenticationRequiredError');
  assert.equal(await tabB.evaluate(() => window.sessionKit.freshAccessToken()), null, 'no fresh token once signed out');
  await finish(app);
});

/** Counts the store's reads of every record (`getAll`) in each page of `app`: asked, done. */
async function countStoreReads(app) {
  await app.context.addInitScript(() => {
    const reads = { asked: 0, done: 0 };
    window.storeReads = reads;
    const getAll = IDBObjectStore.prototype.getAll;
    IDBObjectStore.prototype.getAll = function countedGetAll(...args) {
      reads.asked += 1;
      const request = getAll.apply(this, args);
      request.addEventListener('success', () => { reads.done += 1; });
      return request;
    };
  });
}
const storeReads = (page) => page.evaluate(() => ({ ...window.storeReads }));

test('a tab that read the store while another signed out starts signed out (no second read needed)', async () => {
  const { app, pages: [tabA] } = await signedIn();
  await countStoreReads(app);
  // Tab B's module is held back until tab A has signed out. B's store read starts before the
  // module is fetched, so it sees the session; the sign-out lands after it, and B hears of it
  // only on the tabs' channel, which it listened to since before that read.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let asked;
  const wasmAsked = new Promise((resolve) => { asked = resolve; });
  await app.context.route((url) => url.pathname.endsWith('.wasm'), async (route) => {
    asked();
    await held;
    await route.continue();
  });
  const tabB = await app.context.newPage();
  tabB.on('pageerror', (error) => app.errors.push(String(error)));
  await tabB.goto(`${stack.origin}/`, { waitUntil: 'commit' });
  await wasmAsked;
  // B has read the store; then A's sign-out, written and announced.
  await eventually(async () => (await storeReads(tabB)).done >= 1, "tab B's early read");
  await tabA.click('#logout');
  await tabA.waitForURL((url) => url.href.startsWith(`${stack.issuer}/session/end`));
  release();
  // Signed out from its start on, not only later (other paths catch up within seconds).
  await waitForState(tabB, ['signed-in', 'signed-out']);
  assert.equal(await tabB.evaluate(() => document.getElementById('state').dataset.state), 'signed-out');
  assert.equal(await tabB.evaluate(() => window.sessionKit.freshAccessToken()), null, 'no token from the old read');
  assert.ok((await storeReads(tabB)).asked >= 2, 'B read again, having heard of the change');
  await finish(app);
});

/**
 * Plays another user's browser (its own cookies) through the provider for `url`, and returns the
 * redirect back to the app, which is not loaded.
 */
async function authorizeElsewhere(url) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  let callback = null;
  // The redirect itself cannot be routed (Playwright follows redirects), but it is seen; the
  // app's scripts are kept from loading, so that nothing there touches the code.
  context.on('request', (request) => {
    const target = new URL(request.url());
    if (target.origin === stack.origin && target.searchParams.has('code')) callback ??= request.url();
  });
  await context.route((target) => target.origin === stack.origin && !target.searchParams.has('code'),
    (route) => route.abort());
  const page = await context.newPage();
  await page.goto(url).catch(() => {}); // ends at the aborted redirect back
  await eventually(() => callback, 'the redirect back to the app');
  await context.close();
  return callback;
}

test('a page load with a stored session hands out its token with no request to the provider, then revalidates', async () => {
  const { app, pages: [page] } = await signedIn();
  await countStoreReads(app);
  await resetStats();
  // The background revalidation is held up at the provider: a request the start made itself
  // would be counted before the page had its token.
  await idp('POST', '/__test/fault', { path: '/.well-known/openid-configuration', mode: 'delay', delayMs: 1500, times: 1 });
  await page.reload();
  await waitForState(page, 'signed-in');
  assert.ok(await page.evaluate(() => window.sessionKit.freshAccessToken()), 'the stored token, synchronously');
  // One read of the store: no other tab spoke while it started, so the start did not read again.
  assert.equal((await storeReads(page)).asked, 1);
  const stats = await idp('GET', '/__test/stats');
  assert.deepEqual([stats.discovery, stats.jwks, stats.token], [0, 0, {}], JSON.stringify(stats));
  await eventually(async () => {
    const after = await idp('GET', '/__test/stats');
    return after.discovery === 1 && after.jwks === 1;
  }, 'the background revalidation');
  await callApi(page);
  await finish(app);
});

test('a start whose module download failed works when tried again, without a reload', async () => {
  const app = await newApp();
  let wasmRequests = 0;
  await app.context.route((url) => url.pathname.endsWith('.wasm'), (route) => {
    wasmRequests += 1;
    return wasmRequests === 1 ? route.abort('failed') : route.continue();
  });
  const page = await app.context.newPage();
  page.on('pageerror', (error) => app.errors.push(String(error)));
  await page.goto(`${stack.origin}/`);
  await waitForState(page, 'error');
  await page.click('#retry');
  await waitForState(page, 'signed-out');
  assert.equal(wasmRequests, 2, 'the module was fetched again by the second start');
  await signIn(page); // and the session works (the redirect back loads the page afresh)
  await finish(app);
});

test('two accounts side by side: listed, switched, each refreshing and signing out alone, in every tab', async () => {
  const app = await newApp();
  const tab = await app.openTab();
  for (const [name, user] of [['work', 'alice'], ['personal', 'bob']]) {
    const url = await tab.evaluate(async ([account, hint]) => {
      window.accounts ??= await window.sessionKitAccounts();
      window[account] = await window.accounts.open(account);
      return window[account].login({ navigate: false, loginHint: hint });
    }, [name, user]);
    const callback = await authorizeElsewhere(url);
    await tab.evaluate(([account, back]) => window[account].handleRedirectCallback(back), [name, callback]);
  }
  const seen = await tab.evaluate(async () => {
    const switched = await window.accounts.switchTo('personal');
    return { work: window.work.status().subject, personal: window.personal.status().subject,
      names: await window.accounts.names(), current: await window.accounts.current(),
      same: switched === window.personal && (await window.accounts.open('work')) === window.work };
  });
  assert.deepEqual(seen, { work: 'alice', personal: 'bob', names: ['work', 'personal'], current: 'personal', same: true });
  assert.equal(await tab.getAttribute('#state', 'data-state'), 'signed-out', "the app's default session is another slot");

  // A second tab finds both accounts in the encrypted store, and the current one.
  const other = await app.openTab();
  const restored = await other.evaluate(async () => {
    window.accounts = await window.sessionKitAccounts();
    window.work = await window.accounts.open('work');
    window.personal = await window.accounts.open('personal');
    return { work: window.work.status().subject, personal: window.personal.status().subject,
      current: await window.accounts.current() };
  });
  assert.deepEqual(restored, { work: 'alice', personal: 'bob', current: 'personal' });

  // Each refreshes its own tokens once the short-lived access tokens expire.
  const before = await tab.evaluate(() => Promise.all([window.work.getAccessToken(), window.personal.getAccessToken()]));
  await untilExpired();
  const after = await tab.evaluate(() => Promise.all([window.work.getAccessToken(), window.personal.getAccessToken()]));
  assert.ok(after[0] !== before[0] && after[1] !== before[1] && after[0] !== after[1], 'both refreshed, apart');

  // Removing work in the first tab signs it out there and in the other tab; personal is untouched.
  await resetStats();
  const end = await tab.evaluate(() => window.accounts.remove('work', { redirect: false }));
  assert.ok(end.startsWith(`${stack.issuer}/session/end`), end);
  await eventually(() => other.evaluate(() => window.work.status() === null), 'work signed out in the other tab');
  await eventually(async () => (await idp('GET', '/__test/stats')).revocation >= 1, "work's revocation");
  const ended = await errorOf(other, '() => window.work.getAccessToken()', null);
  assert.equal(ended?.name, 'ReauthenticationRequiredError');
  const left = await other.evaluate(async () => ({ subject: window.personal.status()?.subject,
    token: await window.personal.getAccessToken(), names: await window.accounts.names() }));
  assert.equal(left.subject, 'bob');
  assert.equal(left.token, after[1], 'the personal session kept its token');
  assert.deepEqual(left.names, ['personal']);
  const refused = await errorOf(tab, '() => window.accounts.open("not/a name")', null);
  assert.equal(refused?.name, 'MisconfiguredError');
  await finish(app);
});

test('idle timeout: activity in any tab counts; without it the app is warned, then signed out', async () => {
  const { app, pages: [tabA, tabB] } = await signedIn({ idleTimeoutSeconds: 8, warningLeadSeconds: 4 }, 2);
  // 12 s of key presses in tab B only: past the 8 s idle limit, tab A stays signed in.
  for (let i = 0; i < 12; i += 1) {
    await tabB.keyboard.press('Shift');
    await sleep(1000);
  }
  assert.equal(await tabA.getAttribute('#state', 'data-state'), 'signed-in');
  // Then nobody is active: the warning, then the end, in both tabs.
  await waitForState(tabA, 'signed-out', 30_000);
  await waitForState(tabB, 'signed-out', 30_000);
  // Each tab is warned before its end. The tab whose timer confirms the idle limit on the
  // shared record first ends the session for idleness; the other may learn of the end first
  // from the emptied store, which it reports as ended elsewhere (`revoked`): both tabs reach
  // the limit together, and which one gets there first depends on timer scheduling.
  const reasons = [];
  for (const tab of [tabA, tabB]) {
    const seen = (await events(tab)).map((e) => `${e.type}:${e.reason ?? ''}`);
    const warned = seen.indexOf('expiringSoon:idle');
    const expired = seen.findIndex((e) => e === 'expired:idleTimeout' || e === 'expired:revoked');
    assert.ok(warned >= 0 && expired > warned, `warning before the end: ${seen.join(', ')}`);
    reasons.push(seen[expired]);
  }
  assert.ok(reasons.includes('expired:idleTimeout'), `one tab ended it for idleness: ${reasons}`);
  await finish(app);
});

test('a browser clock 10 minutes slow or fast still signs in and refreshes', async () => {
  for (const skewMinutes of [-10, 10]) {
    stack.config = { ...baseConfig };
    const context = await browser.newContext({ ignoreHTTPSErrors: true, serviceWorkers: 'block' });
    // The page's Date.now() is off; the provider's Date header is unreadable cross-origin.
    await context.clock.setSystemTime(new Date(Date.now() + skewMinutes * 60_000));
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(`${stack.origin}/`);
    await signIn(page);
    await eventually(async () => (await events(page)).some((e) => e.type === 'refreshed'), `a refresh (${skewMinutes} min)`);
    await callApi(page);
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('evicted storage gives a clean signed-out start, and sign-in works again', async () => {
  const { app, pages: [page] } = await signedIn();
  const cdp = await app.context.newCDPSession(page);
  await cdp.send('Storage.clearDataForOrigin', { origin: stack.origin, storageTypes: 'indexeddb' });
  await page.reload();
  await waitForState(page, 'signed-out');
  assert.equal(await page.evaluate(() => window.sessionKit.status()), null);
  await signIn(page);
  await finish(app);
});

test('no token in localStorage, sessionStorage, cookies, the console, or readable in IndexedDB', async () => {
  const { app, pages: [page] } = await signedIn();
  await eventually(async () => (await events(page)).some((e) => e.type === 'refreshed'), 'a refresh');
  const access = await token(page);
  const probe = await page.evaluate(async () => {
    const text = (bytes) => Array.from(bytes, (b) => String.fromCharCode(b)).join('');
    const request = (req) => new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const out = {
      local: Object.keys(localStorage), session: Object.keys(sessionStorage), cookie: document.cookie,
      records: [], keys: [],
    };
    for (const { name } of await indexedDB.databases()) {
      const db = await request(indexedDB.open(name));
      for (const storeName of db.objectStoreNames) {
        const tx = db.transaction(storeName);
        const values = await request(tx.objectStore(storeName).getAll());
        for (const value of values) {
          if (value instanceof CryptoKey) {
            const exportable = await crypto.subtle.exportKey('jwk', value).then(() => true, () => false);
            out.keys.push({ extractable: value.extractable, exportable, algorithm: value.algorithm.name });
          } else {
            out.records.push(value instanceof Uint8Array ? text(value) : JSON.stringify(value));
          }
        }
      }
      db.close();
    }
    return out;
  });
  assert.deepEqual(probe.local, []);
  assert.deepEqual(probe.session, []);
  assert.equal(probe.cookie, '');
  // Cookies are per host, not per port: the provider's own httpOnly session cookies on 127.0.0.1
  // show up here. None may be readable by script, and none may hold the token.
  const cookies = await app.context.cookies(stack.origin);
  assert.deepEqual(cookies.filter((cookie) => !cookie.httpOnly), []);
  assert.ok(!cookies.some((cookie) => cookie.value.includes(access)));
  // The store's sealing key and the session's DPoP key: neither can be read by script.
  const keys = [...probe.keys].sort((a, b) => a.algorithm.localeCompare(b.algorithm));
  assert.deepEqual(keys, [
    { extractable: false, exportable: false, algorithm: 'AES-GCM' },
    { extractable: false, exportable: false, algorithm: 'ECDSA' },
  ]);
  assert.ok(probe.records.length >= 2, 'the session and the provider cache are stored');
  for (const record of probe.records) {
    for (const needle of [access, 'refresh_token', 'access_token', 'eyJ', 'schema_version', 'alice']) {
      assert.ok(!record.includes(needle), `a stored record is readable (found ${needle.slice(0, 12)}...)`);
    }
  }
  assert.ok(!app.console.some((line) => line.includes(access)), 'the token is not in the console');
  await finish(app);
});
