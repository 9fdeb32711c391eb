// The local OpenID provider for SessionKit's tests and demo: node-oidc-provider over TLS on
// 127.0.0.1, with a throwaway CA generated at start (never committed).
//
// Environment (all optional):
//   IDP_PORT            port to listen on (default 0: an ephemeral port)
//   IDP_STATE_DIR       where the CA and leaf are written (default: a new temp dir)
//   IDP_ACCESS_TTL      access token lifetime in seconds (default 60)
//   IDP_REFRESH_TTL     refresh token lifetime in seconds (default 3600)
//   IDP_AUTO_APPROVE=1  answer login and consent automatically (account: login_hint or "alice")
//   IDP_WEB_ORIGIN      the origin of a web app (e.g. http://127.0.0.1:5173): registers the public
//                       browser client "sessionkit-web" with redirect <origin>/ and post-logout
//                       redirect <origin>/?logged-out, and lets that origin call /__test/api
//   IDP_WEB_REDIRECT_PATHS  more redirect URIs for "sessionkit-web", as comma-separated paths on
//                       IDP_WEB_ORIGIN (e.g. /bench/a.html,/bench/b.html: the bench's own pages)
//
// On start it prints one JSON line: {"issuer", "port", "ca", "stateDir", "spkiPin"}. Test-only endpoints:
//   GET  /__test/stats   token endpoint requests by grant type, revocations, introspections
//   POST /__test/reset   zero the counters
//   GET  /__test/api     a protected resource: 200 with the token's subject, or 401. A DPoP-bound
//                        token needs `Authorization: DPoP` and a valid proof of its key (htm, htu,
//                        ath, a fresh iat, a jti never seen before, the server's nonce when on)
//   POST /__test/dpop    {"tokenNonce": bool, "apiNonce": bool}: require DPoP nonces at the token
//                        endpoint (node-oidc-provider's requireNonce) and at /__test/api
//   GET  /__test/api-redirect  a 302 to /__test/api (a redirecting API)
//   POST /__test/fault   queue a fault for the next requests to a path (JSON, see `applyFault`)
//   POST /__test/faults/clear
//
// The fault layer sits in front of the provider's handlers, on the same port: a request first
// meets it, then (unless the fault answers for it) the provider. It can delay, answer with a
// status and Retry-After, reset the connection before or after the provider handled the request
// (a response lost after a refresh token was rotated), send an oversized body, redirect to an
// http URL, or rewrite the ID token in a token response and re-sign it with the provider's own
// key (so that claim checks, not just signature checks, are exercised end to end).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

const env = process.env;
const stateDir = env.IDP_STATE_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'sessionkit-idp-'));
fs.mkdirSync(stateDir, { recursive: true });

function makeCertificates(dir) {
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file('ca.key'));
  openssl('req', '-x509', '-new', '-key', file('ca.key'), '-sha256', '-days', '2', '-subj', '/CN=SessionKit test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', file('ca.pem'));
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file('leaf.key'));
  openssl('req', '-new', '-key', file('leaf.key'), '-subj', '/CN=127.0.0.1', '-out', file('leaf.csr'));
  fs.writeFileSync(file('leaf.ext'), [
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
    'extendedKeyUsage=serverAuth',
    'basicConstraints=critical,CA:FALSE',
  ].join('\n'));
  openssl('x509', '-req', '-in', file('leaf.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-days', '2', '-sha256', '-extfile', file('leaf.ext'), '-out', file('leaf.pem'));
  for (const key of ['ca.key', 'leaf.key']) fs.chmodSync(file(key), 0o600);
  return { cert: fs.readFileSync(file('leaf.pem')), key: fs.readFileSync(file('leaf.key')), ca: file('ca.pem') };
}

function signingKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return { keys: [{ ...rsa, kid: 'rs-1', alg: 'RS256', use: 'sig' }, { ...ec, kid: 'es-1', alg: 'ES256', use: 'sig' }] };
}

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

// Rewrites an ID token: `kind` names the tampering. Valid-signature variants are re-signed
// with the provider's RSA key, so only the claim checks can catch them.
function tamperIdToken(idToken, kind, rsaJwk) {
  const [h, p, sig] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const resign = (hdr, body) => {
    const input = `${b64(hdr)}.${b64(body)}`;
    const key = crypto.createPrivateKey({ key: rsaJwk, format: 'jwk' });
    return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };
  const rs = { alg: 'RS256', kid: 'rs-1', typ: header.typ };
  switch (kind) {
    case 'iss': return resign(rs, { ...claims, iss: 'https://evil.example' });
    case 'aud': return resign(rs, { ...claims, aud: 'someone-else' });
    case 'nonce': return resign(rs, { ...claims, nonce: 'not-the-nonce' });
    case 'sub': return resign(rs, { ...claims, sub: 'mallory' });
    case 'expired': return resign(rs, { ...claims, exp: Math.floor(Date.now() / 1000) - 3600 });
    // A provider ignoring a step-up's max_age: the user's authentication of an hour ago.
    case 'old_auth_time': return resign(rs, { ...claims, auth_time: Math.floor(Date.now() / 1000) - 3600 });
    case 'no_auth_time': { const { auth_time: _, ...rest } = claims; return resign(rs, rest); }
    case 'signature': return `${h}.${b64({ ...claims, sub: 'mallory' })}.${sig}`;
    case 'alg_none': return `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`;
    case 'hmac': {
      // HS256 "signed" with the RSA public key's bytes: the classic algorithm-confusion attack.
      const input = `${b64({ alg: 'HS256', kid: 'rs-1' })}.${p}`;
      const secret = crypto.createPublicKey({ key: rsaJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
    }
    default: throw new Error(`unknown tampering ${kind}`);
  }
}

// Checks the DPoP proof of a request to the test API (RFC 9449 section 7.1): its signature by the
// key in its header, that key's thumbprint against the token's binding, htm, htu, ath, a recent
// iat, a jti never seen, and the API's nonce when required. Returns the problem, or undefined.
async function checkApiProof(ctx, token, jkt) {
  const proof = ctx.get('dpop');
  if (!proof || proof.includes(',')) return 'one DPoP header required';
  let verified;
  try {
    verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA'] });
  } catch {
    return 'bad signature or header';
  }
  const { payload, protectedHeader } = verified;
  if (await calculateJwkThumbprint(protectedHeader.jwk) !== jkt) return 'not the bound key';
  if (payload.htm !== ctx.method) return 'htm';
  if (payload.htu !== `${issuer}${ctx.path}`) return 'htu';
  if (payload.ath !== crypto.createHash('sha256').update(token).digest('base64url')) return 'ath';
  if (typeof payload.iat !== 'number') return 'iat';
  // A proof with the API's nonce is fresh whatever its iat says (a client whose clock is off
  // cannot know); without one, an iat off by more than 5 minutes gets a nonce to use instead
  // (RFC 9449 section 11.1), as node-oidc-provider's token endpoint does.
  if (payload.nonce !== apiNonce) {
    if (dpopSettings.apiNonce || Math.abs(Date.now() / 1000 - payload.iat) > 300) return 'use_dpop_nonce';
  }
  if (typeof payload.jti !== 'string' || apiSeenJti.has(payload.jti)) return 'replayed jti';
  apiSeenJti.add(payload.jti);
  return undefined;
}

// A reader that goes away must not crash the provider.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const tls = makeCertificates(stateDir);
const server = https.createServer({ cert: tls.cert, key: tls.key });
await new Promise((resolve) => server.listen(Number(env.IDP_PORT || 0), '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `https://127.0.0.1:${port}`;

const accounts = new Map();
const dpopSettings = { tokenNonce: false, apiNonce: false };
// The test API's own DPoP state: the proofs' jti it has seen, and its current nonce.
const apiSeenJti = new Set();
let apiNonce = crypto.randomBytes(16).toString('base64url');
const jwks = signingKeys();
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'sessionkit-test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1/logged-out'],
    },
    ...(env.IDP_WEB_ORIGIN ? [{
      // A browser app: public client, code + PKCE, refresh tokens (rotated), CORS by clientBasedCORS.
      client_id: 'sessionkit-web',
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${env.IDP_WEB_ORIGIN}/`,
        ...(env.IDP_WEB_REDIRECT_PATHS || '').split(',').filter(Boolean).map((p) => `${env.IDP_WEB_ORIGIN}${p}`)],
      post_logout_redirect_uris: [`${env.IDP_WEB_ORIGIN}/?logged-out`],
    }] : []),
    {
      // A confidential client used only by tests to ask the introspection endpoint.
      client_id: 'introspector',
      client_secret: 'introspector-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  // node-oidc-provider keeps offline_access only with prompt=consent; this test provider issues
  // refresh tokens to any client allowed the grant, as most providers do for offline_access.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  clientBasedCORS: () => true,
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  // A step-up class: a sign-in that asks for it (acr_values) gets it as the ID token's acr.
  acrValues: ['urn:example:mfa'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
  findAccount: async (ctx, id) => {
    accounts.set(id, true);
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: `Test user ${id}`, preferred_username: id, email: `${id}@example.test` };
      },
    };
  },
  ttl: {
    AccessToken: Number(env.IDP_ACCESS_TTL || 60),
    RefreshToken: Number(env.IDP_REFRESH_TTL || 3600),
    IdToken: 3600,
    AuthorizationCode: 60,
    DeviceCode: 600,
    Grant: 86400,
    Interaction: 600,
    Session: 86400,
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    // DPoP (RFC 9449) on, as at most providers that offer it: proofs are optional per request,
    // nonces only when a test asks for them (POST /__test/dpop).
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => dpopSettings.tokenNonce,
    },
  },
});
provider.proxy = false;

const stats = { token: {}, tokenErrors: {}, revocation: 0, introspection: 0, deviceAuthorization: 0, discovery: 0, jwks: 0 };
const resetStats = () => {
  stats.discovery = 0;
  stats.jwks = 0;
  stats.token = {};
  stats.tokenErrors = {};
  stats.revocation = 0;
  stats.introspection = 0;
  stats.deviceAuthorization = 0;
};

// Queued faults: { path, mode, times, status, retryAfter, tamper, delayMs }.
let faults = [];

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

// Applies the first queued fault for this path; true if it answered the request itself.
async function applyFault(ctx, next) {
  // A CORS preflight (a browser's DPoP header makes one) is not the request a fault is meant for.
  if (ctx.method === 'OPTIONS') return false;
  const index = faults.findIndex((f) => f.path === ctx.path && f.times > 0);
  if (index < 0) return false;
  const fault = faults[index];
  fault.times -= 1;
  if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
  switch (fault.mode) {
    case 'delay':
      return false;
    case 'status':
      ctx.status = fault.status || 503;
      if (fault.retryAfter !== undefined) ctx.set('Retry-After', String(fault.retryAfter));
      ctx.body = { error: fault.error || 'temporarily_unavailable' };
      return true;
    case 'reset':
      ctx.req.socket.destroy();
      ctx.respond = false;
      return true;
    case 'drop':
      // The provider handles the request (and rotates the refresh token); the answer is lost.
      await next();
      ctx.req.socket.destroy();
      ctx.respond = false;
      return true;
    case 'oversize':
      ctx.status = 200;
      ctx.type = 'application/json';
      ctx.body = `{"access_token":"${'a'.repeat(2 * 1024 * 1024)}","token_type":"Bearer"}`;
      return true;
    case 'redirect':
      ctx.status = 302;
      ctx.set('Location', `http://127.0.0.1:${port}${ctx.path}`);
      return true;
    case 'bearer':
      // The provider's answer with its token type claimed as Bearer: a downgrade to refuse.
      await next();
      if (ctx.body && typeof ctx.body === 'object' && ctx.body.token_type) {
        ctx.body = { ...ctx.body, token_type: 'Bearer' };
      }
      return true;
    case 'tamper':
      await next();
      if (ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
        ctx.body = { ...ctx.body, id_token: tamperIdToken(ctx.body.id_token, fault.tamper, jwks.keys[0]) };
      }
      return true;
    default:
      return false;
  }
}

// IDP_LOG_REQUESTS=1: one line per request on stderr (method, path, status, time spent here),
// to see where a client's round trips go (CORS preflights included).
if (process.env.IDP_LOG_REQUESTS) {
  provider.use(async (ctx, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      console.error(`idp: ${ctx.method} ${ctx.path} ${ctx.status} ${(performance.now() - start).toFixed(1)} ms`);
    }
  });
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/fault' && ctx.method === 'POST') {
    const fault = await readJson(ctx.req);
    faults.push({ times: 1, ...fault });
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/faults/clear' && ctx.method === 'POST') {
    faults = [];
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__test/dpop' && ctx.method === 'POST') {
    Object.assign(dpopSettings, await readJson(ctx.req));
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/reset' && ctx.method === 'POST') {
    resetStats();
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/api' || ctx.path === '/__test/api-redirect') {
    // The web app calls the API from its own origin: answer CORS for it (and only it).
    if (env.IDP_WEB_ORIGIN && ctx.get('origin') === env.IDP_WEB_ORIGIN) {
      ctx.set('Access-Control-Allow-Origin', env.IDP_WEB_ORIGIN);
      ctx.set('Vary', 'Origin');
      ctx.set('Access-Control-Expose-Headers', 'DPoP-Nonce, WWW-Authenticate');
      if (ctx.method === 'OPTIONS') {
        ctx.set('Access-Control-Allow-Headers', 'authorization, dpop');
        ctx.set('Access-Control-Allow-Methods', 'GET');
        ctx.status = 204;
        return;
      }
    }
    if (ctx.path === '/__test/api-redirect') {
      // An API that redirects: a client must not follow it with the token on its own.
      ctx.status = 302;
      ctx.set('Location', `${issuer}/__test/api`);
      return;
    }
    const auth = ctx.get('authorization') || '';
    const [scheme, token] = auth.split(' ', 2);
    const found = token ? await provider.AccessToken.find(token) : undefined;
    const refuse = (error, challenge = found?.jkt ? 'DPoP' : 'Bearer') => {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', `${challenge} error="${error}"`);
      ctx.body = { error };
    };
    if (!found || found.isExpired) return refuse('invalid_token');
    if (found.jkt) {
      // A DPoP-bound token: only with the DPoP scheme and a proof of the bound key.
      if (scheme !== 'DPoP') return refuse('invalid_token', 'DPoP');
      const problem = await checkApiProof(ctx, token, found.jkt);
      if (problem === 'use_dpop_nonce') {
        ctx.set('DPoP-Nonce', apiNonce);
        return refuse('use_dpop_nonce', 'DPoP');
      }
      if (problem) {
        stats.apiProofErrors = [...(stats.apiProofErrors || []), problem];
        return refuse('invalid_dpop_proof', 'DPoP');
      }
    } else if (scheme !== 'Bearer') {
      return refuse('invalid_token');
    }
    ctx.body = {
      sub: found.accountId, scope: found.scope, dpop: Boolean(found.jkt), message: 'hello from the protected API',
    };
    return;
  }
  if (env.IDP_AUTO_APPROVE === '1' && ctx.method === 'GET' && ctx.path.startsWith('/interaction/')) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (details.prompt.name === 'login') {
      const acr = details.params.acr_values ? { acr: details.params.acr_values.split(' ')[0] } : {};
      result = { login: { accountId: details.params.login_hint || 'alice', ...acr } };
    } else {
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.redirect(to);
    return;
  }
  const isToken = ctx.path === '/token' && ctx.method === 'POST';
  try {
    if (!(await applyFault(ctx, next))) await next();
  } finally {
    if (isToken) {
      const grant = ctx.oidc?.params?.grant_type || 'unknown';
      stats.token[grant] = (stats.token[grant] || 0) + 1;
      if (ctx.status >= 400) {
        const code = ctx.body?.error || String(ctx.status);
        stats.tokenErrors[code] = (stats.tokenErrors[code] || 0) + 1;
      }
    }
    if (ctx.path === '/token/revocation') stats.revocation += 1;
    if (ctx.path === '/token/introspection') stats.introspection += 1;
    if (ctx.path === '/device/auth') stats.deviceAuthorization += 1;
    if (ctx.path === '/.well-known/openid-configuration' && ctx.method === 'GET') stats.discovery += 1;
    if (ctx.path === '/jwks' && ctx.method === 'GET') stats.jwks += 1;
  }
});

server.on('request', provider.callback());
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop); // the harness's end of the pipe closing means it is gone
process.stdin.resume();
// The leaf's public-key pin (base64 SHA-256 of its SPKI), for the pinning tests.
const spkiPin = crypto.createHash('sha256')
  .update(new crypto.X509Certificate(tls.cert).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');
console.log(JSON.stringify({ issuer, port, ca: tls.ca, stateDir, spkiPin }));
