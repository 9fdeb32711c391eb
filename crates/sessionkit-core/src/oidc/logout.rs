//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the URL the app opens after
//! the local wipe and the revocation.
//!
//! [`EndSessionRequest::new`] puts `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
//! a fresh `state` on the provider's `end_session_endpoint`. The URL holds the ID token, so it
//! is a [`Secret`]: hand it to the browser, never to a log.

use crate::url::Url;

use super::client::RedirectUri;
use crate::Secret;
use crate::random::{RandomError, random_identifier};

/// The end-session URL and the `state` to expect back on the post-logout redirect.
#[derive(Debug, Clone)]
pub struct EndSessionRequest {
    /// The URL to open in the system browser (contains `id_token_hint`).
    pub url: Secret,
    /// The `state` sent, to compare with the one on the post-logout redirect.
    pub state: Secret,
}

impl EndSessionRequest {
    /// Builds the URL; `id_token_hint` is the session's last ID token, if it had one.
    pub fn new(
        endpoint: &Url,
        client_id: &str,
        id_token_hint: Option<&Secret>,
        post_logout_redirect_uri: Option<&RedirectUri>,
    ) -> Result<Self, RandomError> {
        let state = random_identifier()?;
        let mut pairs = Vec::with_capacity(4);
        if let Some(hint) = id_token_hint {
            // The provider needs the ID token to know which session to end.
            pairs.push(("id_token_hint", hint.expose()));
        }
        pairs.push(("client_id", client_id));
        if let Some(uri) = post_logout_redirect_uri {
            pairs.push(("post_logout_redirect_uri", uri.as_str()));
        }
        pairs.push(("state", state.expose()));
        let url = endpoint.with_query_pairs(&pairs);
        Ok(Self { url: Secret::new(url.into()), state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_hint_redirect_and_state() {
        let endpoint = Url::parse("https://idp.example/session/end").expect("url");
        let redirect = RedirectUri::parse("http://127.0.0.1:4711/bye").expect("redirect");
        let request = EndSessionRequest::new(&endpoint, "app", Some(&Secret::from("id.tok.en")), Some(&redirect))
            .expect("random");
        let url = Url::parse(request.url.expose()).expect("url");
        let get = |n: &str| url.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned());
        assert_eq!(get("id_token_hint").as_deref(), Some("id.tok.en"));
        assert_eq!(get("post_logout_redirect_uri").as_deref(), Some("http://127.0.0.1:4711/bye"));
        assert_eq!(get("client_id").as_deref(), Some("app"));
        assert!(request.state.constant_time_eq(&get("state").unwrap_or_default()));
        assert!(!format!("{request:?}").contains("id.tok.en"));
    }
}
