//! The `sessionkit` binary against the local provider: each command, the demo, and the errors a
//! user meets. Runs inside scripts/test's D-Bus session (the Secret Service is the store).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[allow(unreachable_pub)]
#[path = "../../../tests/idp/provider.rs"]
mod provider;

use provider::LocalProvider;

const BIN: &str = env!("CARGO_BIN_EXE_sessionkit");

fn start(ttl: u64) -> LocalProvider {
    LocalProvider::start(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp"), ttl, Stdio::null())
        .unwrap()
}

fn cli(provider: &LocalProvider) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("SESSIONKIT_ISSUER", &provider.issuer)
        .env("SESSIONKIT_CLIENT_ID", provider::CLIENT_ID)
        .env("SESSIONKIT_CA_FILE", &provider.ca_path)
        .env("SESSIONKIT_STORE", "secret-service")
        .env_remove("SESSIONKIT_CONFIG");
    command
}

fn run(mut command: Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = command.output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

/// Signs in with `login --device`, approving the code as the user would on their phone.
async fn device_login(provider: &LocalProvider) {
    let mut child =
        cli(provider).args(["login", "--device"]).stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let url = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("(or open ").and_then(|rest| rest.strip_suffix(')')).map(str::to_owned))
        .expect("the CLI printed the verification URL");
    provider.approve_device(&url).await.unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8(output.stdout).unwrap().contains("Signed in as alice"));
}

#[tokio::test]
async fn every_command_against_the_provider() {
    let provider = start(60);
    device_login(&provider).await;

    let (code, out, _) = run({
        let mut c = cli(&provider);
        c.args(["status", "--json"]);
        c
    });
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["subject"], "alice");
    assert!(status["store"].as_str().unwrap().contains("Secret Service"));

    let (code, human, _) = run({
        let mut c = cli(&provider);
        c.arg("status");
        c
    });
    assert_eq!(code, 0);
    assert!(human.contains("idle limit") && human.contains("absolute"), "{human}");

    let (code, token, note) = run({
        let mut c = cli(&provider);
        c.arg("token");
        c
    });
    assert_eq!(code, 0);
    assert!(note.contains("DPoP-bound") && note.contains("sessionkit call"), "{note}");
    // The provider offers DPoP, so the token is bound: alone, it is refused.
    assert_eq!(provider.call_api(token.trim()).await.unwrap(), 401);

    let (code, body, err) = run({
        let mut c = cli(&provider);
        c.args(["call", &format!("{}/__test/api", provider.issuer)]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("HTTP 200") && body.contains("hello from the protected API"), "{err} {body}");

    // Issue 11, finding 8: the token goes to allowed origins only, never over plain http.
    for (url, expected) in [
        ("http://127.0.0.2:9/api".to_owned(), "refusing to send the access token to http://127.0.0.2:9"),
        ("http://example.com/api".to_owned(), "not an https origin"),
    ] {
        let (code, _, err) = run({
            let mut c = cli(&provider);
            c.args(["call", &url]);
            c
        });
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expected), "{err}");
    }

    // -vv shows SessionKit's own log, not every request detail of the crates below it.
    let (code, _, err) = run({
        let mut c = cli(&provider);
        c.args(["-vv", "token"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sessionkit"), "{err}");
    assert!(!err.contains("hyper") && !err.contains("zbus") && !err.contains("reqwest::"), "{err}");

    let (code, out, _) = run({
        let mut c = cli(&provider);
        c.args(["logout", "--json"]);
        c
    });
    assert_eq!(code, 0);
    let logout: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(logout["end_session_url"].as_str().unwrap().contains("id_token_hint="));
    assert!(provider.stats().await.unwrap()["revocation"].as_u64().unwrap() >= 1);

    let (code, _, err) = run({
        let mut c = cli(&provider);
        c.arg("token");
        c
    });
    assert_eq!(code, 3, "{err}");
    assert!(
        err.starts_with("error: sign-in required") && err.contains("hint: sign in again with `sessionkit login`"),
        "{err}"
    );
}

#[tokio::test]
async fn watch_prints_events_as_they_happen() {
    let provider = start(60);
    device_login(&provider).await;
    let (code, out, _) = run({
        let mut c = cli(&provider);
        c.args(["watch", "--seconds", "4", "--json", "--idle-timeout", "3"]);
        c
    });
    assert_eq!(code, 0);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    // With a 3 s idle limit (warning at half of it), the warning and the end come while watching.
    assert_eq!(kinds, ["ExpiringSoon", "Expired"], "{out}");
}

#[tokio::test]
async fn a_revoked_session_says_sign_in_again() {
    let provider = start(1);
    device_login(&provider).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    provider
        .fault(serde_json::json!({"path": "/token", "mode": "status", "status": 400, "error": "invalid_grant"}))
        .await
        .unwrap();
    let (code, _, err) = run({
        let mut c = cli(&provider);
        c.arg("token");
        c
    });
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("sign-in required") && err.contains("sessionkit login"), "{err}");
}

#[test]
fn configuration_errors_are_one_clear_line() {
    let cases = [
        ("http://127.0.0.1:9/", 2, "must use https"),
        ("https://127.0.0.1:1", 4, "try again"),
        ("not a url", 2, "valid absolute URL"),
    ];
    for (issuer, expected, text) in cases {
        let (code, _, err) = run({
            let mut c = Command::new(BIN);
            c.args(["status", "--issuer", issuer, "--client-id", "x", "--store", "memory"]);
            c
        });
        assert_eq!(code, expected, "{issuer}: {err}");
        assert!(err.lines().count() == 1 && err.starts_with("error: ") && err.contains("(hint: "), "{issuer}: {err}");
        assert!(err.contains(text), "{issuer}: {err}");
    }
    let (code, _, err) = run({
        let mut c = Command::new(BIN);
        c.arg("status").env_remove("SESSIONKIT_ISSUER");
        c
    });
    assert_eq!(code, 2);
    assert!(err.contains("no issuer"), "{err}");
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let provider = start(60);
    // The provider's discovery document names its own issuer, not this one.
    let (code, _, err) = run({
        let mut c = cli(&provider);
        c.args(["status", "--issuer", &provider.issuer.replace("127.0.0.1", "localhost")]);
        c
    });
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("discovery document names issuer"), "{err}");
}

#[test]
fn an_unreachable_keystore_is_an_error_not_an_empty_session() {
    let (code, _, err) = run({
        let mut c = Command::new(BIN);
        c.args(["status", "--issuer", "https://127.0.0.1:1", "--client-id", "x", "--store", "secret-service"])
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
        c
    });
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("Secret Service is not available") && err.contains("hint: start a desktop keyring"), "{err}");
}

#[test]
fn the_demo_runs_its_whole_session_life() {
    let (code, out, err) = run({
        let mut c = Command::new(BIN);
        c.args(["demo", "--events-json"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["LoggedIn", "Refreshed", "Refreshed", "ExpiringSoon", "Expired", "LoggedIn", "LoggedOut"],
        "{out}"
    );
    assert_eq!(events[1]["rotated"], true);
    assert_eq!(events[3]["reason"], "Idle");
    assert_eq!(events[4]["reason"], "IdleTimeout");
}
