// The example app: sign in, call a protected API, watch the session's time, sign out.
// Settings come from /config.json (written by serve.mjs for the local provider).
import { Accounts, SessionKit, ReauthenticationRequiredError } from '@sessionkit/web';

const $ = (id) => document.getElementById(id);
const events = [];

let warning = null; // { reason, until } from the last "expiringSoon" event

/** "7 h 59 min", "4 min 05 s", "13 s". */
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

function show(kit) {
  const status = kit.status();
  $('signed-in').hidden = !status;
  $('signed-out').hidden = Boolean(status);
  $('state').dataset.state = status ? 'signed-in' : 'signed-out';
  $('state').textContent = status ? 'Signed in.' : 'Signed out.';
  // The warning stays up until its deadline passes or activity moved the idle deadline on.
  const warned = status && warning && Date.now() < warning.until
    && (warning.reason === 'absolute' || status.idleDeadline <= warning.until + 1000);
  $('warning').hidden = !warned;
  if (warned) {
    $('warning').textContent = `Your session ends in ${duration(warning.until - Date.now())} (${warning.reason}). `
      + (warning.reason === 'idle' ? 'Click, scroll or press a key to stay signed in.' : 'Sign in again soon.');
  }
  if (!status) return;
  $('subject').textContent = status.subject;
  $('idle-left').textContent = duration(status.idleDeadline - Date.now());
  $('absolute-left').textContent = duration(status.absoluteDeadline - Date.now());
  $('refresh-left').textContent = duration(status.refreshDueAt - Date.now());
}

function log(event) {
  events.push(event);
  window.sessionEvents = events; // for the end-to-end tests
  $('events').textContent = events.map((e) => JSON.stringify(e)).join('\n');
}

async function main() {
  const config = await (await fetch('/config.json')).json();
  const settings = { ...config, redirectUri: `${location.origin}/`, postLogoutRedirectUri: `${location.origin}/?logged-out` };
  const kit = await SessionKit.create(settings);
  window.sessionKit = kit; // for the end-to-end tests
  window.sessionKitAccounts = () => Accounts.create({ ...settings, trackActivity: false }); // likewise
  kit.onEvent((event) => {
    log(event);
    if (event.type === 'expiringSoon') warning = { reason: event.reason, until: Date.now() + event.timeLeftMs };
    show(kit);
  });
  if (kit.isRedirectCallback()) {
    try {
      await kit.handleRedirectCallback();
    } catch (error) {
      $('api').textContent = `${error.name}: ${error.message}`;
    }
  }
  $('login').onclick = () => kit.login({ prompt: 'consent' });
  $('logout').onclick = async () => {
    // Nothing of the session may outlive it: the service worker's caches go too (they hold only
    // the app shell, but an app's own additions could hold a user's data).
    const endSession = await kit.logout({ redirect: false });
    if ('caches' in window) await Promise.all((await caches.keys()).map((name) => caches.delete(name)));
    if (endSession) window.location.assign(endSession);
  };
  $('call').onclick = async () => {
    try {
      const response = await kit.fetch(config.apiUrl);
      $('api').textContent = `${response.status} ${await response.text()}`;
    } catch (error) {
      $('api').textContent = `${error.name}: ${error.message}`;
      if (error instanceof ReauthenticationRequiredError) show(kit);
    }
  };
  show(kit);
  setInterval(() => show(kit), 1000);
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
}

// A start that failed (the network, say) can be tried again without reloading the page.
function start() {
  $('retry').hidden = true;
  $('state').dataset.state = 'loading';
  main().catch((error) => {
    $('state').dataset.state = 'error';
    $('state').textContent = `Could not start: ${error.name}: ${error.message}`;
    $('retry').hidden = false;
  });
}
$('retry').onclick = start;
start();
