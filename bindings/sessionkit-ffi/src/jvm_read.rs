//! The token read for hot paths on the JVM (Android, and Kotlin on desktops), through JNI.
//!
//! A UniFFI call from Kotlin goes through JNA: a call-status structure allocated per call, the
//! answer in a `RustBuffer` freed by a second call. That costs tens of microseconds per call
//! whatever the work (`scripts/kotlin-test --bench`: 37 us for a 4-byte string), 400 times the
//! read itself. This module gives the one call apps make per request a JNI entry point instead:
//! `TokenReader.freshAccessToken()` in Kotlin (`bindings/kotlin/src/main/kotlin`) calls
//! [`Java_uniffi_sessionkit_1ffi_TokenReads_freshAccessToken`], which looks the client up by a
//! number (no pointer crosses into Kotlin, so a reader that outlives its client reads nothing)
//! and answers exactly what [`SessionClient::fresh_access_token`](crate::SessionClient) answers:
//! the session's rules stay in Rust.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use jni::JNIEnv;
use jni::objects::JClass;
use jni::sys::{jlong, jstring};

/// The clients that can be read through JNI, by reader number.
static READERS: RwLock<BTreeMap<u64, sessionkit::SessionClient>> = RwLock::new(BTreeMap::new());
static NEXT_READER: AtomicU64 = AtomicU64::new(1);

/// Makes `client` readable through JNI; its number, until [`unregister`] is called with it.
pub(crate) fn register(client: &sessionkit::SessionClient) -> u64 {
    let reader = NEXT_READER.fetch_add(1, Ordering::Relaxed);
    READERS.write().unwrap_or_else(PoisonError::into_inner).insert(reader, client.clone());
    reader
}

/// Forgets reader `reader` (its FFI client is gone).
pub(crate) fn unregister(reader: u64) {
    READERS.write().unwrap_or_else(PoisonError::into_inner).remove(&reader);
}

/// `TokenReads.freshAccessToken(reader)`: the access token if it is fresh now, else null (also
/// for a reader whose client is gone). No I/O, no suspension.
// JNI finds the function by this exact, unmangled name, exported from the library.
#[allow(unsafe_code, unreachable_pub)]
#[unsafe(no_mangle)]
pub extern "system" fn Java_uniffi_sessionkit_1ffi_TokenReads_freshAccessToken(
    env: JNIEnv<'_>,
    _class: JClass<'_>,
    reader: jlong,
) -> jstring {
    let token = {
        let readers = READERS.read().unwrap_or_else(PoisonError::into_inner);
        let Some(client) = u64::try_from(reader).ok().and_then(|reader| readers.get(&reader)) else {
            return std::ptr::null_mut();
        };
        client.fresh_access_token()
    };
    // Handed to the app, whose job is to put it in an Authorization header.
    token.and_then(|token| env.new_string(token.expose()).ok()).map_or(std::ptr::null_mut(), |s| s.into_raw())
}
