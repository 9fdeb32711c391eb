// The @sessionkit/web side of tests/web/bench.mjs. Both bench pages expose the same things:
//   window.benchResult  set once the page has its token (or knows it is signed out):
//                       { scriptStart, tokenAt, signedIn } (performance.now(), ms since navigation
//                       start) or { error }; then the page logs "bench:ready" (console.debug)
//   window.bench        signIn(), readToken() (async), readTokenSync() (null when the library has
//                       none), waitUntilRefreshable(), refresh() (one refresh round trip, in ms)
// The provider's issuer and client id (and, from trace.mjs, a `dpop` setting) come from
// window.benchConfig (set by the bench's init script, so that the page makes no request for them).
const scriptStart = performance.now();
try {
  // Imported here rather than statically, so that "script start to token" includes loading the
  // library, as on the other page (a static import would run before this line).
  const { SessionKit } = await import('./pkg/index.js');
  const kit = await SessionKit.create({
    issuer: window.benchConfig.issuer,
    clientId: window.benchConfig.clientId,
    redirectUri: `${location.origin}${location.pathname}`,
    // Refresh only when asked, as the other page does: no timer refresh may fall inside a
    // measurement (the refresh bench's tokens last 2 s).
    backgroundRefresh: false,
    ...(window.benchConfig.dpop ? { dpop: window.benchConfig.dpop } : {}),
  });
  if (kit.isRedirectCallback()) await kit.handleRedirectCallback();
  const signedIn = kit.status() !== null;
  const token = signedIn ? await kit.getAccessToken() : null;
  const tokenAt = performance.now();
  if (signedIn && !token) throw new Error('signed in but no token');

  window.bench = {
    signIn: () => kit.login(),
    readToken: () => kit.getAccessToken(),
    readTokenSync: () => kit.freshAccessToken(),
    // A refresh is only made when one is due (there is no call to force one): wait for that.
    async waitUntilRefreshable() {
      const dueInMs = kit.status().refreshDueAt - Date.now();
      if (dueInMs > 10_000) throw new Error(`a refresh is due only in ${dueInMs} ms: use short-lived tokens`);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, dueInMs) + 20));
    },
    async refresh() {
      const before = kit.status().accessExpiresAt;
      const start = performance.now();
      await kit.getAccessToken();
      const ms = performance.now() - start;
      if (kit.status().accessExpiresAt === before) throw new Error('getAccessToken() did not refresh');
      return ms;
    },
  };
  window.benchResult = { scriptStart, tokenAt, signedIn };
} catch (error) {
  window.benchResult = { error: `${error.name}: ${error.message}` };
}
// Tells the bench the result is there (it listens for this rather than polling the page, which
// would run its own script in the page while the page loads).
console.debug('bench:ready');
