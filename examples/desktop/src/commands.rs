//! The commands other than the demo: each builds a client from the settings and does one job.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use sessionkit::http::HttpOptions;
use sessionkit::store::{KeyringStore, KeyutilsStore, MemoryStore, SecureStore};
use sessionkit::{SessionClient, SessionConfig, SessionPolicy, UnixTime};

use crate::cli::{Command, Global, Settings, StoreKind};
use crate::output::{Failure, clock, describe, event_json, seconds};

/// The service name under which the CLI keeps sessions in the keystore.
const SERVICE: &str = "sessionkit-cli";

pub(crate) fn open_store(kind: StoreKind, service: &str) -> Result<Arc<dyn SecureStore>, Failure> {
    let unavailable = |e: sessionkit::store::StoreError, what: &str| Failure {
        message: format!("{what} is not available: {e}"),
        hint: Some("start a desktop keyring, or choose --store keyutils (or memory)".into()),
        code: 5,
    };
    Ok(match kind {
        StoreKind::SecretService => {
            Arc::new(KeyringStore::secret_service(service).map_err(|e| unavailable(e, "the Secret Service"))?)
        }
        StoreKind::Keyutils => {
            Arc::new(KeyutilsStore::session(service).map_err(|e| unavailable(e, "the kernel's session keyring"))?)
        }
        StoreKind::KeyutilsPersistent => Arc::new(
            KeyringStore::keyutils_persistent(service)
                .map_err(|e| unavailable(e, "the kernel's persistent keyring"))?,
        ),
        StoreKind::Memory => Arc::new(MemoryStore::new()),
    })
}

pub(crate) fn http_options(ca_file: Option<&std::path::Path>) -> Result<HttpOptions, Failure> {
    let mut options = HttpOptions::default();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read the CA file {}: {e}", path.display())))?;
        options.trust_only_roots_pem = vec![pem];
    }
    Ok(options)
}

fn policy(settings: &Settings) -> Result<SessionPolicy, Failure> {
    let warning = (settings.idle_timeout / 2).min(Duration::from_secs(120));
    SessionPolicy::builder()
        .idle_timeout(settings.idle_timeout)
        .absolute_lifetime(settings.absolute_lifetime)
        .warning_lead(warning)
        .build()
        .map_err(|e| Failure::usage(format!("invalid session limits: {e}")))
}

async fn connect(settings: &Settings) -> Result<SessionClient, Failure> {
    let scopes: Vec<&str> = settings.scopes.iter().map(String::as_str).collect();
    let config = SessionConfig::builder(&settings.issuer, &settings.client_id)
        .scopes(&scopes)
        .policy(policy(settings)?)
        .store(open_store(settings.store, SERVICE)?)
        .http(http_options(settings.ca_file.as_deref())?)
        .build()?;
    Ok(SessionClient::new(config).await?)
}

fn until(at: UnixTime) -> String {
    let now = UnixTime::from_millis(
        u64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
        )
        .unwrap_or(u64::MAX),
    );
    seconds(at.saturating_duration_since(now))
}

/// Draws a spinner on stderr until dropped (only on a terminal).
struct Spinner(Option<tokio::task::JoinHandle<()>>);

impl Spinner {
    fn start(text: &'static str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        Self(Some(tokio::spawn(async move {
            for frame in ["|", "/", "-", "\\"].iter().cycle() {
                eprint!("\r{frame} {text}");
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        })))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            eprint!("\r\x1b[2K");
        }
    }
}

pub(crate) async fn run(global: &Global, command: Command) -> Result<(), Failure> {
    let settings = global.settings()?;
    let client = connect(&settings).await?;
    match command {
        Command::Login { device, no_browser } => login(&client, device, no_browser, global.json).await,
        Command::Status => {
            status(&client, global.json);
            Ok(())
        }
        Command::Token => {
            let token = client.access_token().await?;
            client.record_activity().await;
            // Printing the token is this command's purpose (for scripts); nothing else prints it.
            println!("{}", token.expose());
            if client.token_type().as_deref() == Some("DPoP") {
                eprintln!(
                    "note: this token is DPoP-bound: an API accepts it only with a proof of this \
                     session's key; use `sessionkit call <url>` to call an API with it"
                );
            }
            Ok(())
        }
        Command::Call { url, method } => call(&client, &settings, &url, &method, global.json).await,
        Command::Watch { seconds } => watch(&client, seconds, global.json).await,
        Command::Logout => logout(&client, global.json).await,
        Command::Demo { .. } => Err(Failure::usage("the demo is its own command")),
    }
}

async fn login(client: &SessionClient, device: bool, no_browser: bool, json: bool) -> Result<(), Failure> {
    if device {
        let spinner = std::sync::Mutex::new(None);
        let show = |code: &sessionkit::DeviceCode| {
            eprintln!("To sign in, open {} and enter the code {}", code.verification_uri, code.user_code);
            if let Some(complete) = &code.verification_uri_complete {
                eprintln!("(or open {complete})");
            }
            if let Ok(mut slot) = spinner.lock() {
                *slot = Some(Spinner::start("waiting for you to approve the sign-in..."));
            }
        };
        let result = client.login_with_device(show).await;
        drop(spinner);
        result?;
    } else {
        let open = |url: &str| {
            if no_browser
                || std::process::Command::new("xdg-open").arg(url).status().map(|s| !s.success()).unwrap_or(true)
            {
                eprintln!("Open this URL in your browser to sign in:\n{url}");
            }
            Ok(())
        };
        let _spinner = Spinner::start("waiting for the browser...");
        client.login_with_browser(Default::default(), open, Duration::from_secs(300)).await?;
    }
    let status = client.status().ok_or_else(|| Failure::usage("the sign-in did not produce a session"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "signed_in": true, "subject": status.subject, "display_name": status.display_name,
                "session_id": status.session_id,
            })
        );
    } else {
        println!("Signed in as {} (stored in {}).", who(&status), client.store_description());
    }
    Ok(())
}

/// The user as people know them: the display name, with the provider's id beside it.
fn who(status: &sessionkit::SessionStatus) -> String {
    match &status.display_name {
        Some(name) if *name != status.subject => format!("{name} ({})", status.subject),
        _ => status.subject.clone(),
    }
}

fn status(client: &SessionClient, json: bool) {
    let Some(status) = client.status() else {
        let reason = client.end_reason().unwrap_or(sessionkit::EndReason::NotSignedIn);
        if json {
            println!(
                "{}",
                serde_json::json!({ "signed_in": false, "reason": reason.name(), "store": client.store_description() })
            );
        } else {
            println!("Not signed in: {}. Sessions are kept in {}.", reason.explanation(), client.store_description());
        }
        return;
    };
    if json {
        let ms = |at: UnixTime| at.as_millis();
        println!(
            "{}",
            serde_json::json!({
                "signed_in": true,
                "subject": status.subject,
                "display_name": status.display_name,
                "session_id": status.session_id,
                "access_token_expires_at_ms": ms(status.access_expires_at),
                "refresh_due_at_ms": ms(status.refresh_due_at),
                "idle_deadline_ms": ms(status.idle_deadline),
                "absolute_deadline_ms": ms(status.absolute_deadline),
                "has_refresh_token": status.has_refresh_token,
                "acr": status.acr,
                "authenticated_at_ms": status.authenticated_at.map(ms),
                "store": client.store_description(),
            })
        );
    } else {
        println!(
            "Signed in as {} (session {}).",
            who(&status),
            status.session_id.get(..8).unwrap_or(&status.session_id)
        );
        println!(
            "  access token: expires in {} (refresh due in {})",
            until(status.access_expires_at),
            until(status.refresh_due_at)
        );
        println!("  idle limit:   {} left without activity", until(status.idle_deadline));
        println!("  absolute:     {} left", until(status.absolute_deadline));
        if let Some(acr) = &status.acr {
            println!("  signed in with: {acr} (the provider's authentication context)");
        }
        println!("  stored in:    {}", client.store_description());
    }
}

async fn call(client: &SessionClient, settings: &Settings, url: &str, method: &str, json: bool) -> Result<(), Failure> {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::usage(format!("not an HTTP method: {method}")))?;
    let target = crate::api::allowed_target(url, &settings.issuer, &settings.api_origins)?;
    client.record_activity().await;
    // A redirect is shown, not followed: the token goes to the allowed origin only.
    let mut builder =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = http_options(settings.ca_file.as_deref())?.trust_only_roots_pem.first() {
        let certificate =
            reqwest::Certificate::from_pem(pem).map_err(|e| Failure::usage(format!("bad CA file: {e}")))?;
        builder = builder.tls_certs_only([certificate]);
    }
    let http = builder.build().map_err(|e| Failure::usage(format!("HTTP client: {e}")))?;
    // The session's headers (a fresh DPoP proof per request when the tokens are DPoP-bound);
    // sent once more if the API asks for its DPoP nonce.
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        let headers = client.authorize(method.as_str(), target.as_str()).await?;
        let mut request =
            http.request(method.clone(), target.clone()).header("authorization", headers.authorization.expose());
        if let Some(proof) = &headers.dpop {
            request = request.header("dpop", proof.expose());
        }
        let response = request.send().await.map_err(|e| Failure {
            message: format!("the call failed: {e}"),
            hint: Some("check the URL".into()),
            code: 4,
        })?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let again = client.note_api_response(
            target.as_str(),
            response.status().as_u16(),
            header("www-authenticate"),
            header("dpop-nonce"),
        );
        if !again || attempt >= 2 {
            break response;
        }
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if json {
        println!("{}", serde_json::json!({ "status": status, "body": body }));
    } else {
        eprintln!("HTTP {status}");
        println!("{body}");
    }
    if status == 401 {
        return Err(Failure {
            message: "the API refused the token (401)".into(),
            hint: Some("the session may have been revoked: run `sessionkit login`".into()),
            code: 3,
        });
    }
    Ok(())
}

async fn watch(client: &SessionClient, seconds: Option<u64>, json: bool) -> Result<(), Failure> {
    let mut events = client.subscribe();
    if !json {
        eprintln!("Watching session events (Ctrl-C to stop)...");
    }
    let limit = tokio::time::sleep(Duration::from_secs(seconds.unwrap_or(u64::MAX / 4)));
    tokio::pin!(limit);
    loop {
        tokio::select! {
            () = &mut limit => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = events.recv() => match event {
                Ok(event) if json => println!("{}", event_json(&event)),
                Ok(event) => println!("{} {}", clock(), describe(&event)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("({n} events missed)"),
                Err(_) => return Ok(()),
            },
        }
    }
}

async fn logout(client: &SessionClient, json: bool) -> Result<(), Failure> {
    let signed_in = client.status().is_some();
    let end = client.logout().await?;
    if json {
        let url = end.as_ref().map(|e| e.url.expose().to_owned());
        println!("{}", serde_json::json!({ "was_signed_in": signed_in, "end_session_url": url }));
    } else {
        println!(
            "{}",
            if signed_in {
                "Signed out: local session wiped, refresh token revoked."
            } else {
                "Not signed in; nothing to wipe."
            }
        );
        if let Some(end) = end {
            println!("To end the provider's session too, open:\n{}", end.url.expose());
        }
    }
    Ok(())
}
