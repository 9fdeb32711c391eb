//! Two users on one device (work and personal), side by side in one store: each signs in,
//! refreshes and signs out alone, and the list survives a restart.

use std::sync::Arc;
use std::time::Duration;

use sessionkit::store::{MemoryStore, SecureStore as _};
use sessionkit::{Accounts, AuthorizeOptions, Error, SessionClient, SessionEvent, SessionPolicy};

use crate::idp::{CLIENT_ID, Idp};
use crate::lifecycle::wait_for;

/// The refresh token stored for `account`.
fn stored_refresh_token(store: &MemoryStore, issuer: &str, account: &str) -> Option<String> {
    let record = store.load(&format!("{issuer}|{CLIENT_ID}|account|{account}")).unwrap()?;
    let value: serde_json::Value = serde_json::from_str(record.expose()).unwrap();
    value["refresh_token"].as_str().map(str::to_owned)
}

/// Signs `client` in as `user`, in a browser of its own (the account switcher's "add account").
async fn sign_in_as(idp: &Idp, client: &SessionClient, user: &str) {
    let options = AuthorizeOptions { login_hint: Some(user.into()), ..AuthorizeOptions::default() };
    let request = client.begin_login(&options).await.unwrap();
    let callback = idp.authorize_in_new_browser(request.url()).await.unwrap();
    client.complete_login(request, &callback).await.unwrap();
}

#[tokio::test]
async fn two_accounts_on_one_store_refresh_and_sign_out_alone() {
    let idp = Idp::start(2);
    let store = Arc::new(MemoryStore::new());
    let accounts = Accounts::new(idp.config(SessionPolicy::default(), store.clone())).unwrap();
    assert!(accounts.names().await.unwrap().is_empty());

    let work = accounts.open("work").await.unwrap();
    let personal = accounts.switch_to("personal").await.unwrap();
    sign_in_as(&idp, &work, "alice").await;
    sign_in_as(&idp, &personal, "bob").await;
    assert_eq!(work.status().unwrap().subject, "alice");
    assert_eq!(personal.status().unwrap().subject, "bob");
    assert_eq!(accounts.names().await.unwrap(), ["work", "personal"]);
    assert_eq!(accounts.current().await.unwrap().as_deref(), Some("personal"));
    let again = accounts.open("work").await.unwrap();
    assert_eq!(
        again.status().unwrap().session_id,
        work.status().unwrap().session_id,
        "opening again: the same session"
    );

    // Each account refreshes its own tokens (2 s access tokens, refreshed at half-life).
    let (mut work_events, mut personal_events) = (work.subscribe(), personal.subscribe());
    let work_first = stored_refresh_token(&store, &idp.issuer, "work").unwrap();
    let personal_first = stored_refresh_token(&store, &idp.issuer, "personal").unwrap();
    wait_for(&mut work_events, Duration::from_secs(10), |e| matches!(e, SessionEvent::Refreshed { .. })).await;
    wait_for(&mut personal_events, Duration::from_secs(10), |e| matches!(e, SessionEvent::Refreshed { .. })).await;
    let work_refresh = stored_refresh_token(&store, &idp.issuer, "work").unwrap();
    let personal_refresh = stored_refresh_token(&store, &idp.issuer, "personal").unwrap();
    assert!(work_refresh != work_first && personal_refresh != personal_first, "both rotated");
    assert_eq!(idp.call_api(&work).await, 200);
    assert_eq!(idp.call_api(&personal).await, 200);

    // Signing the work account out touches nothing of the personal one.
    let end = accounts.remove("work").await.unwrap().expect("the provider has an end-session page");
    assert!(end.url.expose().contains("id_token_hint="));
    assert!(stored_refresh_token(&store, &idp.issuer, "work").is_none(), "work's record is wiped");
    assert!(!idp.is_active(&work_refresh).await, "and its grant revoked");
    assert!(matches!(work.access_token().await, Err(Error::ReauthenticationRequired { .. })));
    assert_eq!(stored_refresh_token(&store, &idp.issuer, "personal").as_deref(), Some(personal_refresh.as_str()));
    assert!(idp.is_active(&personal_refresh).await, "personal's grant is alive");
    assert_eq!(personal.status().unwrap().subject, "bob");
    assert_eq!(idp.call_api(&personal).await, 200);
    assert_eq!(accounts.names().await.unwrap(), ["personal"]);
    drop((work, personal, accounts));

    // A restart finds the list, the current account and its session.
    let restarted = Accounts::new(idp.config(SessionPolicy::default(), store.clone())).unwrap();
    assert_eq!(restarted.names().await.unwrap(), ["personal"]);
    assert_eq!(restarted.current().await.unwrap().as_deref(), Some("personal"));
    let personal = restarted.open("personal").await.unwrap();
    assert_eq!(personal.status().unwrap().subject, "bob");
    personal.access_token().await.unwrap();
}

#[tokio::test]
async fn account_names_are_checked_and_a_damaged_list_is_a_clean_start() {
    let idp = Idp::start(60);
    let store = Arc::new(MemoryStore::new());
    let accounts = Accounts::new(idp.config(SessionPolicy::default(), store.clone())).unwrap();
    for bad in ["", "a|b", "work/../x", "élan", "Work", "alice@example.com", &"x".repeat(65)] {
        let error = accounts.open(bad).await.expect_err(bad);
        assert!(matches!(error, Error::Misconfigured { .. }), "{bad:?}: {error}");
        assert!(error.to_string().contains("account name"), "{error}");
    }
    assert!(accounts.names().await.unwrap().is_empty(), "nothing was listed");

    // A list that does not read is kept aside (not lost), and a new one started.
    let index = format!("{}|{CLIENT_ID}|accounts", idp.issuer);
    store.save(&index, &sessionkit::Secret::new("not json".into())).unwrap();
    assert!(accounts.names().await.unwrap().is_empty());
    accounts.open("work").await.unwrap();
    assert_eq!(accounts.names().await.unwrap(), ["work"], "the list is written afresh");
    assert_eq!(store.load(&format!("{index}|unreadable")).unwrap().unwrap().expose(), "not json");

    // Opening a listed account changes nothing, so it writes nothing (a store refusing writes
    // does not fail it); making it current is a change, which is written (and here refused).
    store.set_writes_fail(true);
    accounts.open("work").await.expect("no write needed");
    let refused = accounts.switch_to("work").await.expect_err("the current account is a change to write");
    assert!(matches!(refused, Error::StorageUnavailable { .. }), "{refused}");
    store.set_writes_fail(false);
    accounts.switch_to("work").await.unwrap();
    assert_eq!(accounts.current().await.unwrap().as_deref(), Some("work"));

    // A list cleaned at reading (a name twice, an invalid one, a current account not listed)
    // is written back clean by the next change, even when that change adds nothing.
    let damaged = r#"{"names":["work","work","Not Valid"],"current":"gone"}"#;
    store.save(&index, &sessionkit::Secret::new(damaged.into())).unwrap();
    assert_eq!(accounts.names().await.unwrap(), ["work"]);
    accounts.open("work").await.unwrap();
    let rewritten: serde_json::Value = serde_json::from_str(store.load(&index).unwrap().unwrap().expose()).unwrap();
    assert_eq!(rewritten["names"], serde_json::json!(["work"]), "{rewritten}");
    assert!(rewritten["current"].is_null(), "{rewritten}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_keep_one_list_and_a_removed_account_opened_again_is_listed_again() {
    let idp = Idp::start(60);
    let store = Arc::new(MemoryStore::new());
    // Two instances on one store and one lock directory (an app and its extension), adding
    // accounts at once on two threads: the index lock keeps every add.
    let app = Arc::new(Accounts::new(idp.config(SessionPolicy::default(), store.clone())).unwrap());
    let extension = Arc::new(Accounts::new(idp.config(SessionPolicy::default(), store.clone())).unwrap());
    let add = |accounts: Arc<Accounts>, names: [&'static str; 3]| {
        tokio::spawn(async move {
            for name in names {
                accounts.open(name).await.unwrap();
            }
        })
    };
    let (first, second) = (add(app.clone(), ["a1", "a2", "a3"]), add(extension.clone(), ["b1", "b2", "b3"]));
    first.await.unwrap();
    second.await.unwrap();
    let mut names = app.names().await.unwrap();
    names.sort();
    assert_eq!(names, ["a1", "a2", "a3", "b1", "b2", "b3"], "no add lost to the other's");

    // The extension holds a1 open; the app removes it; the extension opens it again: listed again.
    app.remove("a1").await.unwrap();
    assert!(!extension.names().await.unwrap().contains(&"a1".to_owned()));
    extension.open("a1").await.unwrap();
    assert!(app.names().await.unwrap().contains(&"a1".to_owned()), "the account in use is listed again");

    // The list is bounded.
    for n in 6..sessionkit::MAX_ACCOUNTS {
        app.open(&format!("n{n}")).await.unwrap();
    }
    assert_eq!(app.names().await.unwrap().len(), sessionkit::MAX_ACCOUNTS);
    let error = app.open("one-too-many").await.unwrap_err();
    assert!(matches!(error, Error::InvalidInput { .. }) && error.to_string().contains("remove one"), "{error}");
    // Room again: the account refused before opens now.
    app.remove("a2").await.unwrap();
    app.open("one-too-many").await.unwrap();
    assert!(app.names().await.unwrap().contains(&"one-too-many".to_owned()));
}
