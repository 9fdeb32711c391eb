//! `sessionkit` against the real local OpenID provider (tests/idp: node-oidc-provider over TLS
//! on 127.0.0.1 with a CA made at start). One binary, a module per topic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub, clippy::print_stderr)]
#![cfg(not(target_arch = "wasm32"))]

mod accounts;
mod callbacks;
mod concurrency;
mod dpop;
mod failures;
mod idp;
mod keyring;
mod lifecycle;
mod startup;
