//! The command line: flags, environment variables and an optional TOML config file, in that
//! order of precedence, resolved into one [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// SessionKit's command-line client: secure OpenID Connect sessions for scripts and terminals.
#[derive(Debug, Parser)]
#[command(name = "sessionkit", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The provider's issuer URL (https).
    #[arg(long, env = "SESSIONKIT_ISSUER", global = true)]
    pub(crate) issuer: Option<String>,
    /// The client id registered at the provider.
    #[arg(long, env = "SESSIONKIT_CLIENT_ID", global = true)]
    pub(crate) client_id: Option<String>,
    /// Scopes beyond openid, space- or comma-separated [default: offline_access]
    #[arg(long, env = "SESSIONKIT_SCOPES", global = true)]
    pub(crate) scopes: Option<String>,
    /// Trust only this CA (PEM) for the provider, instead of the system's roots.
    #[arg(long, env = "SESSIONKIT_CA_FILE", global = true)]
    pub(crate) ca_file: Option<PathBuf>,
    /// Where tokens are kept [default: secret-service]
    #[arg(long, env = "SESSIONKIT_STORE", value_enum, global = true)]
    pub(crate) store: Option<StoreKind>,
    /// Idle timeout in seconds [default: 900]
    #[arg(long, env = "SESSIONKIT_IDLE_TIMEOUT", global = true)]
    pub(crate) idle_timeout: Option<u64>,
    /// Absolute session lifetime in seconds [default: 28800]
    #[arg(long, env = "SESSIONKIT_ABSOLUTE_LIFETIME", global = true)]
    pub(crate) absolute_lifetime: Option<u64>,
    /// Origins `call` may send the access token to, besides the provider's own (repeat, or
    /// comma-separate): https, or http on a loopback address only.
    #[arg(long = "api-origin", env = "SESSIONKIT_API_ORIGINS", value_delimiter = ',', global = true)]
    pub(crate) api_origins: Vec<String>,
    /// A TOML file with any of: issuer, client_id, scopes, ca_file, store, idle_timeout,
    /// absolute_lifetime, api_origins (a list).
    #[arg(long, env = "SESSIONKIT_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log what happens (to stderr); twice for more.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

/// Where the session is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StoreKind {
    /// The desktop keyring over D-Bus (GNOME Keyring, KWallet).
    SecretService,
    /// The kernel's session keyring only (headless machines): gone when the login session
    /// ends, invisible to the user's other login sessions.
    Keyutils,
    /// The kernel's keyrings linked into the user's persistent keyring: survives logout (until
    /// 3 days unused, by default) and is readable from every login session of the user.
    KeyutilsPersistent,
    /// Nowhere: the session ends with the command.
    Memory,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Sign in (system browser with a loopback redirect, or --device).
    Login {
        /// Use the device flow: print a code and a URL to open on another device.
        #[arg(long)]
        device: bool,
        /// Print the sign-in URL instead of opening the browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Show whether you are signed in, as whom, and how long the session has left.
    Status,
    /// Print a fresh access token on stdout (refreshing it if needed), for scripts.
    Token,
    /// Make an authorized request and print the status and body.
    Call {
        /// The URL to call.
        url: String,
        /// The HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
    },
    /// Print session events as they happen, one line each.
    Watch {
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Sign out: wipe the local session, revoke the refresh token, print the end-session URL.
    Logout,
    /// Run the demo: a whole session's life against the bundled local provider.
    Demo {
        /// Print the events as JSON lines instead of the narration (for tests).
        #[arg(long)]
        events_json: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    issuer: Option<String>,
    client_id: Option<String>,
    scopes: Option<String>,
    ca_file: Option<PathBuf>,
    store: Option<StoreKind>,
    idle_timeout: Option<u64>,
    absolute_lifetime: Option<u64>,
    api_origins: Option<Vec<String>>,
}

/// Everything resolved: flags over environment over the config file over defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) store: StoreKind,
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_lifetime: Duration,
    /// Where `call` may send the token: the issuer's origin and the `--api-origin`s.
    pub(crate) api_origins: Vec<String>,
}

impl Global {
    pub(crate) fn settings(&self) -> Result<Settings, String> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{} is not a valid config file: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let issuer = self.issuer.clone().or(file.issuer).ok_or("no issuer: pass --issuer or set SESSIONKIT_ISSUER")?;
        let client_id = self
            .client_id
            .clone()
            .or(file.client_id)
            .ok_or("no client id: pass --client-id or set SESSIONKIT_CLIENT_ID")?;
        let scopes = self.scopes.clone().or(file.scopes).unwrap_or_else(|| "offline_access".into());
        Ok(Settings {
            issuer,
            client_id,
            scopes: scopes.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            ca_file: self.ca_file.clone().or(file.ca_file),
            store: self.store.or(file.store).unwrap_or(StoreKind::SecretService),
            idle_timeout: Duration::from_secs(self.idle_timeout.or(file.idle_timeout).unwrap_or(900)),
            absolute_lifetime: Duration::from_secs(
                self.absolute_lifetime.or(file.absolute_lifetime).unwrap_or(8 * 3600),
            ),
            api_origins: if self.api_origins.is_empty() {
                file.api_origins.unwrap_or_default()
            } else {
                self.api_origins.clone()
            },
        })
    }
}
