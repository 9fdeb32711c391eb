//! The real OS keystores: the Secret Service (gnome-keyring in a D-Bus session) and the
//! kernel's keyutils session keyring. scripts/test runs this binary inside both.

use std::sync::Arc;

use sessionkit::store::{KeyringStore, SecureStore};
use sessionkit::{SessionClient, SessionPolicy};

use crate::idp::Idp;

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

    let third = SessionClient::new(idp.config(SessionPolicy::default(), store)).await.unwrap();
    assert!(third.status().is_none(), "logout left nothing in the keystore");
}

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
    let store = Arc::new(KeyringStore::keyutils(&service).expect("keyutils is available"));
    sign_in_restore_and_sign_out(store).await;
}
