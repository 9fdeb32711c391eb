// Measures @sessionkit/web in headless Chromium against the local provider (not a test: run it
// by hand after scripts/web-test has built everything): `node bench.mjs`.
//   - getAccessToken() on a fresh token: median time per call, 11 rounds of 10,000 calls;
//   - freshAccessToken(), the synchronous read: median time per call, 11 rounds of 100,000;
//   - SessionKit.create() with a stored session (IndexedDB read + decrypt; discovery and JWKS
//     from their stored copies, no request): median of 21;
//   - authHeaders() on a DPoP-bound session (a fresh proof signed by the non-extractable
//     WebCrypto key each call): median time per call, 11 rounds of 200 calls;
//   - the shipped size, from the package's size report.
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { startStack } from '../../examples/pwa/serve.mjs';

const stack = await startStack({ idp: { IDP_AUTO_APPROVE: '1', IDP_ACCESS_TTL: '600' } });
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
  const size = fs.readFileSync(new URL('../../bindings/sessionkit-wasm/pkg/size.txt', import.meta.url), 'utf8');
  console.log(`getAccessToken() on a fresh token: median ${median(perCallUs).toFixed(2)} us per call `
    + `(rounds: ${perCallUs.map((x) => x.toFixed(2)).join(', ')})`);
  console.log(`freshAccessToken() (synchronous) on a fresh token: median ${median(syncNs).toFixed(0)} ns per call `
    + `(rounds: ${syncNs.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`authHeaders() on a DPoP session (ES256 proof via WebCrypto): median ${median(proofMs).toFixed(3)} ms `
    + `per call (rounds: ${proofMs.map((x) => x.toFixed(3)).join(', ')})`);
  console.log(`SessionKit.create() with a stored session: median ${median(createMs).toFixed(1)} ms `
    + `(min ${Math.min(...createMs).toFixed(1)}, max ${Math.max(...createMs).toFixed(1)})`);
  console.log(`shipped size (bindings/sessionkit-wasm/pkg/size.txt):\n${size}`);
} finally {
  await browser.close();
  await stack.stop();
}
