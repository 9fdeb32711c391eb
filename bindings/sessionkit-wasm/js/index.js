// @sessionkit/web: secure OpenID Connect sessions for progressive web apps.
//
// The session itself (PKCE sign-in, refresh, idle and absolute timeouts, logout, cross-tab
// sharing, the encrypted IndexedDB store) is the SessionKit Rust core compiled to WebAssembly.
// This file is the JavaScript face of it: the `SessionKit` class, one `Error` subclass per
// failure kind, activity tracking for the idle timeout, and an authorized `fetch`.

import init, { WebAccounts, WebSession } from './sessionkit_wasm.js';
// The web store's own JS (the driver's store/web.js), reached from here by build.sh.
import { dropEarlyRead, readEarly } from './sessionkit_store.js';

/** Base class of every error this package throws. `name` is stable; `message` has no secret. */
export class SessionKitError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SessionKitError';
  }
}
/** The session is over (signed out, expired, revoked): sign in again. */
export class ReauthenticationRequiredError extends SessionKitError {
  constructor(message) { super(message); this.name = 'ReauthenticationRequiredError'; }
}
/** A transient failure (network, provider 5xx/429, lock busy); the session is kept. */
export class RetryLaterError extends SessionKitError {
  constructor(message, retryAfterMs) {
    super(message);
    this.name = 'RetryLaterError';
    /** How long the provider asked to wait, if it said. */
    this.retryAfterMs = retryAfterMs;
  }
}
/** IndexedDB or WebCrypto could not be used (some private modes, quota). */
export class StorageUnavailableError extends SessionKitError {
  constructor(message) { super(message); this.name = 'StorageUnavailableError'; }
}
/** The configuration or the provider's metadata breaks a rule (http issuer, bad redirect URI...). */
export class MisconfiguredError extends SessionKitError {
  constructor(message) { super(message); this.name = 'MisconfiguredError'; }
}
/** Refused input: a forged or stale callback, a tampered token, a token for another origin. */
export class InvalidInputError extends SessionKitError {
  constructor(message) { super(message); this.name = 'InvalidInputError'; }
}

const ERRORS = {
  ReauthenticationRequiredError,
  StorageUnavailableError,
  MisconfiguredError,
  InvalidInputError,
};

function toSessionKitError(error) {
  if (error instanceof SessionKitError) return error;
  const name = error && error.name;
  const message = (error && error.message) || String(error);
  if (name === 'RetryLaterError') return new RetryLaterError(message, error.retryAfterMs);
  if (ERRORS[name]) return new ERRORS[name](message);
  return new SessionKitError(message);
}

async function call(promise) {
  try {
    return await promise;
  } catch (error) {
    throw toSessionKitError(error);
  }
}

// Starts reading the store's records while the module downloads and compiles; the store takes
// that read when it opens (store/web.js, `loadFirst`). Only before the module is loaded (later
// there is nothing to overlap), and only for a name the config accepts (1 to 100 bytes;
// "sessionkit" when not given, as in config.rs). Returns the name read, for `create` to drop
// the read if it fails before its store opened.
function readStoreEarly(config) {
  const name = config?.storeName ?? 'sessionkit';
  const bytes = typeof name === 'string' ? new TextEncoder().encode(name).length : 0;
  if (loading || bytes < 1 || bytes > 100 || !globalThis.indexedDB) return null;
  try {
    readEarly(name);
    return name;
  } catch {
    return null; // the store reads when it opens, and reports what goes wrong then
  }
}

// Runs `create` (a client's creation) with the store's early read, dropped if it failed before
// the store took it.
async function withEarlyRead(config, create) {
  const early = readStoreEarly(config);
  try {
    await call(loadWasm(config && config.wasmUrl));
    return await create();
  } finally {
    if (early) dropEarlyRead(early);
  }
}

let loading;
function loadWasm(wasmUrl) {
  // A load that failed (the network, say) is tried again by the next call, not kept.
  loading ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined).catch((error) => {
    loading = undefined;
    throw error;
  });
  return loading;
}

// What counts as user activity for the idle timeout.
const ACTIVITY_EVENTS = ['pointerdown', 'keydown', 'wheel', 'touchstart'];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

/**
 * The origins `fetch` may send the token to: each an https origin (http for loopback only).
 * Anything else (`data:`, `file:`, a typo) is a configuration error, not an opaque "null" origin.
 */
function apiOrigins(entries) {
  const origins = new Set();
  for (const entry of entries) {
    let url;
    try {
      url = new URL(entry);
    } catch {
      throw new MisconfiguredError(`config.apiOrigins: ${JSON.stringify(String(entry))} is not a URL`);
    }
    const secure = url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
    if (!secure || url.origin === 'null') {
      throw new MisconfiguredError(
        `config.apiOrigins: ${JSON.stringify(String(entry))} is not an https origin (http only for loopback addresses)`);
    }
    origins.add(url.origin);
  }
  return origins;
}

// The SessionKit objects whose WebAssembly side was released by close().
const closed = new WeakSet();

/** One user's session in this browser, shared by all of the origin's tabs. */
export class SessionKit {
  #core;
  #apiOrigins;
  #detach = [];

  /** Use `SessionKit.create(config)` (or `Accounts`' `open` and `switchTo`). */
  constructor(core, config) {
    this.#core = core;
    this.#apiOrigins = apiOrigins(config.apiOrigins || [globalThis.location?.origin].filter(Boolean));
    if (config.trackActivity !== false && typeof window !== 'undefined') {
      this.#trackActivity(config.activityThrottleMs ?? 5000);
    }
  }

  /**
   * Loads the WebAssembly module, opens the encrypted store, discovers the provider and restores
   * a stored session. An evicted store is a clean signed-out start. With `config.account`, the
   * session of that account (see `Accounts`).
   */
  static async create(config) {
    return withEarlyRead(config, async () => new SessionKit(await call(WebSession.create(config)), config));
  }

  /** Starts a sign-in: navigates to the provider (authorization code + PKCE). */
  async login(options = {}) {
    const url = await call(this.#core.beginLogin(options));
    if (options.navigate === false) return url;
    window.location.assign(url);
    return url;
  }

  /** Whether `url` (default: the current page) is a redirect back from the provider. */
  isRedirectCallback(url = window.location.href) {
    const params = new URL(url).searchParams;
    return params.has('state') && (params.has('code') || params.has('error'));
  }

  /**
   * Completes the sign-in from the provider's redirect (default: the current URL), then removes
   * the code and state from the address bar and history.
   */
  async handleRedirectCallback(url = window.location.href) {
    try {
      await call(this.#core.handleRedirectCallback(url));
    } finally {
      if (url === window.location.href) {
        const clean = new URL(url);
        for (const name of ['code', 'state', 'iss', 'session_state', 'error', 'error_description']) {
          clean.searchParams.delete(name);
        }
        window.history.replaceState(window.history.state, '', clean.toString());
      }
    }
  }

  /** A fresh access token (refreshed when needed, once for all callers and tabs). */
  getAccessToken() {
    return call(this.#core.getAccessToken());
  }

  /**
   * The access token if it is fresh now, synchronously, for hot paths: no refresh, no store
   * read, no promise. `null` when a refresh or a sign-in is needed: then await `getAccessToken()`.
   */
  freshAccessToken() {
    return this.#core.freshAccessToken() ?? null;
  }

  /** How the token is presented: 'DPoP' (bound to this browser's key), 'Bearer', or null when signed out. */
  tokenType() {
    return this.#core.tokenType() ?? null;
  }

  /**
   * `fetch` with the access token in the Authorization header. Only to the origins in
   * `config.apiOrigins` (default: this page's origin): a token is never sent anywhere else.
   * Redirects are not followed with the token (whether a browser drops `Authorization` on a
   * cross-origin redirect is not ours to rely on): a redirect comes back as
   * `response.type === 'opaqueredirect'` (status 0; the browser hides its `Location`). Call the
   * API's final URL instead.
   */
  async fetch(input, init) {
    const request = new Request(input, init);
    // A DPoP-bound session may have to send once more with the API's nonce: keep a copy (of
    // the body too, so only then).
    const copy = this.#core.tokenType() === 'DPoP' ? request.clone() : null;
    let response = await this.#send(request);
    const header = (name) => response.headers.get(name) ?? undefined;
    const again = this.#core.noteApiResponse(request.url, response.status, header('WWW-Authenticate'), header('DPoP-Nonce'));
    if (again && copy) response = await this.#send(copy);
    return response;
  }

  async #send(request) {
    const headers = new Headers(request.headers);
    for (const [name, value] of Object.entries(await this.authHeaders(request.method, request.url))) {
      headers.set(name, value);
    }
    return fetch(new Request(request, { headers, redirect: 'manual' }));
  }

  /**
   * The headers for one request to your API, for HTTP clients other than `fetch`:
   * `{ Authorization }`, plus `{ DPoP }` (a fresh, single-use proof for this method and URL) when
   * the session is DPoP-bound. Only for `config.apiOrigins`. Build them per request.
   */
  async authHeaders(method, url) {
    let target;
    try {
      target = new URL(url, globalThis.location?.href);
    } catch {
      throw new InvalidInputError(`not a URL: ${JSON.stringify(String(url))}`);
    }
    if (!this.#apiOrigins.has(target.origin)) {
      throw new InvalidInputError(
        `refusing to send the access token to ${target.origin}: it is not in config.apiOrigins`);
    }
    const headers = await call(this.#core.authHeaders(String(method), target.href));
    return headers.dpop ? { Authorization: headers.authorization, DPoP: headers.dpop } : { Authorization: headers.authorization };
  }

  /**
   * Signs out everywhere: wipes the session in every tab, revokes the tokens, then navigates to
   * the provider's end-session page (unless `{ redirect: false }`). Resolves to that URL or null.
   */
  async logout(options = {}) {
    const url = await call(this.#core.logout());
    if (url && options.redirect !== false) window.location.assign(url);
    return url;
  }

  /** Calls `listener(event)` for each session event; returns a function that unsubscribes. */
  onEvent(listener) {
    const id = this.#core.onEvent(listener);
    return () => this.#core.offEvent(id);
  }

  /** Counts user activity for the idle timeout (done automatically unless trackActivity: false). */
  recordActivity() {
    this.#core.recordActivity();
  }

  /** The session's identity and deadlines (epoch ms), or null when signed out. */
  status() {
    return this.#core.status();
  }

  /** Stops tracking activity and releases the WebAssembly object. */
  close() {
    for (const detach of this.#detach) detach();
    this.#detach = [];
    closed.add(this);
    this.#core.free();
  }

  #trackActivity(throttleMs) {
    let last = 0;
    const onActivity = () => {
      const now = Date.now();
      if (now - last < throttleMs) return;
      last = now;
      this.#core.recordActivity();
    };
    const onVisibility = () => {
      if (document.visibilityState !== 'visible') return;
      onActivity();
      // A tab coming back may have missed messages while it was frozen.
      this.#core.syncFromStore().catch(() => {});
    };
    for (const type of ACTIVITY_EVENTS) window.addEventListener(type, onActivity, { passive: true, capture: true });
    document.addEventListener('visibilitychange', onVisibility);
    this.#detach.push(() => {
      for (const type of ACTIVITY_EVENTS) window.removeEventListener(type, onActivity, { capture: true });
      document.removeEventListener('visibilitychange', onVisibility);
    });
  }
}

/**
 * Several users in this browser (work and personal), one session each, side by side in the
 * encrypted store: list them, switch, and sign one out without touching the others.
 */
export class Accounts {
  #core;
  #config;
  /** One `SessionKit` per account name, made once (each tracks the page's activity). */
  #sessions = new Map();

  /** Use `Accounts.create(config)`. */
  constructor(core, config) {
    this.#core = core;
    this.#config = config;
  }

  #session(name, core) {
    let kit = this.#sessions.get(name);
    if (kit && !closed.has(kit)) {
      core.free(); // the same Rust client as the one kit holds
    } else {
      kit = new SessionKit(core, this.#config);
      this.#sessions.set(name, kit);
    }
    return kit;
  }

  /** The accounts of the config's provider and client (`config.account` is ignored). */
  static async create(config) {
    return withEarlyRead(config, async () => new Accounts(await call(WebAccounts.create(config)), config));
  }

  /** The account names, in the order they were added (signed in or not). */
  names() {
    return call(this.#core.names());
  }

  /** The account last switched to (remembered across page loads), or null. */
  current() {
    return call(this.#core.current());
  }

  /**
   * The session of account `name` (listed from now on; the same object on every call): 1 to 64
   * lowercase letters, digits, '.', '_' or '-'. Every account opened in a page counts the page's
   * activity for its idle timeout; `close()` one to stop that.
   */
  async open(name) {
    return this.#session(String(name), await call(this.#core.open(String(name))));
  }

  /** Makes `name` the current account and resolves to its session. */
  async switchTo(name) {
    return this.#session(String(name), await call(this.#core.switchTo(String(name))));
  }

  /**
   * Signs account `name` out in every tab (wipe, revoke) and forgets it; the other accounts are
   * untouched. Navigates to its end-session page unless `{ redirect: false }`; resolves to that URL or null.
   */
  async remove(name, options = {}) {
    const url = await call(this.#core.remove(String(name)));
    this.#sessions.delete(String(name)); // still usable, signed out

    if (url && options.redirect !== false) window.location.assign(url);
    return url;
  }
}
