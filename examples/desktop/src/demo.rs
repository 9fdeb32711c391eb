//! The demo: a whole session's life against the bundled local provider, narrated, in under a
//! minute. It signs in (answering the provider's login itself), calls a protected API, lets the
//! access token expire and refreshes it (showing the rotation), sends a burst of concurrent calls
//! that cause one refresh, goes idle until the warning and the idle timeout, signs in again, and
//! logs out with the revocation proved by introspection. It stops the provider and removes its
//! keystore entries when it ends, on error and on Ctrl-C too.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionkit::store::SecureStore;
use sessionkit::{EndReason, ExpiryReason, SessionClient, SessionConfig, SessionEvent, SessionPolicy};
use tokio::sync::broadcast::Receiver;

use crate::cli::StoreKind;
use crate::commands::{http_options, open_store};
use crate::output::{Failure, describe, event_json};

#[allow(dead_code, unreachable_pub)] // the shared launcher, of which the demo uses a part
#[path = "../../../tests/idp/provider.rs"]
mod provider;

const SERVICE: &str = "sessionkit-demo";
const ACCESS_TTL: u64 = 4;
/// Long enough that the token-expiry waits (4 s) never come near the idle warning (at 8 s).
const IDLE_SECS: u64 = 12;

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        hint: Some("run the demo through scripts/demo, which installs what it needs".into()),
        code: 1,
    }
}

/// FNV-1a, to show that a token changed without showing the token.
fn fingerprint(token: &str) -> String {
    let hash = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{:08x}", hash >> 32)
}

struct Narrator {
    started: Instant,
    quiet: bool,
}

impl Narrator {
    fn step(&self, title: &str) {
        if !self.quiet {
            println!("\n[{:>5.1}s] == {title}", self.started.elapsed().as_secs_f64());
        }
    }

    fn say(&self, text: &str) {
        if !self.quiet {
            println!("[{:>5.1}s]    {text}", self.started.elapsed().as_secs_f64());
        }
    }
}

/// Picks the most real keystore this machine offers.
fn choose_store() -> (Arc<dyn SecureStore>, &'static str) {
    for kind in [StoreKind::SecretService, StoreKind::Keyutils] {
        if let Ok(store) = open_store(kind, SERVICE) {
            // A store that cannot be written (keyutils outside a session keyring) is no choice.
            if store.save("sessionkit-demo-probe", &sessionkit::Secret::from("probe")).is_ok() {
                let _ = store.delete("sessionkit-demo-probe");
                return (
                    store,
                    if kind == StoreKind::SecretService {
                        "the Secret Service (your desktop keyring)"
                    } else {
                        "the kernel's session keyring (keyutils)"
                    },
                );
            }
        }
    }
    (
        open_store(StoreKind::Memory, SERVICE).unwrap_or_else(|_| Arc::new(sessionkit::store::MemoryStore::new())),
        "memory (no keystore was reachable)",
    )
}

pub(crate) async fn run(events_json: bool) -> Result<(), Failure> {
    let dir = std::env::var_os("SESSIONKIT_IDP_DIR")
        .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/idp")), PathBuf::from);
    let narrator = Narrator { started: Instant::now(), quiet: events_json };
    narrator.step("Starting the bundled OpenID provider (node-oidc-provider, TLS on 127.0.0.1)");
    let provider = provider::LocalProvider::start(&dir, ACCESS_TTL, Stdio::null()).map_err(fail)?;
    narrator.say(&format!("issuer {} (a CA made just now; access tokens live {ACCESS_TTL}s)", provider.issuer));
    let (store, store_name) = choose_store();
    narrator.say(&format!("tokens are kept in {store_name}"));

    let key_store = store.clone();
    let issuer = provider.issuer.clone();
    let outcome = tokio::select! {
        result = walk(&provider, store, &narrator, events_json) => result,
        _ = tokio::signal::ctrl_c() => Err(Failure { message: "interrupted".into(), hint: None, code: 130 }),
    };
    // Clean up whatever happened: no demo entries stay in the keystore.
    for suffix in ["", "|revocations", "|provider"] {
        let _ = key_store.delete(&format!("{issuer}|{}{suffix}", provider::CLIENT_ID));
    }
    drop(provider);
    narrator.step("Done: provider stopped, demo keystore entries removed");
    outcome
}

async fn next_event(
    events: &mut Receiver<SessionEvent>,
    limit: Duration,
    pick: impl Fn(&SessionEvent) -> bool,
) -> Result<SessionEvent, Failure> {
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(event) if pick(&event) => return Ok(event),
                Ok(_) => {}
                Err(_) => return Err(fail("the event stream closed")),
            }
        }
    })
    .await
    .map_err(|_| fail("an expected event did not come in time"))?
}

async fn walk(
    provider: &provider::LocalProvider,
    store: Arc<dyn SecureStore>,
    narrator: &Narrator,
    events_json: bool,
) -> Result<(), Failure> {
    // Short limits so the whole life fits in under a minute. Refresh happens on demand, so the
    // token visibly expires first.
    let policy = SessionPolicy::builder()
        .idle_timeout(Duration::from_secs(IDLE_SECS))
        .warning_lead(Duration::from_secs(4))
        .absolute_lifetime(Duration::from_secs(600))
        .background_refresh(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut http = http_options(None)?;
    http.trust_only_roots_pem = vec![provider.ca_pem.clone()];
    let config = SessionConfig::builder(&provider.issuer, provider::CLIENT_ID)
        .scopes(&["offline_access", "profile"])
        .post_logout_redirect_uri("http://127.0.0.1/logged-out")
        .policy(policy)
        .store(store.clone())
        .http(http)
        .build()?;
    let client = SessionClient::new(config).await?;
    let mut events = client.subscribe();
    let mut printer = client.subscribe();
    let printing = tokio::spawn(async move {
        while let Ok(event) = printer.recv().await {
            if events_json {
                println!("{}", event_json(&event));
            } else {
                println!("           event: {}", describe(&event));
            }
        }
    });
    let record_key = format!("{}|{}", provider.issuer, provider::CLIENT_ID);
    let stored_refresh = || -> Option<String> {
        let record = store.load(&record_key).ok()??;
        let value: serde_json::Value = serde_json::from_str(record.expose()).ok()?;
        value["refresh_token"].as_str().map(str::to_owned)
    };

    narrator.step("1. Sign-in: authorization code + PKCE (the demo answers the provider's login page itself)");
    let request = client.begin_login(&Default::default()).await?;
    narrator.say("authorization URL ready: PKCE S256 challenge, fresh state and nonce");
    let callback = provider.authorize(request.url()).await.map_err(fail)?;
    client.complete_login(request, &callback).await?;
    next_event(&mut events, Duration::from_secs(5), |e| matches!(e, SessionEvent::LoggedIn { .. })).await?;
    let first_refresh = stored_refresh().unwrap_or_default();
    narrator.say(&format!("ID token verified; refresh token {} stored", fingerprint(&first_refresh)));

    narrator.step("2. A protected API call, with a DPoP proof (the provider binds the tokens to this app's key)");
    let token = client.access_token().await?;
    client.record_activity().await;
    let headers = client.authorize("GET", &provider.api_url()).await?;
    let answer = provider
        .call_api_with(headers.authorization.expose(), headers.dpop.as_ref().map(|proof| proof.expose()))
        .await
        .map_err(fail)?;
    narrator.say(&format!(
        "GET /__test/api with the {} token and a fresh proof: HTTP {}",
        client.token_type().unwrap_or_default(),
        answer.status
    ));
    let stolen = provider.call_api(token.expose()).await.map_err(fail)?;
    narrator.say(&format!("the same token without its proof, as a thief would send it: HTTP {stolen}"));

    narrator.step("3. The access token expires and is refreshed, rotating the refresh token");
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL) + Duration::from_millis(200)).await;
    narrator.say("the access token has expired; asking for a token again...");
    let renewed = client.access_token().await?;
    client.record_activity().await;
    next_event(&mut events, Duration::from_secs(5), |e| matches!(e, SessionEvent::Refreshed { .. })).await?;
    let second_refresh = stored_refresh().unwrap_or_default();
    let old_active = provider.is_active(&first_refresh).await.map_err(fail)?;
    narrator.say(&format!(
        "new access token {}; refresh token {} -> {}; the old one is {}",
        fingerprint(renewed.expose()),
        fingerprint(&first_refresh),
        fingerprint(&second_refresh),
        if old_active { "still active (!)" } else { "dead at the provider" }
    ));

    narrator.step("4. A burst of 50 concurrent calls on an expired token: one refresh");
    tokio::time::sleep(Duration::from_secs(ACCESS_TTL) + Duration::from_millis(200)).await;
    let before = provider.refresh_count().await.map_err(fail)?;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.access_token().await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        if matches!(call.await, Ok(Ok(_))) {
            ok += 1;
        }
    }
    client.record_activity().await;
    let requests = provider.refresh_count().await.map_err(fail)? - before;
    narrator.say(&format!("{ok} of 50 calls got a token; the provider saw {requests} refresh request(s)"));

    narrator.step(&format!("5. Idle: no activity for {IDLE_SECS} s (the warning comes 4 s before the end)"));
    let mut events = events.resubscribe(); // only what happens from now on
    let warning =
        next_event(&mut events, Duration::from_secs(IDLE_SECS + 2), |e| matches!(e, SessionEvent::ExpiringSoon { .. }))
            .await?;
    if let SessionEvent::ExpiringSoon { reason: ExpiryReason::Idle, time_left, .. } = warning {
        narrator.say(&format!("the app would now warn its user: {:.1}s left", time_left.as_secs_f64()));
    }
    next_event(&mut events, Duration::from_secs(8), |e| {
        matches!(e, SessionEvent::Expired { reason: EndReason::IdleTimeout, .. })
    })
    .await?;
    let after_idle = client.access_token().await;
    narrator.say(&format!(
        "asking for a token now: {}; the keystore entry is {}",
        after_idle.err().map(|e| e.to_string()).unwrap_or_else(|| "a token (!)".into()),
        if stored_refresh().is_some() { "still there (!)" } else { "gone" }
    ));

    narrator.step("6. Sign in again: a fresh session");
    let request = client.begin_login(&Default::default()).await?;
    let callback = provider.authorize(request.url()).await.map_err(fail)?;
    client.complete_login(request, &callback).await?;
    next_event(&mut events, Duration::from_secs(5), |e| matches!(e, SessionEvent::LoggedIn { .. })).await?;
    let refresh = stored_refresh().unwrap_or_default();
    narrator.say(&format!(
        "new session {}",
        client.status().map(|s| s.session_id.chars().take(8).collect::<String>()).unwrap_or_default()
    ));

    narrator.step("7. Logout: wipe locally, revoke at the provider, offer the end-session URL");
    let active_before = provider.is_active(&refresh).await.map_err(fail)?;
    let end = client.logout().await?;
    next_event(&mut events, Duration::from_secs(5), |e| matches!(e, SessionEvent::LoggedOut { .. })).await?;
    let active_after = provider.is_active(&refresh).await.map_err(fail)?;
    narrator.say(&format!(
        "refresh token {}: introspection said active={active_before} before, active={active_after} after",
        fingerprint(&refresh)
    ));
    narrator.say(&format!(
        "keystore entry {}; end-session URL {}",
        if stored_refresh().is_some() { "still there (!)" } else { "gone" },
        if end.is_some() { "ready (id_token_hint, post_logout_redirect_uri, state)" } else { "not offered" }
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    printing.abort();
    if active_after || old_active || requests != 1 {
        return Err(fail("the demo saw something it should not have (marked with ! above)"));
    }
    Ok(())
}
