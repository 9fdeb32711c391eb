//! Rust values to plain JS objects: events, status and errors. No secret is ever converted
//! here except by `getAccessToken`, which returns the token itself.

use std::time::Duration;

use sessionkit::{Error, SessionEvent, SessionStatus};
use wasm_bindgen::JsValue;

/// A plain object from name/value pairs.
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in fields {
        let _ = js_sys::Reflect::set(&object, &(*name).into(), value);
    }
    object.into()
}

fn millis(duration: Duration) -> JsValue {
    JsValue::from_f64(duration.as_millis() as f64)
}

fn time(time: sessionkit::UnixTime) -> JsValue {
    JsValue::from_f64(time.as_millis() as f64)
}

/// The core's stable name in lower camel case, as JavaScript spells it ("IdleTimeout" ->
/// "idleTimeout").
fn name(stable: &str) -> JsValue {
    let mut chars = stable.chars();
    let camel: String = chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect();
    camel.into()
}

fn optional_id(id: &Option<String>) -> (&'static str, JsValue) {
    ("sessionId", id.as_deref().map_or(JsValue::NULL, JsValue::from))
}

/// `{ type, sessionId, ... }`; `type` is the stable discriminant the TypeScript union uses.
pub(crate) fn event(event: &SessionEvent) -> JsValue {
    let id = |id: &str| ("sessionId", JsValue::from_str(id));
    match event {
        SessionEvent::LoggedIn { session_id, subject } => {
            object(&[("type", "loggedIn".into()), id(session_id), ("subject", subject.into())])
        }
        SessionEvent::Restored { session_id, subject } => {
            object(&[("type", "restored".into()), id(session_id), ("subject", subject.into())])
        }
        SessionEvent::Refreshed { session_id, rotated, access_expires_at } => object(&[
            ("type", "refreshed".into()),
            id(session_id),
            ("rotated", (*rotated).into()),
            ("accessExpiresAt", time(*access_expires_at)),
        ]),
        SessionEvent::ExpiringSoon { session_id, reason, time_left } => object(&[
            ("type", "expiringSoon".into()),
            id(session_id),
            ("reason", name(reason.name())),
            ("timeLeftMs", millis(*time_left)),
        ]),
        SessionEvent::Expired { session_id, reason } => {
            object(&[("type", "expired".into()), id(session_id), ("reason", name(reason.name()))])
        }
        SessionEvent::LoggedOut { session_id } => object(&[("type", "loggedOut".into()), id(session_id)]),
        SessionEvent::AnomalySuspected { session_id, anomaly } => {
            let mut fields =
                vec![("type", "anomaly".into()), optional_id(session_id), ("anomaly", name(anomaly.name()))];
            if let sessionkit::Anomaly::ClockJumpedBack { by } = anomaly {
                fields.push(("byMs", millis(*by)));
            }
            object(&fields)
        }
        SessionEvent::StorageProblem { session_id, problem } => {
            object(&[("type", "storageProblem".into()), optional_id(session_id), ("problem", name(problem.name()))])
        }
        // An event kind newer than this binding.
        _ => object(&[("type", "other".into())]),
    }
}

/// The status object, or `null` when signed out. Times are epoch milliseconds.
pub(crate) fn status(status: Option<SessionStatus>, store: &str) -> JsValue {
    let Some(s) = status else { return JsValue::NULL };
    object(&[
        ("sessionId", s.session_id.as_str().into()),
        ("subject", s.subject.as_str().into()),
        ("displayName", s.display_name.as_deref().map_or(JsValue::NULL, JsValue::from)),
        ("acr", s.acr.as_deref().map_or(JsValue::NULL, JsValue::from)),
        ("authenticatedAt", s.authenticated_at.map_or(JsValue::NULL, time)),
        ("startedAt", time(s.started_at)),
        ("absoluteDeadline", time(s.absolute_deadline)),
        ("idleDeadline", time(s.idle_deadline)),
        ("accessExpiresAt", time(s.access_expires_at)),
        ("refreshDueAt", time(s.refresh_due_at)),
        ("hasRefreshToken", s.has_refresh_token.into()),
        ("store", store.into()),
    ])
}

/// A JS `Error` whose `name` is the stable variant name; the package's JS layer turns it into
/// the matching `Error` subclass. The message is the error's Display text, which carries no
/// token, code or URL query (a tested property of the Rust crates).
pub(crate) fn error(error: Error) -> JsValue {
    let (name, retry_after) = match &error {
        Error::ReauthenticationRequired { .. } => ("ReauthenticationRequiredError", None),
        Error::RetryLater { retry_after, .. } => ("RetryLaterError", *retry_after),
        Error::StorageUnavailable { .. } => ("StorageUnavailableError", None),
        Error::Misconfigured { .. } => ("MisconfiguredError", None),
        Error::InvalidInput { .. } => ("InvalidInputError", None),
        _ => ("SessionKitError", None),
    };
    let js = js_sys::Error::new(&error.to_string());
    js.set_name(name);
    if let Some(wait) = retry_after {
        let _ = js_sys::Reflect::set(&js, &"retryAfterMs".into(), &millis(wait));
    }
    js.into()
}
