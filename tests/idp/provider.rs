//! Starts the bundled local OpenID provider (`tests/idp/server.mjs`) on a free loopback port
//! and plays its user: follows sign-in redirects through the (auto-approved) login and consent,
//! approves device codes, and asks the provider's test endpoints for counts and token state.
//!
//! Shared by the `sessionkit` integration tests and the desktop demo (both include this file
//! with `#[path]`). Every method returns `Result<_, String>` with a message fit for a person.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// The client registered at the provider for SessionKit (a native, public client).
pub const CLIENT_ID: &str = "sessionkit-test";

/// A running provider; dropping it stops the process.
pub struct LocalProvider {
    child: Child,
    _stdin: ChildStdin,
    /// `https://127.0.0.1:<port>`.
    pub issuer: String,
    /// The throwaway CA that signed the provider's certificate.
    pub ca_pem: Vec<u8>,
    /// Where that CA is on disk.
    pub ca_path: PathBuf,
    /// The provider certificate's public-key pin (base64 SHA-256 of its SPKI).
    pub spki_pin: String,
    http: reqwest::Client,
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fail(what: &str) -> impl Fn(reqwest::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl LocalProvider {
    /// One start: the process, its stdin (the provider stops when it closes) and its first
    /// line; `None` if it said nothing within 20 s (it is killed).
    fn spawn(dir: &Path, access_ttl: u64, log: Stdio) -> Result<Option<(Child, ChildStdin, String)>, String> {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(dir)
            .env("IDP_ACCESS_TTL", access_ttl.to_string())
            .env("IDP_AUTO_APPROVE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not start node (is Node.js installed?): {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let (sender, first_line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).map(|_| line);
            let _ = sender.send(read);
            // Keep draining: the provider logs notices to stdout and must never hit a closed pipe.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        match first_line.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(line)) => Ok(Some((child, stdin, line))),
            Ok(Err(e)) => Err(format!("the provider did not start: {e}")),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Ok(None)
            }
        }
    }

    /// Starts `node server.mjs` in `dir` with access tokens living `access_ttl` seconds;
    /// the provider's own log goes to `log`. A stalled start is reported on stderr.
    #[allow(clippy::print_stderr)]
    pub fn start(dir: &Path, access_ttl: u64, log: Stdio) -> Result<Self, String> {
        if !dir.join("node_modules/oidc-provider").exists() {
            return Err(format!(
                "{} has no node_modules: run `npm ci` there (scripts/test and scripts/demo do)",
                dir.display()
            ));
        }
        // The provider has, rarely (about once in a hundred starts under the test suite, never
        // reproduced alone), stalled before saying where it listens. A stalled start is killed
        // and tried again, at most three times, 20 s each, and each stall is reported.
        let mut log = Some(log);
        let mut attempt = 0;
        let (child, stdin, line) = loop {
            attempt += 1;
            let stderr = log.take().unwrap_or_else(Stdio::null);
            match Self::spawn(dir, access_ttl, stderr)? {
                Some(started) => break started,
                None if attempt < 3 => {
                    eprintln!(
                        "the local provider stalled before listening (attempt {attempt} of 3); starting it again"
                    );
                }
                None => {
                    return Err(
                        "the local provider did not start in 3 attempts of 20 s; its log (stderr) says why".into()
                    );
                }
            }
        };
        let info: serde_json::Value =
            serde_json::from_str(&line).map_err(|_| format!("the provider did not start (it said {line:?})"))?;
        let issuer = info["issuer"].as_str().ok_or("no issuer in the provider's answer")?.to_owned();
        let ca_path = PathBuf::from(info["ca"].as_str().ok_or("no CA in the provider's answer")?);
        let ca_pem = std::fs::read(&ca_path).map_err(|e| format!("cannot read the provider's CA: {e}"))?;
        let spki_pin = info["spkiPin"].as_str().unwrap_or_default().to_owned();
        let http = browser(&ca_pem)?;
        Ok(Self { child, _stdin: stdin, issuer, ca_pem, ca_path, spki_pin, http })
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Plays the browser: follows the authorization URL through the provider's login and
    /// consent until it redirects to a loopback URI, and returns that callback URL.
    pub async fn authorize(&self, url: &str) -> Result<String, String> {
        self.authorize_in(&self.http, url).await
    }

    /// As [`authorize`](Self::authorize), in a browser of its own (its own cookies, so its own
    /// session at the provider: another user can sign in there).
    pub async fn authorize_in_new_browser(&self, url: &str) -> Result<String, String> {
        self.authorize_in(&browser(&self.ca_pem)?, url).await
    }

    async fn authorize_in(&self, http: &reqwest::Client, url: &str) -> Result<String, String> {
        let mut next = url.to_owned();
        for _ in 0..12 {
            let response = http.get(&next).send().await.map_err(fail("sign-in"))?;
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("the provider answered {} instead of redirecting", response.status()))?
                .to_owned();
            if location.starts_with("http://127.0.0.1") || location.starts_with("http://[::1]") {
                return Ok(location);
            }
            next = if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location };
        }
        Err("the provider never redirected back".into())
    }

    /// Plays the user on another device: opens the verification page, submits the code,
    /// confirms, and follows the login and consent to the provider's success page.
    pub async fn approve_device(&self, verification_uri_complete: &str) -> Result<(), String> {
        let hidden = |html: &str, name: &str| -> Result<String, String> {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html.find(&marker).ok_or(format!("no {name} in the device page"))? + marker.len();
            let end = html[start..].find('"').ok_or("unterminated value")?;
            Ok(html[start..start + end].to_owned())
        };
        let text = |r: reqwest::Response| async move { r.text().await.map_err(fail("device page")) };
        let page = text(self.http.get(verification_uri_complete).send().await.map_err(fail("device page"))?).await?;
        let device_url = format!("{}/device", self.issuer);
        let form = [("xsrf", hidden(&page, "xsrf")?), ("user_code", hidden(&page, "user_code")?)];
        let page = text(self.http.post(&device_url).form(&form).send().await.map_err(fail("device code"))?).await?;
        let form =
            [("xsrf", hidden(&page, "xsrf")?), ("user_code", hidden(&page, "user_code")?), ("confirm", "yes".into())];
        let mut response = self.http.post(&device_url).form(&form).send().await.map_err(fail("device confirm"))?;
        for _ in 0..12 {
            let Some(location) = response.headers().get("location").and_then(|l| l.to_str().ok()) else { break };
            let next =
                if location.starts_with('/') { format!("{}{location}", self.issuer) } else { location.to_owned() };
            response = self.http.get(&next).send().await.map_err(fail("device sign-in"))?;
        }
        if response.status() == 200 {
            Ok(())
        } else {
            Err(format!("the device sign-in ended with {}", response.status()))
        }
    }

    /// Token endpoint requests by grant type, revocations, introspections, errors.
    pub async fn stats(&self) -> Result<serde_json::Value, String> {
        let response = self.http.get(format!("{}/__test/stats", self.issuer)).send().await.map_err(fail("stats"))?;
        response.json().await.map_err(fail("stats"))
    }

    /// Refresh grants the provider has seen.
    pub async fn refresh_count(&self) -> Result<u64, String> {
        Ok(self.stats().await?["token"]["refresh_token"].as_u64().unwrap_or(0))
    }

    /// Whether the provider still considers `token` active (RFC 7662 introspection).
    pub async fn is_active(&self, token: &str) -> Result<bool, String> {
        let response = self
            .http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("introspector", Some("introspector-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .map_err(fail("introspection"))?;
        let body: serde_json::Value = response.json().await.map_err(fail("introspection"))?;
        body["active"].as_bool().ok_or_else(|| "introspection gave no answer".into())
    }

    /// The status of a call to the provider's protected test API with `token`.
    pub async fn call_api(&self, token: &str) -> Result<u16, String> {
        Ok(self.call_api_with(&format!("Bearer {token}"), None).await?.status)
    }

    /// The protected test API's URL.
    pub fn api_url(&self) -> String {
        format!("{}/__test/api", self.issuer)
    }

    /// A call to the protected test API with these `Authorization` and `DPoP` headers.
    pub async fn call_api_with(&self, authorization: &str, dpop: Option<&str>) -> Result<ApiAnswer, String> {
        let mut request = self.http.get(self.api_url()).header("authorization", authorization);
        if let Some(proof) = dpop {
            request = request.header("dpop", proof);
        }
        let response = request.send().await.map_err(fail("API call"))?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok(ApiAnswer {
            status: response.status().as_u16(),
            www_authenticate: header("www-authenticate"),
            dpop_nonce: header("dpop-nonce"),
        })
    }

    /// Turns the provider's DPoP nonce requirements on or off: at the token endpoint
    /// (node-oidc-provider's `requireNonce`) and at the test API.
    pub async fn require_dpop_nonces(&self, token_endpoint: bool, api: bool) -> Result<(), String> {
        let settings = serde_json::json!({ "tokenNonce": token_endpoint, "apiNonce": api });
        self.http.post(format!("{}/__test/dpop", self.issuer)).json(&settings).send().await.map_err(fail("dpop"))?;
        Ok(())
    }

    /// Queues a fault in the provider's fault layer (see server.mjs).
    pub async fn fault(&self, fault: serde_json::Value) -> Result<(), String> {
        let url = format!("{}/__test/fault", self.issuer);
        self.http.post(url).json(&fault).send().await.map_err(fail("fault"))?;
        Ok(())
    }

    /// Removes queued faults.
    /// Zeroes the provider's counters (`stats`).
    pub async fn reset_stats(&self) -> Result<(), String> {
        self.http.post(format!("{}/__test/reset", self.issuer)).send().await.map_err(fail("reset"))?;
        Ok(())
    }

    pub async fn clear_faults(&self) -> Result<(), String> {
        self.http.post(format!("{}/__test/faults/clear", self.issuer)).send().await.map_err(fail("faults"))?;
        Ok(())
    }

    /// Refreshes with `refresh_token` directly, as another (now dead) process would have.
    pub async fn refresh_directly(&self, refresh_token: &str) -> Result<u16, String> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLIENT_ID)];
        let response =
            self.http.post(format!("{}/token", self.issuer)).form(&form).send().await.map_err(fail("refresh"))?;
        Ok(response.status().as_u16())
    }
}

/// A client playing a browser: trusts only the test CA, keeps cookies, follows no redirect.
fn browser(ca_pem: &[u8]) -> Result<reqwest::Client, String> {
    let certificate = reqwest::Certificate::from_pem(ca_pem).map_err(fail("bad CA"))?;
    reqwest::Client::builder()
        .tls_certs_only([certificate])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(fail("HTTP client"))
}

/// What the test API answered.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub dpop_nonce: Option<String>,
}
