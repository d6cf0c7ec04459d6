//! The HTTP(S) remote: GET and PUT (HEAD for presence) of the cache layout under a base URL,
//! over TLS where the URL says `https`, with a bearer token or basic auth from `~/.netrc`.
//!
//! The remote is an optimisation, so it never holds a run for long (README, "Remote caches"):
//! - every request has a deadline: [`TIMEOUT_VAR`] seconds (default 30) for its answer and a
//!   record's body, plus one second per [`MIN_RATE`] bytes of a blob's declared size;
//! - the time spent waiting on the remote adds up, and past [`BUDGET_VAR`] seconds (default 120)
//!   in one process the remote is switched off;
//! - a request that times out or cannot connect switches the remote off as well.
//!
//! Once off, every call fails at once and the run goes on locally; the first such failure is
//! reported. Redirects are followed (at most five) only to `http` and `https` URLs, and the
//! credentials go only to the base URL's host.
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nasflow_contract::boundary::{redact_url, redirect_target, MAX_REDIRECTS};

use super::{blob_rel, OpenError, Remote, RemoteError, Store, MAX_DOC};
use crate::cache::{Cache, Digest, Result};

/// An HTTP cache server.
pub struct Http {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header's value; never printed.
    auth: Option<String>,
    timeout: Duration,
    budget: Duration,
    /// Nanoseconds spent waiting on the remote so far.
    spent: AtomicU64,
    /// Switched off for the rest of the process.
    off: AtomicBool,
}

/// The environment variable holding a bearer token for the HTTP remote.
pub const TOKEN_VAR: &str = "NASFLOW_REMOTE_TOKEN";
/// The environment variable naming a PEM file of CA certificates to trust besides the system's.
pub const CA_VAR: &str = "NASFLOW_REMOTE_CA";
/// Seconds a remote request may take before the remote is switched off (default 30).
pub const TIMEOUT_VAR: &str = "NASFLOW_REMOTE_TIMEOUT";
/// Seconds a process may wait on the remote in all before it is switched off (default 120).
pub const BUDGET_VAR: &str = "NASFLOW_REMOTE_BUDGET";
/// The slowest transfer rate a blob download is given time for, in bytes per second.
pub const MIN_RATE: u64 = 1 << 20;

fn seconds_var(name: &str, default: f64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

impl Http {
    pub fn new(base: &str) -> std::result::Result<Http, OpenError> {
        let base = base.trim_end_matches('/').to_string();
        let timeout = seconds_var(TIMEOUT_VAR, 30.0);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout_read(timeout)
            .timeout_write(timeout)
            .redirects(0)
            .tls_config(Arc::new(tls_config()?))
            .build();
        let auth = match std::env::var(TOKEN_VAR) {
            Ok(token) if !token.is_empty() => Some(format!("Bearer {token}")),
            _ => host_of(&base)
                .and_then(netrc_login)
                .map(|(user, password)| {
                    let pair = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    format!("Basic {pair}")
                }),
        };
        Ok(Http {
            base,
            agent,
            auth,
            timeout,
            budget: seconds_var(BUDGET_VAR, 120.0),
            spent: AtomicU64::new(0),
            off: AtomicBool::new(false),
        })
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// The URL as it may be printed: without credentials.
    fn shown(&self, rel: &str) -> String {
        redact_url(&self.url(rel))
    }

    fn request(&self, method: &str, url: &str, deadline: Duration) -> ureq::Request {
        let r = self.agent.request(method, url).timeout(deadline);
        let same_host = host_of(url) == host_of(&self.base);
        match &self.auth {
            Some(a) if same_host => r.set("Authorization", a),
            _ => r,
        }
    }

    fn transport(&self, op: &'static str, rel: &str, reason: String) -> RemoteError {
        RemoteError::Transport {
            op,
            target: self.shown(rel),
            reason,
        }
    }

    /// A ureq error as a remote problem (401 and 403 say what to fix; the URL, never the token).
    /// A timeout or a failed connection switches the remote off.
    fn problem(&self, op: &'static str, rel: &str, e: ureq::Error) -> RemoteError {
        match e {
            ureq::Error::Status(status @ (401 | 403), _) => RemoteError::Auth {
                target: self.shown(rel),
                status,
            },
            ureq::Error::Status(status, _) => self.transport(op, rel, format!("HTTP {status}")),
            ureq::Error::Transport(t) => {
                let reason = transport_reason(&t);
                self.switch_off();
                self.transport(
                    op,
                    rel,
                    format!("{reason}; the remote is off for the rest of this run"),
                )
            }
        }
    }

    fn switch_off(&self) {
        self.off.store(true, Ordering::Relaxed);
    }

    /// Fails at once when the remote is off (after a timeout, or past its budget).
    fn check_on(&self, op: &'static str, rel: &str) -> Remote<()> {
        let spent = Duration::from_nanos(self.spent.load(Ordering::Relaxed));
        if spent > self.budget {
            self.switch_off();
        }
        if self.off.load(Ordering::Relaxed) {
            return Err(self.transport(
                op,
                rel,
                format!(
                    "the remote is off for this run (a request timed out or failed to connect, or it took more than {BUDGET_VAR}={}s in all)",
                    self.budget.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }

    fn charge(&self, since: Instant) {
        let ns = since.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.spent.fetch_add(ns, Ordering::Relaxed);
    }

    /// Sends a body-less request, following redirects to http(s) URLs only. A deadline covers
    /// the whole request, its body included; `expect` is the body's size where it is known.
    fn call(
        &self,
        method: &str,
        op: &'static str,
        rel: &str,
        expect: u64,
    ) -> Remote<Option<ureq::Response>> {
        self.check_on(op, rel)?;
        let deadline = self.timeout + Duration::from_secs(expect / MIN_RATE);
        let mut url = self.url(rel);
        let since = Instant::now();
        let result = (|| {
            for _ in 0..=MAX_REDIRECTS {
                let r = match self.request(method, &url, deadline).call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) => return Ok(None),
                    Err(e) => return Err(self.problem(op, rel, e)),
                };
                if !(300..400).contains(&r.status()) {
                    return Ok(Some(r));
                }
                let location = r.header("Location").unwrap_or("").to_string();
                url =
                    redirect_target(&url, &location).map_err(|why| self.transport(op, rel, why))?;
            }
            Err(self.transport(op, rel, format!("more than {MAX_REDIRECTS} redirects")))
        })();
        self.charge(since);
        result
    }

    fn put(&self, rel: &str, body: impl Read, size: u64) -> Remote<()> {
        self.check_on("PUT", rel)?;
        let deadline = self.timeout + Duration::from_secs(size / MIN_RATE);
        let since = Instant::now();
        let r = self
            .request("PUT", &self.url(rel), deadline)
            .send(body)
            .map_err(|e| self.problem("PUT", rel, e))
            .and_then(|r| match r.status() {
                300..=399 => Err(self.transport(
                    "PUT",
                    rel,
                    format!(
                        "HTTP {} (a redirect; set the remote's URL to where it leads)",
                        r.status()
                    ),
                )),
                _ => Ok(()),
            });
        self.charge(since);
        r
    }
}

impl Store for Http {
    fn describe(&self) -> String {
        redact_url(&self.base)
    }
    fn has_blob(&self, digest: &Digest) -> Remote<bool> {
        Ok(self.call("HEAD", "HEAD", &blob_rel(digest), 0)?.is_some())
    }
    fn put_blob(&self, digest: &Digest, file: &Path) -> Remote<()> {
        let unreadable = |e: std::io::Error| RemoteError::Transport {
            op: "read",
            target: file.display().to_string(),
            reason: e.to_string(),
        };
        let f = std::fs::File::open(file).map_err(unreadable)?;
        let size = f.metadata().map_err(unreadable)?.len();
        self.put(&blob_rel(digest), f, size)
    }
    fn get_blob(&self, digest: &Digest, size: u64, local: &Cache) -> Result<Remote<()>> {
        let r = match self.call("GET", "GET", &blob_rel(digest), size) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Ok(Err(RemoteError::Missing(format!(
                    "blob {digest} missing on {}",
                    self.describe()
                ))))
            }
            Err(e) => return Ok(Err(e)),
        };
        let since = Instant::now();
        let got = local.import_blob(&mut r.into_reader(), digest, size)?;
        self.charge_body(since, size);
        if matches!(got, Err(super::Rejection::Truncated(_))) {
            // A body that stalls past its deadline ends the remote's part in this run.
            self.switch_off();
        }
        Ok(got.map_err(|why| RemoteError::Rejected {
            what: format!("blob {digest}"),
            why,
        }))
    }
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>> {
        let Some(r) = self.call("GET", "GET", rel, 0)? else {
            return Ok(None);
        };
        let since = Instant::now();
        let mut bytes = Vec::new();
        let read = r.into_reader().take(MAX_DOC).read_to_end(&mut bytes);
        self.charge_body(since, 0);
        read.map_err(|e| {
            self.switch_off();
            self.transport(
                "GET",
                rel,
                format!("{e}; the remote is off for the rest of this run"),
            )
        })?;
        Ok(Some(bytes))
    }
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()> {
        self.put(rel, bytes, bytes.len() as u64)
    }
}

impl Http {
    /// Charges the time a body took beyond what its size at [`MIN_RATE`] allows (the answer
    /// itself was charged by [`Http::call`]).
    fn charge_body(&self, since: Instant, size: u64) {
        let allowed = Duration::from_secs(size / MIN_RATE);
        let over = since.elapsed().saturating_sub(allowed);
        let ns = over.as_nanos().min(u64::MAX as u128) as u64;
        self.spent.fetch_add(ns, Ordering::Relaxed);
    }
}

/// What went wrong in a transport error, without its URL (the caller names it once).
fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    };
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        reason.push_str(&format!(": {s}"));
        source = s.source();
    }
    reason
}

/// rustls with the webpki roots and, from `NASFLOW_REMOTE_CA`, the user's own CA certificates.
fn tls_config() -> std::result::Result<rustls::ClientConfig, OpenError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = std::env::var_os(CA_VAR) {
        use rustls_pki_types::pem::PemObject;
        let bad =
            |why: String| OpenError::Tls(format!("{CA_VAR}={}: {why}", Path::new(&ca).display()));
        let certs =
            rustls_pki_types::CertificateDer::pem_file_iter(&ca).map_err(|e| bad(e.to_string()))?;
        let mut n = 0;
        for cert in certs {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad("no PEM certificate in the file".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Tls(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// `host` of `scheme://host[:port]/...`.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    Some(host.to_string())
}

/// The login and password of `host` in `$NETRC` or `~/.netrc` (the `default` entry otherwise).
/// A small reader of the format's tokens: `machine`, `default`, `login`, `password`.
fn netrc_login(host: String) -> Option<(String, String)> {
    let path = std::env::var_os("NETRC")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".netrc")))?;
    parse_netrc(&std::fs::read_to_string(path).ok()?, &host)
}

fn parse_netrc(text: &str, host: &str) -> Option<(String, String)> {
    let mut tokens = text.split_whitespace();
    let (mut found, mut fallback) = (None, None);
    let mut current: Option<(bool, Option<String>, Option<String>)> = None;
    let mut finish = |c: Option<(bool, Option<String>, Option<String>)>| {
        if let Some((exact, Some(l), Some(p))) = c {
            if exact {
                found.get_or_insert((l, p));
            } else {
                fallback.get_or_insert((l, p));
            }
        }
    };
    while let Some(t) = tokens.next() {
        match t {
            "machine" => {
                finish(current.take());
                let m = tokens.next()?;
                current = (m == host).then_some((true, None, None));
            }
            "default" => {
                finish(current.take());
                current = Some((false, None, None));
            }
            "login" => {
                let v = tokens.next()?.to_string();
                if let Some(c) = &mut current {
                    c.1 = Some(v);
                }
            }
            "password" => {
                let v = tokens.next()?.to_string();
                if let Some(c) = &mut current {
                    c.2 = Some(v);
                }
            }
            _ => {}
        }
    }
    finish(current.take());
    found.or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries_for_the_host_or_the_default() {
        let text = "machine other login a password b\nmachine cache.lab login me password s3cret\ndefault login anon password x\n";
        assert_eq!(
            parse_netrc(text, "cache.lab"),
            Some(("me".into(), "s3cret".into()))
        );
        assert_eq!(
            parse_netrc(text, "elsewhere"),
            Some(("anon".into(), "x".into()))
        );
        assert_eq!(parse_netrc("machine a login b", "a"), None);
    }

    #[test]
    fn the_host_of_a_url() {
        assert_eq!(
            host_of("https://cache.lab:8443/nasflow").as_deref(),
            Some("cache.lab")
        );
        assert_eq!(
            host_of("http://u@127.0.0.1/x").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("https://[::1]:80/").as_deref(), Some("::1"));
    }
}
