// The floor of a start that reads an encrypted IndexedDB store, for tests/web/bench.mjs: no
// library, only what any such start must do, as SessionKit's store does it (store/web.js): open
// a database, read its records and its non-extractable AES-GCM key in one transaction, decrypt
// the records. With `?beside-module`, the shipped .wasm is fetched and compiled meanwhile, as
// on a SessionKit start (both share this machine's cores). The first load writes the database
// (a key and two records of the sizes a signed-in SessionKit store holds), and reports nothing.
// window.benchResult: { scriptStart, readAt, compiledAt } (performance.now()) or { error };
// then the page logs "bench:ready", as the other bench pages.
const scriptStart = performance.now();
const DB = 'bench-store-floor';
const RECORD_SIZES = [1298, 2507];
const request = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
const complete = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = () => no(tx.error); tx.onabort = () => no(tx.error); });

try {
  const compiled = new URLSearchParams(location.search).has('beside-module')
    ? WebAssembly.compileStreaming(fetch('./pkg/sessionkit_wasm_bg.wasm')).then(() => performance.now())
    : null;
  const opening = indexedDB.open(DB, 1);
  opening.onupgradeneeded = () => {
    opening.result.createObjectStore('records');
    opening.result.createObjectStore('keys');
  };
  const db = await request(opening);
  const tx = db.transaction(['records', 'keys'], 'readonly');
  const records = tx.objectStore('records');
  const [slots, sealed, key] = await Promise.all([
    request(records.getAllKeys()), request(records.getAll()), request(tx.objectStore('keys').get('aes-gcm-256')),
  ]);
  await complete(tx);
  if (!key) {
    await writeStore(db);
    window.benchResult = { written: true };
  } else {
    const opened = await Promise.all(sealed.map((value, i) => crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: value.subarray(0, 12), additionalData: new TextEncoder().encode(slots[i]) },
      key, value.subarray(12))));
    if (opened.length !== RECORD_SIZES.length) throw new Error(`read ${opened.length} records`);
    const readAt = performance.now();
    window.benchResult = { scriptStart, readAt, compiledAt: compiled ? await compiled : null };
  }
  db.close();
} catch (error) {
  window.benchResult = { error: `${error.name}: ${error.message}` };
}
console.debug('bench:ready');

async function writeStore(db) {
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const values = await Promise.all(RECORD_SIZES.map(async (size, i) => {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const plaintext = crypto.getRandomValues(new Uint8Array(size - 12 - 16));
    const aad = new TextEncoder().encode(`slot-${i}`);
    const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, plaintext));
    const value = new Uint8Array(size);
    value.set(iv);
    value.set(ciphertext, 12);
    return value;
  }));
  const tx = db.transaction(['records', 'keys'], 'readwrite');
  tx.objectStore('keys').put(key, 'aes-gcm-256');
  values.forEach((value, i) => tx.objectStore('records').put(value, `slot-${i}`));
  await complete(tx);
}
