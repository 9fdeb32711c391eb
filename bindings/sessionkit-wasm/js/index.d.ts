// Types for @sessionkit/web.

export interface SessionKitConfig {
  /** The provider's issuer URL (https). */
  issuer: string;
  /** This app's client id (a public client: no secret). */
  clientId: string;
  /** Where the provider sends the browser back; usually the page that calls handleRedirectCallback. */
  redirectUri: string;
  /** Where the provider sends the browser after sign-out. */
  postLogoutRedirectUri?: string;
  /** Scopes beyond `openid` (default ["offline_access"]). */
  scopes?: string[];
  /** Sign out after this long without user activity (default 15 minutes). */
  idleTimeoutSeconds?: number;
  /** Sign out this long after sign-in, active or not (default 8 hours). */
  absoluteLifetimeSeconds?: number;
  /** Send `expiringSoon` this long before either limit (default 2 minutes). */
  warningLeadSeconds?: number;
  /** Refresh this long before the access token expires (default 60 s, at most half its lifetime). */
  refreshLeadSeconds?: number;
  /** Refresh ahead of expiry in the background (default true); false: only when a token is asked for. */
  backgroundRefresh?: boolean;
  /**
   * DPoP (RFC 9449): bind the tokens to a non-extractable key of this browser. 'whenSupported'
   * (default) when the provider offers it; 'required' refuses a provider without it; 'off'.
   */
  dpop?: 'off' | 'whenSupported' | 'required';
  /** Origins `fetch` may send the token to (default: this page's origin): https, or http on loopback only. */
  apiOrigins?: string[];
  /** IndexedDB database name (default "sessionkit"). */
  storeName?: string;
  /** This session's account, when the app keeps several users (see `Accounts`). */
  account?: string;
  /** Count pointer, key, wheel, touch and visibility as activity (default true). */
  trackActivity?: boolean;
  /** At most one activity report per this many ms (default 5000). */
  activityThrottleMs?: number;
  /** Where to load the .wasm from (default: next to this module). */
  wasmUrl?: string | URL;
}

export interface LoginOptions {
  /** `prompt`: 'login' to force re-authentication, 'consent', 'select_account', 'none'. */
  prompt?: string;
  /** `login_hint`: the user name or email to prefill (an account switch). */
  loginHint?: string;
  /** `max_age` in seconds: re-authenticate if the last authentication is older (step-up). */
  maxAgeSeconds?: number;
  /** `acr_values`: the authentication context classes asked for (step-up, e.g. MFA). */
  acrValues?: string;
  /** false: resolve to the URL instead of navigating. */
  navigate?: boolean;
}

export interface SessionStatus {
  sessionId: string;
  subject: string;
  /** A name to show for the user (`preferred_username`, `name` or `email`), if the ID token had one. */
  displayName: string | null;
  /**
   * The authentication context class the provider says the sign-in met (the ID token's `acr`):
   * after a step-up asked for with `login({ acrValues })`, check it before trusting the step-up.
   * What the sign-in achieved (refreshes keep it), not a current assurance: see `authenticatedAt`.
   */
  acr: string | null;
  /** When the user authenticated at the provider (`auth_time`, epoch ms, this device's clock), if it said. */
  authenticatedAt: number | null;
  startedAt: number;
  absoluteDeadline: number;
  idleDeadline: number;
  accessExpiresAt: number;
  refreshDueAt: number;
  hasRefreshToken: boolean;
  /** Where the session is kept, e.g. "IndexedDB, AES-GCM sealed (persistent)". */
  store: string;
}

/** Why a session ended (the core's `EndReason`). */
export type EndReason =
  | 'notSignedIn' | 'signedOut' | 'idleTimeout' | 'absoluteLifetime' | 'refreshRejected' | 'revoked'
  | 'accessTokenExpired' | 'anomaly';
/** Which limit an `expiringSoon` warning is about. */
export type ExpiryReason = 'idle' | 'absolute';
/** What looked wrong (the core's `Anomaly`); `clockJumpedBack` comes with `byMs`. */
export type Anomaly = 'subjectChanged' | 'issuerChanged' | 'invalidIdToken' | 'dpopKeyLost' | 'clockJumpedBack';
/** What the store did wrong (the core's `StorageProblem`). */
export type StorageProblem = 'unavailable' | 'unreadable';

/** Everything that happens to a session; the same events, with the same fields, as in Rust, Kotlin and Swift. Times in epoch ms. */
export type SessionEvent =
  | { type: 'loggedIn'; sessionId: string; subject: string }
  | { type: 'restored'; sessionId: string; subject: string }
  | { type: 'refreshed'; sessionId: string; rotated: boolean; accessExpiresAt: number }
  | { type: 'expiringSoon'; sessionId: string; reason: ExpiryReason; timeLeftMs: number }
  | { type: 'expired'; sessionId: string; reason: EndReason }
  | { type: 'loggedOut'; sessionId: string }
  | { type: 'anomaly'; sessionId: string | null; anomaly: Anomaly; byMs?: number }
  | { type: 'storageProblem'; sessionId: string | null; problem: StorageProblem }
  | { type: 'other' }; // an event kind newer than this version of the package

/** `Authorization` (`DPoP <token>` or `Bearer <token>`), and the proof when DPoP-bound. */
export interface AuthHeaders {
  Authorization: string;
  DPoP?: string;
}

export class SessionKit {
  private constructor();
  static create(config: SessionKitConfig): Promise<SessionKit>;
  login(options?: LoginOptions): Promise<string>;
  isRedirectCallback(url?: string): boolean;
  handleRedirectCallback(url?: string): Promise<void>;
  /**
   * A fresh access token: at once from memory when it is fresh; otherwise after reading what
   * another tab changed, or after one refresh shared by every caller and tab. Rejects
   * (`ReauthenticationRequiredError`) when signed out. Like `freshAccessToken()`, it still hands
   * out a token until a `logout()` has begun: await `logout()` before asking again.
   */
  getAccessToken(): Promise<string>;
  /**
   * The token if it is fresh now, synchronously; null when `getAccessToken()` must be awaited:
   * a refresh is due, or another tab changed the session a moment ago and this one has not read
   * it yet (a millisecond or two).
   */
  freshAccessToken(): string | null;
  /**
   * `fetch` with the token (and a DPoP proof when the session is DPoP-bound, sent once more if the
   * API asks for its nonce), to `apiOrigins` only; redirects are returned, not followed (`opaqueredirect`).
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** How the token is presented: 'DPoP' (bound to this browser's key), 'Bearer', or null when signed out. */
  tokenType(): 'DPoP' | 'Bearer' | null;
  /** The headers for one API request by another HTTP client (`apiOrigins` only; one per request). */
  authHeaders(method: string, url: string | URL): Promise<AuthHeaders>;
  /**
   * Signs out: the session is wiped here and in every tab, its tokens revoked where the provider
   * supports it (later, if it cannot be reached). Resolves to the provider's end-session URL,
   * where the page goes unless `redirect: false` (null if it has none, or nobody was signed in).
   * Rejects (`StorageUnavailableError`) if the store could not be wiped: signed out here anyway,
   * the wipe retried. The session ends just after this call returns: await it before asking
   * for a token again.
   */
  logout(options?: { redirect?: boolean }): Promise<string | null>;
  onEvent(listener: (event: SessionEvent) => void): () => void;
  recordActivity(): void;
  status(): SessionStatus | null;
  close(): void;
}

export class SessionKitError extends Error {
  name: 'SessionKitError' | 'ReauthenticationRequiredError' | 'RetryLaterError' | 'StorageUnavailableError'
    | 'MisconfiguredError' | 'InvalidInputError';
}
export class ReauthenticationRequiredError extends SessionKitError { name: 'ReauthenticationRequiredError'; }
export class RetryLaterError extends SessionKitError {
  name: 'RetryLaterError';
  retryAfterMs?: number;
}
export class StorageUnavailableError extends SessionKitError { name: 'StorageUnavailableError'; }
export class MisconfiguredError extends SessionKitError { name: 'MisconfiguredError'; }
export class InvalidInputError extends SessionKitError { name: 'InvalidInputError'; }

/** Several users in this browser, one session each. */
export class Accounts {
  private constructor();
  static create(config: SessionKitConfig): Promise<Accounts>;
  names(): Promise<string[]>;
  current(): Promise<string | null>;
  open(name: string): Promise<SessionKit>;
  switchTo(name: string): Promise<SessionKit>;
  remove(name: string, options?: { redirect?: boolean }): Promise<string | null>;
}
