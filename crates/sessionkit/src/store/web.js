// Browser primitives for the web store, the cross-tab lock and DPoP keys (see web.rs, lock.rs and
// dpop/web.rs): IndexedDB, WebCrypto AES-GCM and ECDSA, and Web Locks, each as one small
// promise-returning function. What to store, under which key, and when, is decided in Rust. The
// state kept between calls: the open database connections, a cache of DPoP CryptoKey objects
// (handles, not key bytes), each connection's database key (a handle, read once per connection,
// and once more if a record does not open under it), the page's one persistence request, the
// store's early first read (`readEarly`, held for 5 s at most: it holds the records' plaintexts)
// with the count of writes it is checked against, and the tabs' channels opened before a store's
// first read (`watchTabs`) until a session takes one over (5 s at most as well).

const DB_VERSION = 1;
const RECORDS = 'records';
const KEYS = 'keys';
const KEY_ID = 'aes-gcm-256';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// How long an open may take before it is given up (the call fails as a store error the session
// retries): an open queued behind a deletion that another context blocks would otherwise never
// settle, and every later call would wait on it.
let openTimeoutMs = 10_000;

// For the store's tests only (an open that hangs on purpose must fail within a test's time).
export function setOpenTimeoutForTests(ms) {
  openTimeoutMs = ms;
}

function openDb(name) {
  const req = indexedDB.open(name, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains(RECORDS)) db.createObjectStore(RECORDS);
    if (!db.objectStoreNames.contains(KEYS)) db.createObjectStore(KEYS);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Opened after all: nobody waits for it any more.
      req.onsuccess = () => req.result.close();
      req.onerror = null;
      reject(new DOMException(`IndexedDB did not open within ${openTimeoutMs / 1000} s`, 'TimeoutError'));
    }, openTimeoutMs);
    req.onsuccess = () => {
      clearTimeout(timer);
      resolve(req.result);
    };
    req.onerror = () => {
      clearTimeout(timer);
      reject(req.error);
    };
  });
}

// One connection per database, reused (opening one costs 0.2-0.5 ms, three times per refresh).
// It is forgotten, so that the next call opens the database afresh, as soon as it is no longer
// good: the browser closed it (the user or the browser cleared the storage), another context
// deletes the database (`versionchange`: closed at once, so that the deletion is not blocked),
// or a transaction cannot start on it.
const connections = new Map();
// Per open connection: how to forget it (for a transaction that aborts because the browser lost
// the database) and the database key read on it. The key cannot change while the connection is
// open: it is created once and never replaced, and it goes only with the database, whose
// deletion closes this connection first (`versionchange`); a new connection reads it afresh.
const forgetters = new WeakMap();
const databaseKeys = new WeakMap();
// Connections whose kept key was checked against a record that did not open (see `readAll`).
const keyChecked = new WeakSet();

function connection(name) {
  let pending = connections.get(name);
  if (!pending) {
    const forget = () => {
      if (connections.get(name) === pending) connections.delete(name);
      // DPoP keys cached from a database that is gone (deleted by a logout in another tab, or
      // cleared) are not used again: the next signature reads the database afresh.
      signingKeys.clear();
    };
    pending = openDb(name).then((db) => {
      db.onversionchange = () => {
        forget();
        db.close();
      };
      db.onclose = forget;
      forgetters.set(db, forget);
      return db;
    }, (error) => {
      forget();
      throw error;
    });
    connections.set(name, pending);
  }
  return pending;
}

async function transaction(name, mode, stores) {
  const pending = connection(name);
  const db = await pending;
  try {
    return db.transaction(stores, mode);
  } catch (error) {
    if (!error || error.name !== 'InvalidStateError') throw error;
    // Closed meanwhile, its close event not yet delivered: once more on a fresh connection.
    forgetters.get(db)?.();
    db.close();
    return (await connection(name)).transaction(stores, mode);
  }
}

// Runs `body` in `tx` and resolves with its result once the transaction has committed; rejects
// with the request's or the transaction's error otherwise.
async function settle(tx, body) {
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = (event) => reject(event.target.error || tx.error);
    tx.onabort = () => {
      // The browser lost the database (its files, or the storage service): this connection is
      // done, the next call opens a fresh one.
      if (tx.error && tx.error.name === 'UnknownError') {
        forgetters.get(tx.db)?.();
        tx.db.close();
      }
      reject(tx.error || new DOMException('aborted', 'AbortError'));
    };
  });
  const [result] = await Promise.all([body(tx), done]);
  return result;
}

async function withDb(name, mode, stores, body) {
  return settle(await transaction(name, mode, stores), body);
}

const getKey = (tx) => request(tx.objectStore(KEYS).get(KEY_ID));

// The database's AES-GCM key on `db`, created on first use as non-extractable: script can use it
// but never read it. `add` fails if another tab created one first; then that one is used.
async function databaseKey(db, existing) {
  let key = existing;
  if (!key) {
    const made = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    try {
      await settle(db.transaction([KEYS], 'readwrite'), (tx) => request(tx.objectStore(KEYS).add(made, KEY_ID)));
      key = made;
    } catch (error) {
      key = await settle(db.transaction([KEYS], 'readonly'), getKey);
      if (!key) throw error; // not "another tab was first": the write's own failure
    }
  }
  databaseKeys.set(db, key);
  return key;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// Seals `plaintext` under the database key with a fresh 96-bit IV; `aad` (the record's name)
// binds the ciphertext to its slot, so records cannot be swapped. Stored: IV || ciphertext.
// The key and the write come from one connection, never retried on another: if the database is
// deleted or cleared in between (its connections close), the write fails instead of landing in
// a new database that lacks the key, where the record could never be opened; the session then
// writes again later, after reading what the store holds now.
export function sealAndPut(name, slot, plaintext) {
  return counted(() => sealAndPutOnce(name, slot, plaintext));
}

async function sealAndPutOnce(name, slot, plaintext) {
  const db = await connection(name);
  try {
    await sealAndPutOn(db, slot, plaintext);
  } catch (error) {
    // Closed, its close event not yet delivered: the next call opens afresh.
    if (error && error.name === 'InvalidStateError') {
      forgetters.get(db)?.();
      db.close();
    }
    throw error;
  }
}

async function sealAndPutOn(db, slot, plaintext) {
  // The key as read on this connection (by loadAll or an earlier write), else read now.
  const key = databaseKeys.get(db) || await databaseKey(db, await settle(db.transaction([KEYS], 'readonly'), getKey));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: encoder.encode(slot) }, key, encoder.encode(plaintext));
  const value = new Uint8Array(12 + sealed.byteLength);
  value.set(iv, 0);
  value.set(new Uint8Array(sealed), 12);
  await settle(db.transaction([RECORDS], 'readwrite'), (tx) => request(tx.objectStore(RECORDS).put(value, slot)));
}

export function remove(name, slot) {
  return counted(() => withDb(name, 'readwrite', [RECORDS], (tx) => request(tx.objectStore(RECORDS).delete(slot))));
}

// Every record, opened: [[slot, plaintext | null], ...]. null marks a record that does not open
// under the current key (a key lost to eviction, or tampering); the caller decides what to do.
export function loadAll(name) {
  return readAll(name);
}

// The same, for a store's open only: [records, watcher]. It may take the read the package
// started early (`readEarly`), while the WebAssembly module was loading. A store already open
// never does: its reloads must see what IndexedDB holds now (a token another tab rotated).
// `watcher` (0 if the browser has no BroadcastChannel) names the tabs' channel of the database,
// listened to since before the read began: what the other tabs said after that point is kept
// for the session that takes the channel over (`adoptWatcher`), so that it needs no second read
// to catch a change it could have missed.
export async function loadFirst(name) {
  const early = takeEarlyRead(name);
  const watcher = early ? early.watcher : watchTabs(name);
  try {
    if (early) {
      try {
        return [await early.pending, watcher];
      } catch (error) {
        // An open that timed out is reported, not waited for a second time; other failures
        // (say, the database deleted meanwhile) are left to a read of the store's own.
        if (error && error.name === 'TimeoutError') throw error;
      }
    }
    return [await readAll(name), watcher];
  } catch (error) {
    dropWatcher(watcher);
    throw error;
  }
}

// The channel on which the tabs sharing the database `name` say what changed (tabs.rs): one per
// database, each message naming its session (`{ kind, key }`).
export function openTabsChannel(name) {
  return new BroadcastChannel(`sessionkit-tabs|${name}`);
}

// Tabs' channels opened before a store's first read, by id, with what they heard since: at most
// `MAX_HEARD` messages (more count as a change, as if one of them said so). Each is kept for the
// early read's age at most (a start takes it over within milliseconds; a store whose first
// session opens later, as an account opened on demand, has that session read again instead).
const watchers = new Map();
let lastWatcher = 0;
const MAX_HEARD = 64;

function watchTabs(name) {
  let channel;
  try {
    channel = openTabsChannel(name);
  } catch (_) {
    return 0; // no BroadcastChannel here: the session reads the store again instead
  }
  const id = ++lastWatcher;
  const watcher = { channel, heard: [], overflow: false, at: performance.now() };
  channel.onmessage = (event) => {
    if (watcher.heard.length < MAX_HEARD) watcher.heard.push(event.data);
    else watcher.overflow = true;
  };
  watcher.expiry = setTimeout(() => dropWatcher(id), earlyReadMaxAgeMs);
  watchers.set(id, watcher);
  return id;
}

// Hands the channel of `id` over to the session `key` (once): [channel, changed, active], where
// `changed` says another tab announced a change of that session (or too many messages came to
// tell) and `active` that it saw its user active, since before the store's first read.
// Undefined if the channel was taken, dropped or is past its age (by the clock: its timer may
// not have run). Messages from the handover on are the caller's.
export function adoptWatcher(id, key) {
  const watcher = watchers.get(id);
  if (!watcher || performance.now() - watcher.at > earlyReadMaxAgeMs) {
    dropWatcher(id);
    return undefined;
  }
  watchers.delete(id);
  clearTimeout(watcher.expiry);
  watcher.channel.onmessage = null;
  const said = (kind) => watcher.heard.some((message) => message && message.kind === kind && message.key === key);
  return [watcher.channel, watcher.overflow || said('changed'), said('activity')];
}

// Closes the channel of `id` if no session took it (a store dropped, an early read unused, or
// its age reached).
export function dropWatcher(id) {
  const watcher = watchers.get(id);
  if (!watcher) return;
  watchers.delete(id);
  clearTimeout(watcher.expiry);
  watcher.channel.close();
}

// The early read: started by the package's `create` before the module is loaded, so that
// opening and reading IndexedDB overlaps the download and compile. It serves the next store
// open of that database only, within `earlyReadMaxAgeMs`, and only if this page had no write
// under way when it started and began none since (a write it could have missed); otherwise it
// is dropped, with the plaintexts it holds, and the store reads afresh. Its tabs' channel is
// opened before the read begins (`watchTabs`), and handed to the store with the read.
const earlyReads = new Map();
let earlyReadMaxAgeMs = 5000;
let writesBegun = 0;
let writesUnderWay = 0;

export function readEarly(name) {
  if (earlyReads.has(name)) return;
  const watcher = watchTabs(name);
  const read = {
    watcher,
    pending: readAll(name),
    at: performance.now(),
    writes: writesBegun,
    clean: writesUnderWay === 0,
  };
  read.pending.catch(() => {}); // nobody may take it
  read.expiry = setTimeout(() => dropEarlyRead(name, read), earlyReadMaxAgeMs);
  earlyReads.set(name, read);
}

// Drops the early read of `name` (the one given, if any): a `create` that failed before its
// store opened, or the expiry.
export function dropEarlyRead(name, read = earlyReads.get(name)) {
  if (!read || earlyReads.get(name) !== read) return;
  earlyReads.delete(name);
  clearTimeout(read.expiry);
  dropWatcher(read.watcher);
}

// The early read of `name` with its channel, if it may serve; taken out of the page's early
// reads either way (one that may not serve is dropped, its channel closed).
function takeEarlyRead(name) {
  const read = earlyReads.get(name);
  if (!read) return null;
  const fresh = performance.now() - read.at <= earlyReadMaxAgeMs;
  if (!(fresh && read.clean && read.writes === writesBegun)) {
    dropEarlyRead(name, read);
    return null;
  }
  earlyReads.delete(name);
  clearTimeout(read.expiry);
  return read;
}

// For the store's tests only.
export function setEarlyReadMaxAgeForTests(ms) {
  earlyReadMaxAgeMs = ms;
}

// Counts a write from its start to its end, for the early read's checks.
async function counted(write) {
  writesBegun += 1;
  writesUnderWay += 1;
  try {
    return await write();
  } finally {
    writesUnderWay -= 1;
  }
}

async function readAll(name, keyReadAgain = false) {
  let db;
  let known;
  const [slots, values, key] = await withDb(name, 'readonly', [RECORDS, KEYS], async (tx) => {
    db = tx.db;
    const store = tx.objectStore(RECORDS);
    // The key as read before on this connection (it cannot change while the connection is open).
    known = keyReadAgain ? undefined : databaseKeys.get(db);
    const read = await Promise.all([request(store.getAllKeys()), request(store.getAll()), known || getKey(tx)]);
    if (read[2]) databaseKeys.set(db, read[2]);
    return read;
  });
  const out = [];
  let unopened = 0;
  for (let i = 0; i < slots.length; i += 1) {
    let plaintext = null;
    const value = values[i];
    if (key && value instanceof Uint8Array && value.length > 12) {
      try {
        const opened = await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: value.subarray(0, 12), additionalData: encoder.encode(String(slots[i])) },
          key, value.subarray(12));
        plaintext = decoder.decode(opened);
      } catch (_) {
        plaintext = null;
      }
    }
    if (plaintext === null) unopened += 1;
    out.push([String(slots[i]), plaintext]);
  }
  // A record that does not open under the key kept for this connection: once more with the key
  // read in the same transaction as the records, should the kept one ever be out of date; once
  // per connection (a record that never opens, altered say, does not cost every read twice).
  if (known && unopened > 0 && !keyChecked.has(db)) {
    keyChecked.add(db);
    databaseKeys.delete(db);
    return readAll(name, true);
  }
  return out;
}

// DPoP keys (RFC 9449): ECDSA P-256 pairs made non-extractable, so script can sign with the private
// key but never read it; IndexedDB keeps the CryptoKey object itself (structured clone), shared by
// the origin's tabs. Signatures come out as r || s, the form JWS wants.
const signingKeys = new Map();
const dpopSlot = (id) => `dpop:${id}`;

export async function createSigningKey(name, id) {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  await withDb(name, 'readwrite', [KEYS], (tx) => request(tx.objectStore(KEYS).put(pair.privateKey, dpopSlot(id))));
  signingKeys.set(id, pair.privateKey);
  return [jwk.x, jwk.y];
}

export async function signWithKey(name, id, data) {
  let key = signingKeys.get(id);
  if (!key) {
    key = await withDb(name, 'readonly', [KEYS], (tx) => request(tx.objectStore(KEYS).get(dpopSlot(id))));
    if (!key) return null; // gone (the origin's storage was cleared): the session cannot go on
    signingKeys.set(id, key);
  }
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, data));
}

export async function deleteSigningKey(name, id) {
  signingKeys.delete(id);
  await withDb(name, 'readwrite', [KEYS], (tx) => request(tx.objectStore(KEYS).delete(dpopSlot(id))));
}

// Asks the browser not to evict this origin's storage under pressure, unless it already agreed
// (Firefox asks the user, so only once), once per page however many stores open. Resolves to
// whether it agreed; never rejects (some browsers decide silently, or lack the API).
let persistence;
// For the store's tests only (the next store asks afresh).
export function forgetPersistenceForTests() {
  persistence = undefined;
}
export function requestPersistence() {
  persistence ??= (async () => {
    try {
      if (await navigator.storage?.persisted?.()) return true;
      return Boolean(await navigator.storage?.persist?.());
    } catch (_) {
      return false;
    }
  })();
  return persistence;
}

// Takes the Web Lock `lockName`, waiting at most `timeoutMs`. Resolves to a function that
// releases it. The browser releases it by itself when the tab closes or crashes.
export function acquireLock(lockName, timeoutMs) {
  return new Promise((resolve, reject) => {
    if (!navigator.locks) {
      reject(new Error('Web Locks are not available'));
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    navigator.locks.request(lockName, { signal: controller.signal }, () => {
      clearTimeout(timer);
      return new Promise((release) => resolve(release));
    }).catch((error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
