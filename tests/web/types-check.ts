// Compiled (not run) by `npx tsc -p .` in scripts/web-test: the package's TypeScript types
// describe its API, and misuse is a type error (each @ts-expect-error must find one).
import {
  Accounts,
  InvalidInputError,
  ReauthenticationRequiredError,
  RetryLaterError,
  SessionKit,
  SessionKitError,
  type EndReason,
  type SessionEvent,
  type SessionStatus,
} from '../../bindings/sessionkit-wasm/js/index.js';

export async function example(): Promise<void> {
  const session: SessionKit = await SessionKit.create({
    issuer: 'https://login.example.com',
    clientId: 'spa',
    redirectUri: 'https://app.example.com/',
    scopes: ['offline_access'],
    idleTimeoutSeconds: 900,
    apiOrigins: ['https://api.example.com'],
  });
  if (session.isRedirectCallback()) await session.handleRedirectCallback();
  const url: string = await session.login({ prompt: 'consent', navigate: false });
  const token: string = await session.getAccessToken();
  const hot: string = session.freshAccessToken() ?? (await session.getAccessToken());
  // @ts-expect-error: the synchronous read may give nothing
  const unchecked: string = session.freshAccessToken();
  const response: Response = await session.fetch('https://api.example.com/me', { method: 'GET' });
  const headers = await session.authHeaders('POST', new URL('https://api.example.com/orders'));
  const authorization: string = headers.Authorization;
  const proof: string | undefined = headers.DPoP;
  const kind: 'DPoP' | 'Bearer' | null = session.tokenType();
  // @ts-expect-error: only the three DPoP policies
  void SessionKit.create({ issuer: 'https://x', clientId: 'c', redirectUri: 'https://a/', dpop: 'sometimes' });
  void [authorization, proof, kind];
  const status: SessionStatus | null = session.status();
  const stop: () => void = session.onEvent((event: SessionEvent) => {
    if (event.type === 'expiringSoon') {
      const left: number = event.timeLeftMs;
      const why: 'idle' | 'absolute' = event.reason;
      void [left, why];
    }
    if (event.type === 'expired') {
      const reason: EndReason = event.reason;
      // @ts-expect-error: reasons are a closed union, not any string
      const typo: EndReason = 'idle-timeout';
      void [reason, typo];
    }
    if (event.type === 'anomaly' && event.anomaly === 'clockJumpedBack') {
      const by: number | undefined = event.byMs;
      const id: string | null = event.sessionId;
      void [by, id];
    }
  });
  try {
    await session.logout({ redirect: false });
  } catch (error) {
    if (error instanceof RetryLaterError) {
      const wait: number | undefined = error.retryAfterMs;
      void wait;
    }
    const known = error instanceof ReauthenticationRequiredError || error instanceof InvalidInputError;
    const base: boolean = error instanceof SessionKitError && error instanceof Error;
    void [known, base];
  }
  void [url, token, response, status, stop];

  const accounts: Accounts = await Accounts.create({ issuer: 'https://x', clientId: 'c', redirectUri: 'https://a/' });
  const work: SessionKit = await accounts.open('work');
  const personal: SessionKit = await accounts.switchTo('personal');
  const names: string[] = await accounts.names();
  const current: string | null = await accounts.current();
  const end: string | null = await accounts.remove('work', { redirect: false });
  void [work, personal, names, current, end];

  // @ts-expect-error: clientId is required
  await SessionKit.create({ issuer: 'https://login.example.com', redirectUri: 'https://app.example.com/' });
  // @ts-expect-error: timeouts are numbers of seconds
  await SessionKit.create({ issuer: 'x', clientId: 'y', redirectUri: 'z', idleTimeoutSeconds: '15m' });
  // @ts-expect-error: there is no such event
  session.onEvent((event: SessionEvent) => event.type === 'tokenStolen');
  // @ts-expect-error: the constructor is private; use SessionKit.create
  new SessionKit();
}
