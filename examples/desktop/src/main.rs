//! `sessionkit`: the command-line client for SessionKit, and its demo.
//!
//! `sessionkit --help` lists the commands; `sessionkit demo` (via `scripts/demo`) walks through
//! a whole session's life against the bundled local provider.
// A command-line program talks through stdout and stderr; the workspace lint is for libraries.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod cli;
mod commands;
mod demo;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.global.verbose > 0 {
        // SessionKit's own logs only: the HTTP and D-Bus crates below log request details.
        let level = if cli.global.verbose > 1 { "debug" } else { "info" };
        // `sessionkit` is both the library and this binary's crate.
        let filter = format!("sessionkit={level},sessionkit_core={level}");
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo { events_json } => demo::run(events_json).await,
            command => commands::run(&cli.global, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // One line: what went wrong, then what to do next.
            match failure.hint {
                Some(hint) => eprintln!("error: {} (hint: {hint})", failure.message),
                None => eprintln!("error: {}", failure.message),
            }
            ExitCode::from(failure.code)
        }
    }
}
