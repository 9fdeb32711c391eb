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

fn misconfigured(message: String) -> Error {
    Error::Misconfigured { message }
}

/// A JS object read field by field; errors name the field as the app wrote it
/// (`config.clientId`, `options.acrValues`).
struct Fields<'a> {
    object: &'a JsValue,
    /// What the TypeScript declarations call the object.
    called: &'static str,
}

impl Fields<'_> {
    fn field(&self, name: &str) -> Option<JsValue> {
        js_sys::Reflect::get(self.object, &name.into()).ok().filter(|v| !v.is_undefined() && !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<String>, Error> {
        self.field(name)
            .map(|v| v.as_string().ok_or_else(|| misconfigured(format!("{}.{name} must be a string", self.called))))
            .transpose()
    }

    fn required(&self, name: &str) -> Result<String, Error> {
        self.string(name)?.ok_or_else(|| misconfigured(format!("{}.{name} is required", self.called)))
    }

    fn seconds(&self, name: &str) -> Result<Option<Duration>, Error> {
        let Some(value) = self.field(name) else { return Ok(None) };
        match value.as_f64() {
            Some(s) if (0.0..=1e9).contains(&s) => Ok(Some(Duration::from_secs_f64(s))),
            _ => Err(misconfigured(format!("{}.{name} must be a number of seconds", self.called))),
        }
    }
}

/// Reads the policy: the core's defaults, with the fields the app set.
fn policy(config: &Fields<'_>) -> Result<SessionPolicy, Error> {
    let mut builder = SessionPolicy::builder();
    if let Some(value) = config.seconds("idleTimeoutSeconds")? {
        builder = builder.idle_timeout(value);
    }
    if let Some(value) = config.seconds("absoluteLifetimeSeconds")? {
        builder = builder.absolute_lifetime(value);
    }
    if let Some(value) = config.seconds("warningLeadSeconds")? {
        builder = builder.warning_lead(value);
    }
    if let Some(value) = config.seconds("refreshLeadSeconds")? {
        builder = builder.refresh_lead(value);
    }
    if let Some(value) = config.string("dpop")? {
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
    if let Some(value) = config.field("backgroundRefresh") {
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
    let config = &Fields { object: config, called: "config" };
    let issuer = config.required("issuer")?;
    let client_id = config.required("clientId")?;
    let redirect_uri = config.required("redirectUri")?;
    // No scopes given: the driver's default (`offline_access`), as for native Rust apps.
    let scopes: Option<Vec<String>> = match config.field("scopes") {
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
    if let Some(uri) = config.string("postLogoutRedirectUri")? {
        builder = builder.post_logout_redirect_uri(&uri);
    }
    let store_name = config.string("storeName")?.unwrap_or_else(|| "sessionkit".to_owned());
    if store_name.is_empty() || store_name.len() > 100 {
        return Err(misconfigured("config.storeName must be 1 to 100 characters".into()));
    }
    let account = config.string("account")?;
    Ok((builder, WebSettings { store_name, account }))
}

/// Sign-in options: `{ prompt, loginHint, maxAgeSeconds, acrValues }` (Kotlin's and Swift's
/// `LoginOptions`).
pub(crate) fn authorize_options(options: &JsValue) -> Result<sessionkit::AuthorizeOptions, Error> {
    if !options.is_object() {
        return Ok(sessionkit::AuthorizeOptions::default());
    }
    let options = &Fields { object: options, called: "options" };
    // Every field named: a new option of the core's does not compile until it is read here.
    Ok(sessionkit::AuthorizeOptions {
        prompt: options.string("prompt")?,
        login_hint: options.string("loginHint")?,
        max_age: options.seconds("maxAgeSeconds")?.map(|d| d.as_secs()),
        acr_values: options.string("acrValues")?,
        // Native apps' loopback listener only.
        redirect_uri: None,
    })
}
