//! The browser store and the Web Lock in headless Chromium (wasm-bindgen-test):
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p sessionkit --target wasm32-unknown-unknown --lib`.

use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

use super::*;

wasm_bindgen_test_configure!(run_in_browser);

// Raw IndexedDB access, to look at what the store really wrote.
#[wasm_bindgen(inline_js = r#"
function req(r) { return new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); }); }
async function withStore(db, name, mode, body) {
  const conn = await req(indexedDB.open(db));
  try { const tx = conn.transaction(name, mode); const out = await body(tx.objectStore(name)); return out; }
  finally { conn.close(); }
}
export function rawRecord(db, slot) { return withStore(db, 'records', 'readonly', (s) => req(s.get(slot))); }
export function writeRaw(db, slot, value) { return withStore(db, 'records', 'readwrite', (s) => req(s.put(value, slot))); }
export async function keyFacts(db) {
  const key = await withStore(db, 'keys', 'readonly', (s) => req(s.get('aes-gcm-256')));
  const exportable = await crypto.subtle.exportKey('raw', key).then(() => true, () => false);
  return [key.extractable, exportable, key.algorithm.name, key.algorithm.length];
}
export function deleteDb(db) { return req(indexedDB.deleteDatabase(db)); }
// A connection that ignores `versionchange`, as a stuck tab's would: a deletion waits on it.
export function holdOpen(db) { return req(indexedDB.open(db)); }
// Resolves once the deletion is blocked (every other connection was told, the stuck one stayed),
// to { done }: the deletion's own completion.
export function startDeletion(db) {
  const r = indexedDB.deleteDatabase(db);
  const done = req(r);
  return new Promise((ok) => { r.onblocked = () => ok({ done }); });
}
// Another tab's message on the tabs' channel of `db`: resolves once a channel opened after the
// store's has it too (the browser delivers to a name's channels in the order they were opened).
export async function sayFromAnotherTab(db, kind, key) {
  const name = `sessionkit-tabs|${db}`;
  const probe = new BroadcastChannel(name);
  const heard = new Promise((ok) => { probe.onmessage = ok; });
  const other = new BroadcastChannel(name);
  other.postMessage({ kind, key });
  await heard;
  probe.close();
  other.close();
}
// Replaces the database key behind the store's back (which the store never does: a key, once
// made, stays for the database's life) and seals `plaintext` in `slot` under the new one.
export async function replaceKeyAndSeal(db, slot, plaintext) {
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const enc = new TextEncoder();
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode(slot) }, key, enc.encode(plaintext)));
  const value = new Uint8Array(12 + sealed.length);
  value.set(iv, 0);
  value.set(sealed, 12);
  await withStore(db, 'keys', 'readwrite', (s) => req(s.put(key, 'aes-gcm-256')));
  await withStore(db, 'records', 'readwrite', (s) => req(s.put(value, slot)));
}
export function uniqueName(prefix) { return prefix + '-' + crypto.randomUUID(); }
export function pause(ms) { return new Promise((ok) => setTimeout(ok, ms)); }
// Keeps the page busy (no timer can run meanwhile), as a throttled background tab's would be.
export function busyWait(ms) { const end = performance.now() + ms; while (performance.now() < end) {} }
// Makes the browser's persistence answer wait (it answers true by itself 3 s after it is asked).
// Returns { asked, answer }: `asked` settles when the store asks (rejects if it has not within
// 5 s); `answer()` answers at once and puts the browser's own method back.
export function holdPersistenceAnswer() {
  const original = StorageManager.prototype.persisted;
  let answer = () => {};
  let wasAsked;
  const asked = new Promise((ok, no) => {
    wasAsked = ok;
    setTimeout(() => no(new Error('the store did not ask for persistence within 5 s')), 5000);
  });
  StorageManager.prototype.persisted = () => new Promise((ok) => {
    answer = ok;
    wasAsked();
    setTimeout(() => ok(true), 3000);
  });
  return {
    asked,
    answer() {
      StorageManager.prototype.persisted = original;
      answer(true);
    },
  };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = rawRecord)]
    async fn raw_record(db: &str, slot: &str) -> JsValue;
    #[wasm_bindgen(js_name = writeRaw)]
    async fn write_raw(db: &str, slot: &str, value: JsValue) -> JsValue;
    #[wasm_bindgen(js_name = keyFacts)]
    async fn key_facts(db: &str) -> JsValue;
    #[wasm_bindgen(js_name = deleteDb)]
    pub(crate) async fn delete_db(db: &str) -> JsValue;
    #[wasm_bindgen(js_name = sayFromAnotherTab)]
    pub(crate) async fn say_from_another_tab(db: &str, kind: &str, key: &str);
    #[wasm_bindgen(js_name = replaceKeyAndSeal)]
    async fn replace_key_and_seal(db: &str, slot: &str, plaintext: &str);
    #[wasm_bindgen(js_name = uniqueName)]
    fn unique_name(prefix: &str) -> String;
    #[wasm_bindgen(js_name = holdOpen)]
    async fn hold_open(db: &str) -> JsValue;
    #[wasm_bindgen(js_name = startDeletion)]
    async fn start_deletion(db: &str) -> JsValue;
    async fn pause(ms: u32) -> JsValue;
    #[wasm_bindgen(js_name = busyWait)]
    fn busy_wait(ms: u32);
    #[wasm_bindgen(js_name = holdPersistenceAnswer)]
    fn hold_persistence_answer() -> PersistenceHold;
    type PersistenceHold;
    #[wasm_bindgen(method, getter)]
    fn asked(this: &PersistenceHold) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    fn answer(this: &PersistenceHold);
}

#[wasm_bindgen(module = "/src/store/web.js")]
extern "C" {
    #[wasm_bindgen(js_name = setOpenTimeoutForTests)]
    fn set_open_timeout_for_tests(ms: u32);
    #[wasm_bindgen(js_name = forgetPersistenceForTests)]
    fn forget_persistence_for_tests();
    #[wasm_bindgen(js_name = readEarly)]
    fn read_early(name: &str);
    #[wasm_bindgen(js_name = dropEarlyRead)]
    fn drop_early_read(name: &str);
    #[wasm_bindgen(js_name = setEarlyReadMaxAgeForTests)]
    fn set_early_read_max_age_for_tests(ms: u32);
    /// The store's own write, started at once (the promise settles when it landed).
    #[wasm_bindgen(js_name = sealAndPut)]
    fn seal_and_put_now(name: &str, slot: &str, plaintext: &str) -> js_sys::Promise;
}

/// Closes the connection that blocked a deletion (`hold_open`), and waits for the deletion
/// (`start_deletion`) to complete.
async fn let_the_deletion_through(stuck: &JsValue, blocked: &JsValue) {
    js_sys::Reflect::get(stuck, &"close".into())
        .ok()
        .and_then(|close| close.dyn_into::<js_sys::Function>().ok())
        .expect("close")
        .call0(stuck)
        .expect("closed");
    let deletion = js_sys::Reflect::get(blocked, &"done".into()).expect("done");
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(deletion)).await.expect("deleted");
}

const PLAINTEXT: &str = "refresh-token-7f3a9c-plaintext-marker";

pub(crate) async fn store_with_record() -> (String, Arc<WebStore>) {
    let db = unique_name("sessionkit-test");
    let store = WebStore::open(&db).await.expect("IndexedDB opens");
    store.save("session", &Secret::new(PLAINTEXT.to_owned())).expect("saved");
    store.flushed().await;
    (db, store)
}

fn bytes(value: &JsValue) -> Vec<u8> {
    js_sys::Uint8Array::new(value).to_vec()
}

#[wasm_bindgen_test]
async fn records_survive_a_reopen_and_are_sealed_on_disk() {
    let (db, _store) = store_with_record().await;
    let reopened = WebStore::open(&db).await.expect("reopened");
    assert_eq!(reopened.load("session").expect("load").expect("present").expose(), PLAINTEXT);

    let raw = bytes(&raw_record(&db, "session").await);
    // 12-byte IV, the ciphertext, a 16-byte tag; and no trace of the plaintext.
    assert_eq!(raw.len(), 12 + PLAINTEXT.len() + 16);
    assert!(!raw.windows(8).any(|w| PLAINTEXT.as_bytes().windows(8).any(|p| p == w)), "plaintext on disk");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn the_key_cannot_be_read_by_script() {
    let (db, _store) = store_with_record().await;
    let facts = js_sys::Array::from(&key_facts(&db).await);
    assert_eq!(facts.get(0).as_bool(), Some(false), "extractable");
    assert_eq!(facts.get(1).as_bool(), Some(false), "exportKey succeeded");
    assert_eq!(facts.get(2).as_string().as_deref(), Some("AES-GCM"));
    assert_eq!(facts.get(3).as_f64(), Some(256.0));
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn an_altered_record_reads_as_absent() {
    let (db, _store) = store_with_record().await;
    let mut raw = bytes(&raw_record(&db, "session").await);
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    write_raw(&db, "session", js_sys::Uint8Array::from(raw.as_slice()).into()).await;
    write_raw(&db, "garbage", JsValue::from_str("not a sealed record")).await;
    let reopened = WebStore::open(&db).await.expect("an altered record is not an error");
    assert!(reopened.load("session").expect("load").is_none());
    assert!(reopened.load("garbage").expect("load").is_none());
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_record_moved_to_another_slot_does_not_open() {
    let (db, _store) = store_with_record().await;
    let raw = raw_record(&db, "session").await;
    write_raw(&db, "session|pending", raw).await;
    let reopened = WebStore::open(&db).await.expect("reopened");
    assert!(reopened.load("session").expect("load").is_some());
    assert!(reopened.load("session|pending").expect("load").is_none(), "the slot name is bound in");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn eviction_leaves_a_clean_empty_store() {
    let (db, store) = store_with_record().await;
    delete_db(&db).await;
    store.reload().await.expect("an evicted database reads as empty, not as an error");
    assert!(store.load("session").expect("load").is_none());
    // And it works again afterwards, with a new key.
    store.save("session", &Secret::new("again".into())).expect("saved");
    store.flushed().await;
    let reopened = WebStore::open(&db).await.expect("reopened");
    assert_eq!(reopened.load("session").expect("load").expect("present").expose(), "again");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn writes_land_in_the_order_they_were_made() {
    let db = unique_name("sessionkit-order");
    let store = WebStore::open(&db).await.expect("opens");
    for value in ["one", "two", "three"] {
        store.save("k", &Secret::new(value.into())).expect("saved");
    }
    store.delete("k").expect("deleted");
    store.save("k", &Secret::new("last".into())).expect("saved");
    store.delete("other").expect("deleting nothing succeeds");
    store.flushed().await;
    let reopened = WebStore::open(&db).await.expect("reopened");
    assert_eq!(reopened.load("k").expect("load").expect("present").expose(), "last");
    assert!(store.save("big", &Secret::new("x".repeat(MAX_VALUE_BYTES + 1))).is_err_and(|e| e == StoreError::TooLarge));
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn the_web_lock_excludes_a_second_holder_until_released() {
    let name = unique_name("sessionkit-lock");
    let release = take_web_lock(&name, 1_000).await.expect("first holder");
    let refused = take_web_lock(&name, 200).await;
    assert!(refused.is_err(), "a second holder waits, then gives up");
    release.call0(&JsValue::NULL).expect("released");
    let again = take_web_lock(&name, 1_000).await.expect("free again after release");
    again.call0(&JsValue::NULL).expect("released");
}

#[wasm_bindgen_test]
async fn an_open_that_never_settles_fails_in_time_and_the_next_call_opens_afresh() {
    let (db, store) = store_with_record().await;
    // Another context holds the database and ignores `versionchange`: a deletion waits on it, and
    // every open queued after the deletion waits too (this store's own connection closes at once).
    let stuck = hold_open(&db).await;
    let blocked = start_deletion(&db).await;
    set_open_timeout_for_tests(300);
    let refused = store.reload().await;
    set_open_timeout_for_tests(10_000);
    match refused {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("TimeoutError"), "{reason}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The stuck context lets go: the deletion completes, and the store opens the database afresh
    // (the timed-out open is not waited on again).
    let_the_deletion_through(&stuck, &blocked).await;
    store.reload().await.expect("opens again");
    assert!(store.load("session").expect("load").is_none(), "the deletion removed the record");
    store.save("session", &Secret::new("again".into())).expect("saved");
    store.flushed().await;
    assert_eq!(store.flush("session").await, Ok(()), "the write landed");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_write_that_fails_in_the_background_is_reported_by_flush_for_its_slot() {
    let (db, store) = store_with_record().await;
    assert_eq!(store.flush("session").await, Ok(()), "the first write landed");
    // The next write cannot reach IndexedDB: its open waits behind a deletion that another
    // context blocks, and gives up.
    let stuck = hold_open(&db).await;
    let blocked = start_deletion(&db).await;
    set_open_timeout_for_tests(300);
    store.save("session", &Secret::new("second".into())).expect("accepted into the mirror");
    let flushed = store.flush("session").await;
    set_open_timeout_for_tests(10_000);
    match flushed {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("TimeoutError"), "{reason}"),
        other => panic!("expected the failed write to be reported, got {other:?}"),
    }
    assert_eq!(store.flush("other").await, Ok(()), "another slot's failure is not this one's");
    assert!(store.flush("session").await.is_err(), "reported until a write to the slot lands");
    let_the_deletion_through(&stuck, &blocked).await;
    store.save("session", &Secret::new("third".into())).expect("accepted");
    assert_eq!(store.flush("session").await, Ok(()), "landed in the recreated database");
    store.reload().await.expect("reads");
    assert_eq!(store.load("session").expect("load").expect("present").expose(), "third");
    delete_db(&db).await;
}

/// A store with a record in `session`, and a record another tab wrote in `theirs`.
async fn store_beside_another_tabs_record() -> (String, Arc<WebStore>) {
    let (db, store) = store_with_record().await;
    let other_tab = WebStore::open(&db).await.expect("a second store on the database");
    other_tab.save("theirs", &Secret::new("from another tab".into())).expect("saved");
    other_tab.flushed().await;
    (db, store)
}

/// After a reload during which this tab wrote `mine` (last as `mine`) and deleted `session`:
/// its writes are kept, and the other tab's record is seen.
fn assert_overlay(store: &WebStore, mine: &str) {
    assert_eq!(store.load("mine").expect("load").expect("kept").expose(), mine, "the newest write kept");
    assert_eq!(store.load("session").expect("load"), None, "the deletion kept");
    assert_eq!(store.load("theirs").expect("load").expect("seen").expose(), "from another tab");
}

#[wasm_bindgen_test]
async fn a_reload_while_this_tab_keeps_writing_succeeds_and_keeps_the_newer_writes() {
    let (db, store) = store_beside_another_tabs_record().await;

    // Writes keep coming (to one slot, and a deletion of another) while the reload reads.
    let reloading = std::cell::Cell::new(true);
    let mut last = String::new();
    let (reloaded, ()) = tokio::join!(
        async {
            let reloaded = store.reload().await;
            reloading.set(false);
            reloaded
        },
        async {
            for round in 0..200 {
                if !reloading.get() {
                    break;
                }
                last = format!("write {round}");
                store.save("mine", &Secret::new(last.clone())).expect("accepted");
                store.delete("session").expect("accepted");
                pause(1).await;
            }
        }
    );
    reloaded.expect("a reload does not give up while this tab writes");
    assert!(last.starts_with("write "), "no write was made during the reload");
    assert_overlay(&store, &last);

    store.flushed().await;
    let reopened = WebStore::open(&db).await.expect("reopened");
    assert_eq!(reopened.load("mine").expect("load").expect("on disk").expose(), last);
    assert_eq!(reopened.load("session").expect("load"), None);
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn writes_queued_while_a_reload_reads_keep_their_values_over_its_snapshot() {
    let (db, store) = store_beside_another_tabs_record().await;

    // The reload is polled once: nothing to flush, so its read of IndexedDB is under way.
    let mut reload = store.reload();
    std::future::poll_fn(|cx| {
        assert!(reload.as_mut().poll(cx).is_pending(), "the read is asynchronous");
        std::task::Poll::Ready(())
    })
    .await;
    store.save("mine", &Secret::new("queued during the read".into())).expect("accepted");
    store.delete("session").expect("accepted");
    reload.await.expect("reloaded");

    assert_overlay(&store, "queued during the read");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn the_store_opens_and_reads_without_waiting_for_the_persistence_answer() {
    let (db, _first) = store_with_record().await;
    forget_persistence_for_tests();
    let hold = hold_persistence_answer();
    let store = WebStore::open(&db).await.expect("opens while the browser has not answered");
    // Had the open waited for the answer (3 s after the question), the store would know it.
    let at_open = store.is_persistent();
    let asked = wasm_bindgen_futures::JsFuture::from(hold.asked()).await;
    let while_unanswered = store.is_persistent();
    hold.answer();
    // The first question may be the other store's (each asks a second after its open): this
    // one hears the page's one answer when its own second is up.
    for _ in 0..40 {
        if store.is_persistent() {
            break;
        }
        pause(50).await;
    }
    assert!(asked.is_ok(), "the store asks for persistence after its open");
    assert!(!at_open && !while_unanswered, "the open waited for the persistence answer");
    assert_eq!(store.load("session").expect("load").expect("read").expose(), PLAINTEXT);
    assert!(store.is_persistent(), "the answer, once given, is kept");
    delete_db(&db).await;
}

/// Replaces the stored record behind the store's back (not a write of the store's) with bytes
/// that do not open: a read made afterwards finds nothing.
async fn spoil_record(db: &str) {
    write_raw(db, "session", js_sys::Uint8Array::from(&[7u8; 40][..]).into()).await;
}

#[wasm_bindgen_test]
async fn the_open_takes_a_read_started_early() {
    let (db, _first) = store_with_record().await;
    read_early(&db);
    // Changed behind the store's back (not by a write of this page's): the early read, begun
    // before, still holds the record as it was; a read now would find nothing that opens.
    spoil_record(&db).await;
    let store = WebStore::open(&db).await.expect("opens");
    assert_eq!(store.load("session").expect("load").expect("from the early read").expose(), PLAINTEXT);
    // Taken once: the next read is the disk's.
    store.reload().await.expect("reloads");
    assert!(store.load("session").expect("load").is_none(), "read afresh");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn an_early_read_older_than_a_write_of_this_page_is_dropped() {
    let (db, first) = store_with_record().await;
    read_early(&db);
    first.save("session", &Secret::new("written-after-the-early-read".to_owned())).expect("saved");
    first.flushed().await;
    let store = WebStore::open(&db).await.expect("opens");
    assert_eq!(store.load("session").expect("load").expect("present").expose(), "written-after-the-early-read");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_store_already_open_never_takes_an_early_read() {
    let (db, store) = store_with_record().await;
    read_early(&db);
    spoil_record(&db).await;
    // A reload (as after taking the lock) must see what IndexedDB holds now.
    store.reload().await.expect("reloads");
    assert!(store.load("session").expect("load").is_none(), "the reload took the early snapshot");
    drop_early_read(&db);
    delete_db(&db).await;
}

/// Sets the early read's age limit for one test, and puts the default back when dropped.
struct EarlyReadMaxAge;

impl EarlyReadMaxAge {
    fn set(ms: u32) -> Self {
        set_early_read_max_age_for_tests(ms);
        Self
    }
}

impl Drop for EarlyReadMaxAge {
    fn drop(&mut self) {
        set_early_read_max_age_for_tests(5000);
    }
}

#[wasm_bindgen_test]
async fn an_early_read_past_its_age_is_dropped_even_before_its_timer_runs() {
    let (db, _first) = store_with_record().await;
    let _limit = EarlyReadMaxAge::set(300);
    read_early(&db);
    // Let the early read land, then change the record behind the store's back.
    pause(20).await;
    spoil_record(&db).await;
    // Past its age, with no chance for the expiry timer to run before the open takes it (as in
    // a throttled tab): the clock decides.
    busy_wait(400);
    let store = WebStore::open(&db).await.expect("opens");
    assert!(store.load("session").expect("load").is_none(), "the open took an early read past its age");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn an_early_read_started_while_a_write_was_under_way_is_dropped() {
    let (db, _first) = store_with_record().await;
    // The write has begun (its transaction comes only after the encryption); the early read
    // starts now and may be ordered before it.
    let write = seal_and_put_now(&db, "session", "written-while-reading");
    read_early(&db);
    wasm_bindgen_futures::JsFuture::from(write).await.expect("written");
    let store = WebStore::open(&db).await.expect("opens");
    assert_eq!(store.load("session").expect("load").expect("present").expose(), "written-while-reading");
    delete_db(&db).await;
}

/// What the first session of a store learns from the tabs' channel it takes over.
fn taken(store: &WebStore, key: &str) -> (bool, bool) {
    let channel = store.take_tabs_channel(key).expect("browsers here have BroadcastChannel");
    (channel.unchanged_since_read, channel.active)
}

#[wasm_bindgen_test]
async fn the_first_session_takes_the_channel_heard_since_before_the_early_read() {
    let (db, _first) = store_with_record().await;
    read_early(&db);
    // Said while the module would be loading: a change of `alice`, activity of `bob`.
    say_from_another_tab(&db, "changed", "alice").await;
    say_from_another_tab(&db, "activity", "bob").await;
    let store = WebStore::open(&db).await.expect("opens");
    // And after the open, before any session took the channel.
    say_from_another_tab(&db, "activity", "alice").await;
    assert_eq!(taken(&store, "alice"), (false, true), "alice's change and activity were heard");
    // Taken once: a second session gets a channel of its own, heard from now on only.
    assert_eq!(taken(&store, "bob"), (false, false));
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_session_nobody_spoke_of_needs_no_second_read() {
    let (db, _first) = store_with_record().await;
    read_early(&db);
    say_from_another_tab(&db, "changed", "bob").await;
    say_from_another_tab(&db, "activity", "bob").await;
    let store = WebStore::open(&db).await.expect("opens");
    assert_eq!(taken(&store, "alice"), (true, false), "only another session changed, and was active");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_store_opened_without_an_early_read_listens_from_before_its_own() {
    let (db, _first) = store_with_record().await;
    // The open's read waits behind a deletion that a stuck connection blocks; a change another
    // tab announces meanwhile, after the read was asked for, must be heard.
    let stuck = hold_open(&db).await;
    let blocked = start_deletion(&db).await;
    let (store, ()) = tokio::join!(WebStore::open(&db), async {
        pause(50).await;
        say_from_another_tab(&db, "changed", "alice").await;
        let_the_deletion_through(&stuck, &blocked).await;
    });
    let store = store.expect("opens");
    assert_eq!(taken(&store, "alice"), (false, false));
    let (quiet_db, _other) = store_with_record().await;
    let quiet = WebStore::open(&quiet_db).await.expect("opens");
    assert_eq!(taken(&quiet, "alice"), (true, false));
    delete_db(&db).await;
    delete_db(&quiet_db).await;
}

#[wasm_bindgen_test]
async fn more_messages_than_kept_count_as_a_change() {
    let (db, _first) = store_with_record().await;
    let store = WebStore::open(&db).await.expect("opens");
    for _ in 0..65 {
        say_from_another_tab(&db, "activity", "bob").await;
    }
    assert_eq!(taken(&store, "alice"), (false, false), "the 65th message was not kept: it may have been alice's");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_channel_not_taken_within_its_age_is_closed_and_the_session_reads_again() {
    let (db, _first) = store_with_record().await;
    let _limit = EarlyReadMaxAge::set(300);
    let store = WebStore::open(&db).await.expect("opens");
    // Past its age by the clock, before its timer could run (as in a throttled tab).
    busy_wait(400);
    assert_eq!(taken(&store, "alice"), (false, false), "a fresh channel, heard from now on only");
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn a_reload_whose_kept_key_no_longer_opens_the_records_reads_the_key_again() {
    let (db, store) = store_with_record().await;
    // The store's connection keeps the key it read; the key changes behind its back.
    replace_key_and_seal(&db, "session", "sealed-under-a-new-key").await;
    store.reload().await.expect("reloads");
    assert_eq!(store.load("session").expect("load").expect("opened").expose(), "sealed-under-a-new-key");
    delete_db(&db).await;
}
