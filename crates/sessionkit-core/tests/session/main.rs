//! The session state machine's rules, each driven with a manual clock. One binary, a module
//! per topic (DESIGN.md: tests by layer).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unreachable_pub)]

mod harness;
mod leaks;
mod limits;
mod login;
mod logout;
mod properties;
mod record_v1;
mod record_v2;
mod refresh;
mod restore;
