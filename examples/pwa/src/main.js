// The example app: sign in, call a protected API, watch the session's time, sign out.
// Settings come from /config.json (written by serve.mjs for the local provider).
import { SessionKit, ReauthenticationRequiredError } from '@sessionkit/web';

const $ = (id) => document.getElementById(id);
const events = [];

function show(kit) {
  const status = kit.status();
  $('signed-in').hidden = !status;
  $('signed-out').hidden = Boolean(status);
  $('state').dataset.state = status ? 'signed-in' : 'signed-out';
  $('state').textContent = status ? 'Signed in.' : 'Signed out.';
  if (!status) return;
  const left = (deadline) => `${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s`;
  $('subject').textContent = status.subject;
  $('idle-left').textContent = left(status.idleDeadline);
  $('absolute-left').textContent = left(status.absoluteDeadline);
  $('refresh-left').textContent = left(status.refreshDueAt);
}

function log(event) {
  events.push(event);
  window.sessionEvents = events; // for the end-to-end tests
  $('events').textContent = events.map((e) => JSON.stringify(e)).join('\n');
}

async function main() {
  const config = await (await fetch('/config.json')).json();
  const kit = await SessionKit.create({ ...config, redirectUri: `${location.origin}/`,
    postLogoutRedirectUri: `${location.origin}/?logged-out` });
  window.sessionKit = kit; // for the end-to-end tests
  kit.onEvent((event) => {
    log(event);
    if (event.type === 'expiringSoon') {
      $('warning').hidden = false;
      $('warning').textContent = `Your session ends in ${Math.round(event.timeLeftMs / 1000)} s (${event.reason}). `
        + 'Move the mouse or press a key to stay signed in.';
    } else if (event.type !== 'other') {
      $('warning').hidden = true;
    }
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
  $('logout').onclick = () => kit.logout();
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

main().catch((error) => {
  $('state').dataset.state = 'error';
  $('state').textContent = `Could not start: ${error.name}: ${error.message}`;
});
