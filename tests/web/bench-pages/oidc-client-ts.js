// The oidc-client-ts side of tests/web/bench.mjs; the page contract is described in sessionkit.js.
const scriptStart = performance.now();
try {
  // The library's browser bundle (dist/browser/oidc-client-ts.min.js: minified, jwt-decode
  // included) defines the global `oidc`; its ESM build imports "jwt-decode" by bare name, which a
  // page cannot load without a bundler. Loaded from here so that "script start to token"
  // includes loading the library, as on the other page.
  await new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = './oidc-client-ts/oidc-client-ts.min.js';
    script.onload = resolve;
    script.onerror = () => reject(new Error('could not load oidc-client-ts'));
    document.head.append(script);
  });
  const { UserManager, WebStorageStateStore } = window.oidc;
  const userManager = new UserManager({
    authority: window.benchConfig.issuer,
    client_id: window.benchConfig.clientId,
    redirect_uri: `${location.origin}${location.pathname}`,
    // What SessionKit asks for by default (openid + its default scopes ["offline_access"]).
    scope: 'openid offline_access',
    // oidc-client-ts keeps the user in sessionStorage by default: gone with the tab, not shared
    // with other tabs. localStorage keeps it like SessionKit's IndexedDB store does, so both
    // pages start from a session stored for the origin.
    userStore: new WebStorageStateStore({ store: window.localStorage }),
    // Refresh only when asked, as the other page does (its backgroundRefresh: false).
    automaticSilentRenew: false,
  });
  const params = new URLSearchParams(location.search);
  if (params.has('state') && (params.has('code') || params.has('error'))) {
    await userManager.signinCallback();
    // oidc-client-ts leaves the code in the address bar: remove it, or a reload would replay it.
    history.replaceState(history.state, '', location.pathname);
  }
  const user = await userManager.getUser();
  const token = user?.access_token ?? null;
  const tokenAt = performance.now();

  window.bench = {
    signIn: () => userManager.signinRedirect(),
    readToken: async () => (await userManager.getUser()).access_token,
    readTokenSync: null, // oidc-client-ts has no synchronous read
    waitUntilRefreshable: async () => {}, // signinSilent() refreshes whenever asked
    async refresh() {
      const before = (await userManager.getUser()).access_token;
      const start = performance.now();
      const refreshed = await userManager.signinSilent(); // with a refresh token: one token request
      const ms = performance.now() - start;
      if (!refreshed || refreshed.access_token === before) throw new Error('signinSilent() did not refresh');
      return ms;
    },
  };
  window.benchResult = { scriptStart, tokenAt, signedIn: token !== null };
} catch (error) {
  window.benchResult = { error: `${error.name}: ${error.message}` };
}
// Tells the bench the result is there (it listens for this rather than polling the page, which
// would run its own script in the page while the page loads).
console.debug('bench:ready');
