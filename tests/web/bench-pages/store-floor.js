// The floor of a start that reads an encrypted IndexedDB store, for tests/web/bench.mjs: no
// library, only what any such start must do, as SessionKit's store does it (`readAll` in
// crates/sessionkit/src/store/web.js): open a database, read its records and its
// non-extractable AES-GCM key in one transaction, decrypt the records one after the other and
// decode them as UTF-8. With `?beside-module`, the shipped .wasm is then fetched and compiled
// meanwhile, in the order SessionKit's start begins them (its early read first), sharing this
// machine's cores. Left out, as small beside these: the tabs' BroadcastChannel SessionKit opens
// before its read, and the JSON of the records. The first load writes the database (a key and
// two records of the sizes a signed-in SessionKit store held in this bench on 2026-12-06: the
// session record and the provider's documents) and reports only that.
// window.benchResult: { scriptStart, readAt, compiledAt } (performance.now()), { written } or
// { error }; then the page logs "bench:ready", as the other bench pages.
const scriptStart = performance.now();
const DB = 'bench-store-floor';
const RECORD_SIZES = [1298, 2507];
const request = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
const complete = (tx) => new Promise((ok, no) => { tx.oncomplete = ok; tx.onerror = () => no(tx.error); tx.onabort = () => no(tx.error); });

try {
  const opening = indexedDB.open(DB, 1);
  opening.onupgradeneeded = () => {
    opening.result.createObjectStore('records');
    opening.result.createObjectStore('keys');
  };
  const compiled = new URLSearchParams(location.search).has('beside-module')
    ? WebAssembly.compileStreaming(fetch('./pkg/sessionkit_wasm_bg.wasm')).then(() => performance.now())
    : null;
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
    const opened = [];
    for (let i = 0; i < sealed.length; i += 1) {
      const plaintext = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: sealed[i].subarray(0, 12), additionalData: new TextEncoder().encode(slots[i]) },
        key, sealed[i].subarray(12));
      opened.push(new TextDecoder().decode(plaintext));
    }
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
    const plaintext = new TextEncoder().encode('x'.repeat(size - 12 - 16));
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
