//! Getting the bytes: HTTP(S) with resuming, or a local file; and hashing them.
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nasflow_contract::boundary::{redact_text, redact_url, redirect_target, MAX_REDIRECTS};
use sha2::Digest as _;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{value}` is not a {kind}: it must be {digits} hex digits")]
    BadDigest {
        kind: DigestKind,
        value: String,
        digits: usize,
    },
    #[error(
        "`{0}` is not a URL nasflow can fetch: use http://, https://, file:// or a local path"
    )]
    BadUrl(String),
    #[error("{url}: the server answered {status} {text} (check the URL, or point `url` at a local copy)")]
    Status {
        url: String,
        status: u16,
        text: String,
    },
    #[error("{url}: {message}; run again to resume from byte {have}")]
    Interrupted {
        url: String,
        message: String,
        have: u64,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{from}: checksum mismatch: expected {expected}, got {actual}; nothing was stored (check `url` and the digest the publisher gives)")]
    Mismatch {
        from: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{archive}: {message}")]
    Archive { archive: String, message: String },
    #[error("{from}: {what} is larger than `max_size` ({max} bytes); nothing was kept (raise `max_size` if the file really is that large)")]
    TooLarge {
        from: String,
        what: &'static str,
        max: u64,
    },
    #[error("{url}: {message}; run again to resume from byte {have} (or raise `timeout` / lower `min_rate`)")]
    TooSlow {
        url: String,
        message: String,
        have: u64,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The digest algorithms publishers give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestKind {
    Sha256,
    Md5,
}

impl fmt::Display for DigestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestKind::Sha256 => "sha256",
            DigestKind::Md5 => "md5",
        })
    }
}

/// A digest: its algorithm and lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub kind: DigestKind,
    pub hex: String,
}

impl Digest {
    /// Checks `hex` ("" passes, for an absent digest).
    pub fn parse(kind: DigestKind, hex: &str) -> Result<Digest, FetchError> {
        let digits = match kind {
            DigestKind::Sha256 => 64,
            DigestKind::Md5 => 32,
        };
        let ok =
            hex.is_empty() || (hex.len() == digits && hex.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(FetchError::BadDigest {
                kind,
                value: hex.to_string(),
                digits,
            });
        }
        Ok(Digest {
            kind,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.hex)
    }
}

/// Where the file comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

impl Source {
    /// `url` as given: http(s)://, file:// or a path relative to `project`.
    pub fn parse(url: &str, project: &Path) -> Result<Source, FetchError> {
        let url = url.trim();
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Source::Http(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(FetchError::BadUrl(url.to_string()));
            }
            return Ok(Source::File(PathBuf::from(path)));
        }
        if url.is_empty() || url.contains("://") {
            return Err(FetchError::BadUrl(url.to_string()));
        }
        Ok(Source::File(project.join(url)))
    }

    /// The last path segment, without query or fragment.
    pub fn file_name(&self) -> Result<String, FetchError> {
        let name = match self {
            Source::Http(u) => {
                let path = u.split(['?', '#']).next().unwrap_or("");
                let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
                after_host.rsplit('/').next().unwrap_or("").to_string()
            }
            Source::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        Ok(name)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(u) => f.write_str(&redact_url(u)),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a fetch did: bytes received this time, where it resumed from, the file's size.
#[derive(Debug, Default, PartialEq)]
pub struct Fetched {
    pub fetched: u64,
    pub resumed_from: u64,
    pub total: u64,
}

/// Progress callback: bytes done, bytes in all (0: unknown), bytes per second.
pub type Report<'a> = dyn Fn(u64, u64, f64) + 'a;

/// How far a download may go: its size, its whole time, and the slowest rate it may keep up
/// over [`RATE_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub max_size: u64,
    pub timeout: Duration,
    /// Bytes per second, averaged over [`RATE_WINDOW`]; 0 turns the check off.
    pub min_rate: u64,
}

/// The window over which `min_rate` is judged.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_size: 20_000_000_000,
            timeout: Duration::from_secs(6 * 3600),
            min_rate: 1024,
        }
    }
}

/// Brings the whole file to `partial`, resuming an HTTP download from what is there.
pub fn fetch(
    source: &Source,
    partial: &Path,
    limits: &Limits,
    report: &Report,
) -> Result<Fetched, FetchError> {
    let r = match source {
        Source::File(path) => copy_local(path, partial, limits, report),
        Source::Http(url) => http(url, partial, limits, report),
    };
    if matches!(r, Err(FetchError::TooLarge { .. })) {
        // Nothing to resume from: the file is over the limit.
        let _ = std::fs::remove_file(partial);
    }
    r
}

fn copy_local(
    path: &Path,
    partial: &Path,
    limits: &Limits,
    report: &Report,
) -> Result<Fetched, FetchError> {
    let mut from = std::fs::File::open(path).map_err(io(path))?;
    let meta = from.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(FetchError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let total = meta.len();
    let too_large = || FetchError::TooLarge {
        from: path.display().to_string(),
        what: "the file",
        max: limits.max_size,
    };
    if total > limits.max_size {
        return Err(too_large());
    }
    let to = std::fs::File::create(partial).map_err(io(partial))?;
    let n = pump(&mut from, to, partial, (0, total), limits, report).map_err(|e| match e {
        Pumped::Read(source) => FetchError::Io {
            path: path.to_path_buf(),
            source,
        },
        Pumped::Write(e) => e,
        Pumped::TooLarge => too_large(),
        Pumped::TooSlow(message) => FetchError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(message),
        },
    })?;
    Ok(Fetched {
        fetched: n,
        resumed_from: 0,
        total,
    })
}

fn agent(limits: &Limits) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .timeout(limits.timeout)
        .redirects(0)
        .user_agent(concat!("nasflow/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GET `url` (with `Range` from `have`), following redirects to http(s) URLs only.
fn get(agent: &ureq::Agent, url: &str, have: u64) -> Result<ureq::Response, Box<ureq::Error>> {
    let mut at = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = agent.get(&at);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = req.call().map_err(Box::new)?;
        if !(300..400).contains(&resp.status()) {
            return Ok(resp);
        }
        let location = resp.header("Location").unwrap_or("").to_string();
        at = redirect_target(&at, &location)
            .map_err(|why| Box::new(ureq::Error::from(std::io::Error::other(why))))?;
    }
    Err(Box::new(ureq::Error::from(std::io::Error::other(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))))
}

fn http(
    url: &str,
    partial: &Path,
    limits: &Limits,
    report: &Report,
) -> Result<Fetched, FetchError> {
    let shown = redact_url(url);
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let resp = match get(&agent(limits), url, have).map_err(|e| *e) {
        Ok(r) => r,
        // The partial file is already whole (or longer than the file): start again.
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            std::fs::remove_file(partial).map_err(io(partial))?;
            return http(url, partial, limits, report);
        }
        Err(ureq::Error::Status(status, r)) => {
            return Err(FetchError::Status {
                url: shown,
                status,
                text: r.status_text().to_string(),
            })
        }
        Err(e) => {
            return Err(FetchError::Interrupted {
                url: shown,
                message: redact_text(&e.to_string()),
                have,
            })
        }
    };
    let resumed = resp.status() == 206;
    let start = if resumed { have } else { 0 };
    let length: u64 = resp
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let total = if length > 0 { start + length } else { 0 };
    let too_large = || FetchError::TooLarge {
        from: shown.clone(),
        what: "the download",
        max: limits.max_size,
    };
    if total > limits.max_size {
        return Err(too_large());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(partial)
        .map_err(io(partial))?;
    let mut body = resp.into_reader();
    let n =
        pump(&mut body, file, partial, (start, total), limits, report).map_err(|e| match e {
            Pumped::Read(source) if source.kind() == std::io::ErrorKind::TimedOut => {
                FetchError::TooSlow {
                    url: shown.clone(),
                    message: format!(
                        "the download stopped: {} (no byte for 60 s, or past `timeout`, {} s)",
                        redact_text(&source.to_string()),
                        limits.timeout.as_secs()
                    ),
                    have: std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0),
                }
            }
            Pumped::Read(source) => FetchError::Interrupted {
                url: shown.clone(),
                message: format!("the download stopped: {}", redact_text(&source.to_string())),
                have: std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0),
            },
            Pumped::Write(e) => e,
            Pumped::TooLarge => too_large(),
            Pumped::TooSlow(message) => FetchError::TooSlow {
                url: shown.clone(),
                message,
                have: std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0),
            },
        })?;
    if total > 0 && start + n < total {
        return Err(FetchError::Interrupted {
            url: shown,
            message: format!(
                "the server closed the connection after {} of {total} bytes",
                start + n
            ),
            have: start + n,
        });
    }
    Ok(Fetched {
        fetched: n,
        resumed_from: start,
        total: start + n,
    })
}

enum Pumped {
    Read(std::io::Error),
    Write(FetchError),
    /// More than `max_size` bytes in all.
    TooLarge,
    /// Past `timeout`, or slower than `min_rate`.
    TooSlow(String),
}

/// Copies `from` to `to` (already holding `start` of `total` bytes), reporting about twice a
/// second and holding to `limits`; what was written is flushed even when reading fails, so that
/// it can be resumed from.
fn pump(
    from: &mut dyn Read,
    to: std::fs::File,
    path: &Path,
    (start, total): (u64, u64),
    limits: &Limits,
    report: &Report,
) -> Result<u64, Pumped> {
    let mut to = std::io::BufWriter::with_capacity(1 << 20, to);
    let mut buf = vec![0u8; 1 << 16];
    let (began, mut last) = (Instant::now(), Instant::now());
    let mut n = 0u64;
    // (when, bytes so far) at the start of the current rate window.
    let mut window = (Instant::now(), 0u64);
    let result = loop {
        if began.elapsed() > limits.timeout {
            break Err(Pumped::TooSlow(format!(
                "the download took longer than `timeout` ({} s)",
                limits.timeout.as_secs()
            )));
        }
        if window.0.elapsed() >= RATE_WINDOW {
            let rate = (n - window.1) as f64 / window.0.elapsed().as_secs_f64();
            if limits.min_rate > 0 && rate < limits.min_rate as f64 {
                break Err(Pumped::TooSlow(format!(
                    "the download slowed to {rate:.0} bytes/s over {} s, below `min_rate` ({} bytes/s)",
                    RATE_WINDOW.as_secs(),
                    limits.min_rate
                )));
            }
            window = (Instant::now(), n);
        }
        match from.read(&mut buf) {
            Ok(0) => break Ok(n),
            Ok(k) => {
                if start + n + k as u64 > limits.max_size {
                    break Err(Pumped::TooLarge);
                }
                if let Err(e) = to.write_all(&buf[..k]) {
                    return Err(Pumped::Write(io(path)(e)));
                }
                n += k as u64;
                if last.elapsed() >= Duration::from_millis(500) {
                    last = Instant::now();
                    report(start + n, total, n as f64 / began.elapsed().as_secs_f64());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(Pumped::Read(e)),
        }
    };
    to.flush().map_err(|e| Pumped::Write(io(path)(e)))?;
    to.get_ref()
        .sync_all()
        .map_err(|e| Pumped::Write(io(path)(e)))?;
    report(
        start + n,
        total.max(start + n),
        n as f64 / began.elapsed().as_secs_f64().max(1e-9),
    );
    result
}

/// The digest of a file.
pub fn digest_of(path: &Path, kind: DigestKind) -> Result<Digest, FetchError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sha = sha2::Sha256::new();
    let mut md5 = md5::Context::new();
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        match kind {
            DigestKind::Sha256 => sha.update(&buf[..k]),
            DigestKind::Md5 => md5.consume(&buf[..k]),
        }
    }
    let hex = match kind {
        DigestKind::Sha256 => format!("{:x}", sha.finalize()),
        DigestKind::Md5 => format!("{:x}", md5.finalize()),
    };
    Ok(Digest { kind, hex })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_name_their_file() {
        let p = Path::new("/proj");
        assert_eq!(
            Source::parse("https://h.org/x/y.tgz?a#b", p)
                .unwrap()
                .file_name()
                .unwrap(),
            "y.tgz"
        );
        assert_eq!(
            Source::parse("data/f.bin", p).unwrap(),
            Source::File("/proj/data/f.bin".into())
        );
        assert_eq!(
            Source::parse("file:///abs/f.bin", p).unwrap(),
            Source::File("/abs/f.bin".into())
        );
        assert!(Source::parse("ftp://h/f", p).is_err());
        assert!(Source::parse("file://rel/f", p).is_err());
        assert_eq!(
            Source::parse("http://h.org", p)
                .unwrap()
                .file_name()
                .unwrap(),
            ""
        );
    }

    #[test]
    fn digests_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            digest_of(&f, DigestKind::Sha256).unwrap().hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest_of(&f, DigestKind::Md5).unwrap().hex,
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn a_local_copy_reports_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("src.bin");
        std::fs::write(&f, vec![7u8; 200_000]).unwrap();
        let part = dir.path().join("out.part");
        let seen = std::sync::Mutex::new(Vec::new());
        let got = fetch(&Source::File(f), &part, &Limits::default(), &|d, t, _| {
            seen.lock().unwrap().push((d, t))
        })
        .unwrap();
        assert_eq!(got.total, 200_000);
        assert_eq!(std::fs::read(&part).unwrap().len(), 200_000);
        assert_eq!(seen.lock().unwrap().last(), Some(&(200_000, 200_000)));
    }
}
