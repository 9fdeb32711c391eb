//! The real OS keystores: the Secret Service (gnome-keyring in a D-Bus session) and the
//! kernel's keyutils session keyring. scripts/test runs this binary inside both.

use std::sync::Arc;
#[cfg(feature = "secret-service")]
use std::time::Duration;

#[cfg(feature = "secret-service")]
use sessionkit::SessionConfig;
#[cfg(feature = "secret-service")]
use sessionkit::http::HttpOptions;
#[cfg(feature = "secret-service")]
use sessionkit::store::KeyringStore;
use sessionkit::store::{KeyutilsStore, SecureStore};
use sessionkit::{SessionClient, SessionPolicy};

use crate::idp::{CLIENT_ID, Idp};

#[cfg(feature = "secret-service")]
fn require_session_bus() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "no D-Bus session: run the tests through scripts/test, which starts gnome-keyring in one"
    );
}

async fn sign_in_restore_and_sign_out(store: Arc<dyn SecureStore>) {
    let idp = Idp::start(60);
    let first = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    idp.login(&first).await;
    let token = first.access_token().await.unwrap();
    drop(first);

    // A new client (a restarted app) finds the session in the keystore.
    let second = SessionClient::new(idp.config(SessionPolicy::default(), store.clone())).await.unwrap();
    assert_eq!(second.status().unwrap().subject, "alice");
    assert_eq!(second.access_token().await.unwrap().expose(), token.expose());
    second.logout().await.unwrap();

    let key = format!("{}|{CLIENT_ID}", idp.issuer);
    for suffix in ["", "|provider", "|revocations"] {
        assert!(store.load(&format!("{key}{suffix}")).unwrap().is_none(), "logout left {key}{suffix} in the keystore");
    }
    let third = SessionClient::new(idp.config(SessionPolicy::default(), store)).await.unwrap();
    assert!(third.status().is_none());
}

#[cfg(feature = "secret-service")]
#[tokio::test]
async fn secret_service_keeps_the_session_across_restarts() {
    require_session_bus();
    let service = format!("sessionkit-test-{}", std::process::id());
    let store = Arc::new(KeyringStore::secret_service(&service).expect("the Secret Service is reachable"));
    assert!(store.describe().contains("Secret Service"));
    sign_in_restore_and_sign_out(store).await;
}

#[tokio::test]
async fn kernel_keyutils_keeps_the_session_across_restarts() {
    let service = format!("sessionkit-test-{}", std::process::id());
    let store = Arc::new(KeyutilsStore::session(&service).expect("keyutils is available"));
    sign_in_restore_and_sign_out(store).await;
}

/// Issue 11, finding 7: `--store keyutils` keeps the session in the session keyring only, never
/// linked into the user's persistent keyring (which outlives logout and other sessions see).
#[test]
fn the_keyutils_store_keeps_values_in_the_session_keyring_only() {
    let service = format!("sessionkit-test-only-session-{}", std::process::id());
    let store = KeyutilsStore::session(&service).expect("keyutils is available");
    store.save("probe", &sessionkit::Secret::from("secret-value")).unwrap();
    assert_eq!(store.load("probe").unwrap().map(|s| s.expose().to_owned()).as_deref(), Some("secret-value"));
    let description = format!("sessionkit:{service}:probe");
    let in_session = keyctl(&["search", "@s", "user", &description]);
    assert!(in_session.is_some(), "the value is in the session keyring");
    // The persistent keyring (created on demand by this query) does not hold it.
    let persistent = keyctl(&["get_persistent", "@s"]).expect("a persistent keyring");
    let linked = keyctl(&["rlist", persistent.trim()]).unwrap_or_default();
    assert!(!linked.split_whitespace().any(|id| Some(id) == in_session.as_deref().map(str::trim)), "{linked}");
    // A key of the same name in a keyring linked into the session keyring (here the persistent
    // one) is not this store's: it is neither read nor deleted.
    let other = format!("sessionkit:{service}:elsewhere");
    keyctl(&["add", "user", &other, "not-ours", persistent.trim()]).expect("a key in the persistent keyring");
    assert!(store.load("elsewhere").unwrap().is_none(), "a key outside the session keyring is not read");
    store.delete("elsewhere").unwrap();
    let left = keyctl(&["search", persistent.trim(), "user", &other]).expect("nor deleted");
    // Nothing of the test stays in the persistent keyring (it outlives the test's session).
    keyctl(&["invalidate", left.trim()]).expect("cleaned up");
    // Deleted: at once absent for the store, even before the kernel collects the dead key
    // (a search finds it, revoked, until then); several rounds, as the collector's timing varies.
    for round in 0..20 {
        store.save("probe", &sessionkit::Secret::from(format!("value-{round}"))).unwrap();
        store.delete("probe").unwrap();
        assert!(store.load("probe").unwrap().is_none(), "round {round}");
        store.delete("probe").unwrap();
    }
    assert!(keyctl(&["search", "@s", "user", &description]).is_none(), "deleted from the kernel");
    // Larger than a kernel user key can hold: refused, nothing written.
    let large = sessionkit::Secret::new("x".repeat(40_000));
    assert!(matches!(store.save("large", &large), Err(sessionkit::store::StoreError::TooLarge)));
}

/// Runs `keyctl` and gives its output, or `None` if it failed.
fn keyctl(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("keyctl").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(feature = "secret-service")]
fn lazy() -> SessionPolicy {
    SessionPolicy::builder().background_refresh(false).build().unwrap()
}

#[cfg(feature = "secret-service")]
fn shared_config(issuer: &str, ca_pem: Vec<u8>, service: &str, lock_dir: &str) -> SessionConfig {
    let store = Arc::new(KeyringStore::secret_service(service).expect("the Secret Service is reachable"));
    SessionConfig::builder(issuer, CLIENT_ID)
        .policy(lazy())
        .store(store)
        .http(HttpOptions { trust_only_roots_pem: vec![ca_pem], ..HttpOptions::default() })
        .lock_dir(lock_dir.into())
        .build()
        .unwrap()
}

/// FNV-1a of a token: lets the helper process report which token it got without printing it.
#[cfg(feature = "secret-service")]
fn fingerprint(token: &str) -> String {
    let hash = token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

#[cfg(feature = "secret-service")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_the_secret_service_refresh_once() {
    require_session_bus();
    let idp = Idp::start(2);
    let service = format!("sessionkit-two-processes-{}", std::process::id());
    let lock_dir = std::env::temp_dir().join(format!("sessionkit-two-processes-{}", std::process::id()));
    // FileLock creates the directory itself, private to the user (0700 whatever the umask).
    let lock_dir = lock_dir.to_str().unwrap().to_owned();
    let ca_file = std::env::temp_dir().join(format!("sessionkit-two-processes-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &idp.ca_pem).unwrap();

    let client = SessionClient::new(shared_config(&idp.issuer, idp.ca_pem.clone(), &service, &lock_dir)).await.unwrap();
    idp.login(&client).await;
    tokio::time::sleep(Duration::from_millis(2200)).await; // the access token has expired

    // The second process: this test binary again, running only the helper below.
    let helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "keyring::helper_second_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env("SESSIONKIT_HELPER_ISSUER", &idp.issuer)
        .env("SESSIONKIT_HELPER_CA", &ca_file)
        .env("SESSIONKIT_HELPER_SERVICE", &service)
        .env("SESSIONKIT_HELPER_LOCK_DIR", &lock_dir)
        .output();
    let (ours, helper) = tokio::join!(client.access_token(), helper);
    let ours = ours.unwrap();
    let helper = helper.unwrap();
    let stdout = String::from_utf8_lossy(&helper.stdout);
    assert!(helper.status.success(), "the helper failed: {stdout}");
    let theirs = stdout
        .lines()
        .find_map(|l| l.split("helper-token=").nth(1).map(str::trim))
        .unwrap_or_else(|| panic!("the helper reported no token: {stdout}"));
    assert_eq!(theirs, fingerprint(ours.expose()), "both processes hold the same, once-rotated token");
    assert_eq!(idp.refresh_count().await, 1, "one refresh between two processes");
    assert_eq!(idp.stats().await["tokenErrors"], serde_json::json!({}), "no replayed refresh token");
    assert_eq!(idp.call_api(&client).await, 200);
    client.logout().await.unwrap();
    let _ = std::fs::remove_file(ca_file);
}

#[cfg(feature = "secret-service")]
#[tokio::test]
#[ignore = "the second process of two_processes_sharing_the_secret_service_refresh_once"]
async fn helper_second_process() {
    let (Ok(issuer), Ok(ca), Ok(service), Ok(lock_dir)) = (
        std::env::var("SESSIONKIT_HELPER_ISSUER"),
        std::env::var("SESSIONKIT_HELPER_CA"),
        std::env::var("SESSIONKIT_HELPER_SERVICE"),
        std::env::var("SESSIONKIT_HELPER_LOCK_DIR"),
    ) else {
        panic!("run only by two_processes_sharing_the_secret_service_refresh_once");
    };
    let config = shared_config(&issuer, std::fs::read(ca).unwrap(), &service, &lock_dir);
    let client = SessionClient::new(config).await.unwrap();
    assert!(client.status().is_some(), "the helper restored the shared session");
    let token = client.access_token().await.unwrap();
    println!("\nhelper-token={}", fingerprint(token.expose()));
}
