//! The HTTP(S) remote: GET and PUT (HEAD for presence) of the cache layout under a base URL,
//! over TLS where the URL says `https`, with a bearer token or basic auth from `~/.netrc`.
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;

use super::{blob_rel, OpenError, Remote, RemoteError, Store, MAX_DOC};
use crate::cache::{Cache, Digest, Result};

/// An HTTP cache server.
pub struct Http {
    base: String,
    agent: ureq::Agent,
    /// The `Authorization` header's value; never printed.
    auth: Option<String>,
}

/// The environment variable holding a bearer token for the HTTP remote.
pub const TOKEN_VAR: &str = "NASFLOW_REMOTE_TOKEN";
/// The environment variable naming a PEM file of CA certificates to trust besides the system's.
pub const CA_VAR: &str = "NASFLOW_REMOTE_CA";

impl Http {
    pub fn new(base: &str) -> std::result::Result<Http, OpenError> {
        let base = base.trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(10))
            .timeout_read(std::time::Duration::from_secs(300))
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
        Ok(Http { base, agent, auth })
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn request(&self, method: &str, rel: &str) -> ureq::Request {
        let r = self.agent.request(method, &self.url(rel));
        match &self.auth {
            Some(a) => r.set("Authorization", a),
            None => r,
        }
    }

    /// A ureq error as a remote problem (401 and 403 say what to fix; the URL, never the token).
    fn problem(&self, op: &'static str, rel: &str, e: ureq::Error) -> RemoteError {
        match e {
            ureq::Error::Status(status @ (401 | 403), _) => RemoteError::Auth {
                target: self.url(rel),
                status,
            },
            ureq::Error::Status(status, _) => RemoteError::Transport {
                op,
                target: self.url(rel),
                reason: format!("HTTP {status}"),
            },
            ureq::Error::Transport(t) => RemoteError::Transport {
                op,
                target: self.url(rel),
                reason: transport_reason(&t),
            },
        }
    }

    fn get(&self, rel: &str) -> Remote<Option<ureq::Response>> {
        match self.request("GET", rel).call() {
            Ok(r) => Ok(Some(r)),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(e) => Err(self.problem("GET", rel, e)),
        }
    }

    fn put(&self, rel: &str, body: impl Read) -> Remote<()> {
        self.request("PUT", rel)
            .send(body)
            .map(|_| ())
            .map_err(|e| self.problem("PUT", rel, e))
    }
}

impl Store for Http {
    fn describe(&self) -> String {
        self.base.clone()
    }
    fn has_blob(&self, digest: &Digest) -> Remote<bool> {
        let rel = blob_rel(digest);
        match self.request("HEAD", &rel).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(self.problem("HEAD", &rel, e)),
        }
    }
    fn put_blob(&self, digest: &Digest, file: &Path) -> Remote<()> {
        let f = std::fs::File::open(file).map_err(|e| RemoteError::Transport {
            op: "read",
            target: file.display().to_string(),
            reason: e.to_string(),
        })?;
        self.put(&blob_rel(digest), f)
    }
    fn get_blob(&self, digest: &Digest, local: &Cache) -> Result<Remote<()>> {
        match self.get(&blob_rel(digest)) {
            Ok(Some(r)) => Ok(local
                .import_blob(&mut r.into_reader(), digest)?
                .map_err(|why| RemoteError::Rejected {
                    what: format!("blob {digest}"),
                    why,
                })),
            Ok(None) => Ok(Err(RemoteError::Missing(format!(
                "blob {digest} missing on {}",
                self.base
            )))),
            Err(e) => Ok(Err(e)),
        }
    }
    fn get_doc(&self, rel: &str) -> Remote<Option<Vec<u8>>> {
        let Some(r) = self.get(rel)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        r.into_reader()
            .take(MAX_DOC)
            .read_to_end(&mut bytes)
            .map_err(|e| RemoteError::Transport {
                op: "GET",
                target: self.url(rel),
                reason: e.to_string(),
            })?;
        Ok(Some(bytes))
    }
    fn put_doc(&self, rel: &str, bytes: &[u8]) -> Remote<()> {
        self.put(rel, bytes)
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
