//! The JS configuration object, read into a [`sessionkit::SessionConfig`].
//!
//! Field names are the TypeScript ones (`clientId`, `idleTimeoutSeconds`, ...; see
//! `js/index.d.ts`). A missing required field or a value of the wrong type is a
//! `MisconfiguredError` naming the field, never a panic.

use std::time::Duration;

use sessionkit::{Error, SessionPolicy};
use wasm_bindgen::JsValue;

/// What the binding needs besides the client configuration.
pub(crate) struct WebSettings {
    /// The IndexedDB database's name.
    pub(crate) store_name: String,
    /// The account this session is, when the app keeps several.
    pub(crate) account: Option<String>,
}

fn field(config: &JsValue, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(config, &name.into()).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

fn misconfigured(message: String) -> Error {
    Error::Misconfigured { message }
}

fn string(config: &JsValue, name: &str) -> Result<Option<String>, Error> {
    field(config, name)
        .map(|v| v.as_string().ok_or_else(|| misconfigured(format!("config.{name} must be a string"))))
        .transpose()
}

fn required(config: &JsValue, name: &str) -> Result<String, Error> {
    string(config, name)?.ok_or_else(|| misconfigured(format!("config.{name} is required")))
}

fn seconds(config: &JsValue, name: &str) -> Result<Option<Duration>, Error> {
    let Some(value) = field(config, name) else { return Ok(None) };
    match value.as_f64() {
        Some(s) if (0.0..=1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(misconfigured(format!("config.{name} must be a number of seconds"))),
    }
}

/// Reads the policy: the core's defaults, with the fields the app set.
fn policy(config: &JsValue) -> Result<SessionPolicy, Error> {
    let mut builder = SessionPolicy::builder();
    if let Some(value) = seconds(config, "idleTimeoutSeconds")? {
        builder = builder.idle_timeout(value);
    }
    if let Some(value) = seconds(config, "absoluteLifetimeSeconds")? {
        builder = builder.absolute_lifetime(value);
    }
    if let Some(value) = seconds(config, "warningLeadSeconds")? {
        builder = builder.warning_lead(value);
    }
    if let Some(value) = seconds(config, "refreshLeadSeconds")? {
        builder = builder.refresh_lead(value);
    }
    if let Some(value) = string(config, "dpop")? {
        let dpop = match value.as_str() {
            "off" => sessionkit::DpopPolicy::Off,
            "whenSupported" => sessionkit::DpopPolicy::WhenSupported,
            "required" => sessionkit::DpopPolicy::Required,
            other => {
                return Err(misconfigured(format!(
                    "config.dpop must be 'off', 'whenSupported' or 'required', not '{}'",
                    other.chars().filter(|c| !c.is_control()).take(40).collect::<String>()
                )));
            }
        };
        builder = builder.dpop(dpop);
    }
    if let Some(value) = field(config, "backgroundRefresh") {
        let on = value.as_bool().ok_or_else(|| misconfigured("config.backgroundRefresh must be a boolean".into()))?;
        builder = builder.background_refresh(on);
    }
    builder.build().map_err(|e| misconfigured(e.to_string()))
}

/// Reads the config object; the store is attached by the caller once opened.
pub(crate) fn read(config: &JsValue) -> Result<(sessionkit::SessionConfigBuilder, WebSettings), Error> {
    if !config.is_object() {
        return Err(misconfigured("the config must be an object".into()));
    }
    let issuer = required(config, "issuer")?;
    let client_id = required(config, "clientId")?;
    let redirect_uri = required(config, "redirectUri")?;
    // No scopes given: the driver's default (`offline_access`), as for native Rust apps.
    let scopes: Option<Vec<String>> = match field(config, "scopes") {
        None => None,
        Some(value) if js_sys::Array::is_array(&value) => Some(
            js_sys::Array::from(&value)
                .iter()
                .map(|s| s.as_string().ok_or_else(|| misconfigured("config.scopes must be strings".into())))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(misconfigured("config.scopes must be an array of strings".into())),
    };
    let mut builder =
        sessionkit::SessionConfig::builder(&issuer, &client_id).redirect_uri(&redirect_uri).policy(policy(config)?);
    if let Some(scopes) = &scopes {
        builder = builder.scopes(&scopes.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if let Some(uri) = string(config, "postLogoutRedirectUri")? {
        builder = builder.post_logout_redirect_uri(&uri);
    }
    let store_name = string(config, "storeName")?.unwrap_or_else(|| "sessionkit".to_owned());
    if store_name.is_empty() || store_name.len() > 100 {
        return Err(misconfigured("config.storeName must be 1 to 100 characters".into()));
    }
    let account = string(config, "account")?;
    Ok((builder, WebSettings { store_name, account }))
}

/// Sign-in options: `{ prompt, loginHint, maxAgeSeconds, acrValues }` (Kotlin's and Swift's
/// `LoginOptions`).
pub(crate) fn authorize_options(options: &JsValue) -> Result<sessionkit::AuthorizeOptions, Error> {
    if !options.is_object() {
        return Ok(sessionkit::AuthorizeOptions::default());
    }
    // Every field named: a new option of the core's does not compile until it is read here.
    Ok(sessionkit::AuthorizeOptions {
        prompt: string(options, "prompt")?,
        login_hint: string(options, "loginHint")?,
        max_age: seconds(options, "maxAgeSeconds")?.map(|d| d.as_secs()),
        acr_values: string(options, "acrValues")?,
        // Native apps' loopback listener only.
        redirect_uri: None,
    })
}
