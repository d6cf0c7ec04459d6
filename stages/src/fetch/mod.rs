//! The `fetch` stage: a file by URL and checksum, into the cache.
//!
//! - **Key.** The expected digest (`sha256` or `md5`, as the publisher gives it), `unpack` and the
//!   output `name` are keyed; `url` is not (the contract's unkeyed params), so a mirror or a
//!   local copy of the same file gives the same key and the same result. `name` defaults to the
//!   URL's last path segment, filled in when the pipeline is loaded, so it is part of the key.
//! - **Sources.** `http://` and `https://` (ureq; TLS with the web's root certificates), `file://`
//!   or a local path (relative to the pipeline file).
//! - **Resuming.** An HTTP download writes `NAME.part` in the run's resume directory, which the
//!   engine keeps across failed runs of the same key (the temp-file sweep leaves it alone; `gc`
//!   removes one left untouched for an hour). The next run asks for the rest with
//!   `Range: bytes=N-`; a server that answers 200 instead of 206 sends the whole file again.
//! - **Checking.** The whole file is hashed when it is complete. A wrong digest is an error that
//!   names both digests; the partial file is deleted and nothing is stored.
//! - **Unpacking.** With `unpack = true`, a `.tar.gz`/`.tgz`, `.tar` or `.gz` file is unpacked
//!   into the outputs (the archive itself is not kept). Archives are untrusted: an entry that is
//!   not a plain file or directory, or whose path leaves the output directory, is an error.
//! - **Progress** in bytes, with the rate, through the contract's progress reports; the bytes
//!   fetched, the seconds and the source go to provenance (`fetch.json`), never to outputs.
mod download;
mod unpack;

use std::path::{Path, PathBuf};

use nasflow_contract::{Kind, KindInfo, StageContext, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use download::{Digest, DigestKind, FetchError, Source};

/// The `fetch` kind.
pub struct Fetch;

impl Kind for Fetch {
    type Params = FetchParams;
    const INFO: KindInfo = KindInfo {
        name: "fetch",
        version: 1,
        doc: "A file by URL (http, https, file:// or a local path) and checksum (sha256 or md5), resumable, optionally unpacked; keyed by the digest, not the URL",
        reads_seed: false,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };
}

/// The params of `fetch` as pipeline.toml gives them; [`FetchParams`] checks and completes them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FetchRaw {
    /// where to get the file: http(s)://..., file://... or a path relative to the pipeline file
    #[schemars(extend("x-nasflow-unkeyed" = true))]
    pub url: String,
    /// the file's SHA-256, 64 hex digits (give this or `md5`)
    pub sha256: String,
    /// the file's MD5, 32 hex digits, where the publisher gives only that
    pub md5: String,
    /// unpack a .tar.gz, .tgz, .tar or .gz into the outputs instead of keeping the file
    pub unpack: bool,
    /// the output file's name ("": the URL's last path segment)
    pub name: String,
    /// the most bytes the download, and with `unpack` everything unpacked from it, may take
    #[schemars(extend("x-nasflow-unkeyed" = true))]
    #[schemars(range(min = 1))]
    pub max_size: u64,
    /// seconds a download may take in all before it stops (it resumes on the next run)
    #[schemars(extend("x-nasflow-unkeyed" = true))]
    #[schemars(range(min = 1))]
    pub timeout: u64,
    /// bytes per second a download must average over each minute, or it stops (0: no check)
    #[schemars(extend("x-nasflow-unkeyed" = true))]
    pub min_rate: u64,
}

impl Default for FetchRaw {
    fn default() -> FetchRaw {
        let l = download::Limits::default();
        FetchRaw {
            url: String::new(),
            sha256: String::new(),
            md5: String::new(),
            unpack: false,
            name: String::new(),
            max_size: l.max_size,
            timeout: l.timeout.as_secs(),
            min_rate: l.min_rate,
        }
    }
}

/// The params of `fetch`: exactly one digest, well formed and lower-cased, and `name` filled in.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "FetchRaw")]
pub struct FetchParams {
    pub url: String,
    pub sha256: String,
    pub md5: String,
    pub unpack: bool,
    pub name: String,
    pub max_size: u64,
    pub timeout: u64,
    pub min_rate: u64,
}

impl TryFrom<FetchRaw> for FetchParams {
    type Error = String;

    fn try_from(raw: FetchRaw) -> Result<Self, String> {
        if raw.url.trim().is_empty() {
            return Err(
                "url: fetch needs `url` (http(s)://..., file://... or a local path)".into(),
            );
        }
        let (sha256, md5) = (
            raw.sha256.to_ascii_lowercase(),
            raw.md5.to_ascii_lowercase(),
        );
        match (sha256.is_empty(), md5.is_empty()) {
            (true, true) => return Err("fetch needs `sha256` or `md5`: the digest the publisher gives, which is what the result is keyed by".into()),
            (false, false) => return Err("md5: give `sha256` or `md5`, not both".into()),
            _ => {}
        }
        Digest::parse(DigestKind::Sha256, &sha256).map_err(|e| format!("sha256: {e}"))?;
        Digest::parse(DigestKind::Md5, &md5).map_err(|e| format!("md5: {e}"))?;
        let name = if raw.name.is_empty() {
            Source::parse(&raw.url, Path::new("."))
                .map_err(|e| format!("url: {e}"))?
                .file_name()
                .map_err(|e| format!("url: {e}"))?
        } else {
            raw.name.clone()
        };
        // The name is about `name` even when it came from the URL (it then says to set it).
        check_name(&name).map_err(|e| format!("name: {e}"))?;
        Ok(FetchParams {
            url: raw.url,
            sha256,
            md5,
            unpack: raw.unpack,
            name,
            max_size: raw.max_size,
            timeout: raw.timeout,
            min_rate: raw.min_rate,
        })
    }
}

impl FetchParams {
    /// How far the download may go.
    pub fn limits(&self) -> download::Limits {
        download::Limits {
            max_size: self.max_size,
            timeout: std::time::Duration::from_secs(self.timeout),
            min_rate: self.min_rate,
        }
    }

    /// The digest the file must have.
    pub fn expected(&self) -> Result<Digest, FetchError> {
        if self.sha256.is_empty() {
            Digest::parse(DigestKind::Md5, &self.md5)
        } else {
            Digest::parse(DigestKind::Sha256, &self.sha256)
        }
    }
}

/// A file name of one path segment.
fn check_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.starts_with('.');
    if bad {
        return Err(format!(
            "`{name}` is not a file name for the output (set `name = \"file.ext\"`)"
        ));
    }
    Ok(())
}

/// Runs the stage: download (or copy) into the resume directory, check, then move or unpack
/// into the outputs.
pub fn run(ctx: &StageContext<FetchParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let fail = |e: FetchError| StageError::Failed(e.to_string());
    let expected = p.expected().map_err(fail)?;
    let source = Source::parse(&p.url, ctx.project).map_err(fail)?;
    let partial = ctx.resume.join(format!("{}.part", p.name));
    let started = std::time::Instant::now();
    let report = |done: u64, total: u64, rate: f64| {
        ctx.progress_with(done, total, "bytes", format!("{:.1} MB/s", rate / 1e6));
    };
    let fetched = download::fetch(&source, &partial, &p.limits(), &report).map_err(fail)?;
    let actual = download::digest_of(&partial, expected.kind).map_err(fail)?;
    if actual != expected {
        let _ = std::fs::remove_file(&partial);
        return Err(fail(FetchError::Mismatch {
            from: source.to_string(),
            expected,
            actual,
        }));
    }
    let outputs = if p.unpack {
        let unpacked = unpack::unpack(&partial, &p.name, ctx.out, p.max_size);
        // Unpacked or refused, the archive is not kept: it was checked, and a bomb is refused
        // again from the same bytes.
        let _ = std::fs::remove_file(&partial);
        unpacked.map_err(fail)?
    } else {
        let dest = ctx.out.join(&p.name);
        move_file(&partial, &dest)?;
        1
    };
    crate::files::write_json(
        &ctx.provenance.join("fetch.json"),
        &serde_json::json!({
            "source": source.to_string(),
            "bytes_fetched": fetched.fetched,
            "resumed_from": fetched.resumed_from,
            "bytes": fetched.total,
            "seconds": started.elapsed().as_secs_f64(),
            "files": outputs,
        }),
    )
}

/// Renames, or copies where the resume directory is on another filesystem.
fn move_file(from: &Path, to: &PathBuf) -> Result<(), StageError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| StageError::io(to, e))?;
    std::fs::remove_file(from).map_err(|e| StageError::io(from, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str, sha256: &str, md5: &str, name: &str) -> FetchRaw {
        FetchRaw {
            url: url.into(),
            sha256: sha256.into(),
            md5: md5.into(),
            name: name.into(),
            ..FetchRaw::default()
        }
    }

    const SHA: &str = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";

    #[test]
    fn params_fill_the_name_from_the_url_and_lower_case_the_digest() {
        let p = FetchParams::try_from(raw("https://example.org/a/b/data.tar.gz?x=1", SHA, "", ""))
            .unwrap();
        assert_eq!(p.name, "data.tar.gz");
        assert_eq!(p.sha256, SHA.to_ascii_lowercase());
        let p =
            FetchParams::try_from(raw("../data/nasbench_only108.tfrecord", SHA, "", "")).unwrap();
        assert_eq!(p.name, "nasbench_only108.tfrecord");
        let p = FetchParams::try_from(raw("https://example.org/get", SHA, "", "x.bin")).unwrap();
        assert_eq!(p.name, "x.bin");
    }

    #[test]
    fn params_need_one_well_formed_digest_and_a_url() {
        let e = |r| FetchParams::try_from(r).unwrap_err();
        assert!(e(raw("", SHA, "", "")).contains("needs `url`"));
        assert!(e(raw("http://h/f", "", "", "")).contains("`sha256` or `md5`"));
        assert!(e(raw(
            "http://h/f",
            SHA,
            "c9a5a6878d97b48cc965c1e839bb1e1b",
            ""
        ))
        .contains("not both"));
        assert!(
            e(raw("http://h/f", "abc", "", "")).contains("64 hex digits"),
            "{}",
            e(raw("http://h/f", "abc", "", ""))
        );
        assert!(e(raw("http://h/f", "", "zz", "")).contains("32 hex digits"));
        assert!(e(raw("https://example.org/", SHA, "", "")).contains("set `name"));
        assert!(e(raw("http://h/f", SHA, "", "../x")).contains("not a file name"));
    }
}
