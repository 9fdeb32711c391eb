//! Sign-in through the FFI beyond the two-step code flow: step-up options, the redirect
//! sign-in that survives the app being killed while the browser is open, and the device flow.
//! Each forwards to the `sessionkit` flow of the same name.

use std::sync::Arc;

/// Options of one sign-in (all optional): the step-up and account-choice parameters.
#[derive(Clone, Default, uniffi::Record)]
pub struct LoginOptions {
    /// `prompt`: `login` to force re-authentication, `consent`, `select_account`, `none`.
    #[uniffi(default)]
    pub prompt: Option<String>,
    /// `login_hint`: the user name or email to prefill (an account switch).
    #[uniffi(default)]
    pub login_hint: Option<String>,
    /// `max_age` in seconds: re-authenticate if the last authentication is older (step-up).
    #[uniffi(default)]
    pub max_age_seconds: Option<u64>,
    /// `acr_values`: the authentication context classes asked for (step-up, e.g. MFA).
    #[uniffi(default)]
    pub acr_values: Option<String>,
}

impl std::fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The login hint (a user name or an email address) stays out of logs.
        authorize_options(Some(self.clone())).fmt(f)
    }
}

/// The driver's options for `options` (none: the defaults).
pub(crate) fn authorize_options(options: Option<LoginOptions>) -> sessionkit::AuthorizeOptions {
    let options = options.unwrap_or_default();
    sessionkit::AuthorizeOptions {
        prompt: options.prompt,
        login_hint: options.login_hint,
        max_age: options.max_age_seconds,
        acr_values: options.acr_values,
        ..sessionkit::AuthorizeOptions::default()
    }
}

/// What to show the user during a device sign-in.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceCode {
    /// The code to type.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// The same URL with the code filled in (for a link or a QR code), if the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// When the code stops working (Kotlin: an `Instant`; Swift: a `Date`).
    pub expires_at: sessionkit::UnixTime,
}

/// Shows the device sign-in's code to the user (a TV screen, a QR code). Called once, before
/// the polling starts, on a blocking-pool thread of its own (never the caller's: a slow or
/// failing `show` cannot hold up or break the sign-in). Hand UI work to your main thread.
#[uniffi::export(with_foreign)]
pub trait DeviceCodeDisplay: Send + Sync {
    /// Shows `code`.
    fn show(&self, code: DeviceCode);
}

pub(crate) fn to_ffi(code: &sessionkit::DeviceCode) -> DeviceCode {
    DeviceCode {
        user_code: code.user_code.clone(),
        verification_uri: code.verification_uri.clone(),
        verification_uri_complete: code.verification_uri_complete.clone(),
        expires_at: code.expires_at,
    }
}

pub(crate) fn show_with(display: Arc<dyn DeviceCodeDisplay>) -> impl FnOnce(&sessionkit::DeviceCode) {
    move |code| {
        let code = to_ffi(code);
        drop(tokio::task::spawn_blocking(move || display.show(code)));
    }
}
