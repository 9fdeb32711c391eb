// The app shell's service worker: caches the shell (the page, its script, the wasm, the icon and
// the manifest) for an offline start-up, and nothing else. Responses to other same-origin
// requests (an API that takes the token) are never cached: they could hold a user's data and
// would outlive logout. The page clears every cache at logout too (src/main.js).
const CACHE = 'sessionkit-pwa-v2';
// The shell: the page and the hashed files the build puts under /assets/.
const isShell = (url) => url.pathname === '/' || url.pathname === '/index.html' || url.pathname.startsWith('/assets/')
  || url.pathname === '/icon.svg' || url.pathname === '/manifest.webmanifest';

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(['/'])).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  // Older caches (an older shell, or one that held more than the shell) go.
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const request = event.request;
  if (url.origin !== self.location.origin || request.method !== 'GET' || !isShell(url)
    || request.headers.has('authorization')) return;
  // Network first (fresh code), the cache when offline.
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && !url.search) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(request, copy));
        }
        return response;
      })
      .catch(() => caches.match(request, { ignoreSearch: true })),
  );
});
