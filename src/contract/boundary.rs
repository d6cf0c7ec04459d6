//! What nasflow does with input from outside the process: parse it behind a boundary that turns a
//! panic (a bug in a parser crate) into an error, and never print or store a credential.
//!
//! - [`catch`] runs a parser; a panic inside it becomes `Err` with the panic's message, and the
//!   default panic hook stays quiet for it (the caller reports the error in its own words).
//! - [`redact_url`] / [`redact_text`] replace the `user:password@` part of URLs with `***@`.
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static INSIDE: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Installs (once) a panic hook that stays silent for panics inside [`catch`] on this thread and
/// hands every other panic to the hook that was there before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if INSIDE.with(|c| c.get()) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err(message)`.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    INSIDE.with(|c| c.set(c.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|c| c.set(c.get() - 1));
    r.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

/// `scheme://user:password@host/...` as `scheme://***@host/...`; other text as it is.
pub fn redact_url(url: &str) -> String {
    redact_text(url)
}

/// Every `scheme://userinfo@` in `text` with its userinfo replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace; userinfo before its last '@'.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***");
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// How many redirects an HTTP client of nasflow follows.
pub const MAX_REDIRECTS: usize = 5;

/// Where a redirect from `current` to `location` leads, if nasflow follows it: only to `http` or
/// `https` URLs with a host (a `file://` or other scheme is refused, as is a URL without a host).
pub fn redirect_target(current: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(current).map_err(|e| format!("{}: {e}", redact_url(current)))?;
    let next = base
        .join(location.trim())
        .map_err(|e| format!("a redirect to `{}`: {e}", redact_url(location)))?;
    if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "the server redirected to `{}`: only http and https redirects are followed",
            redact_url(next.as_str())
        ));
    }
    Ok(next.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let e = catch(|| -> u32 { panic!("all items have spans") }).unwrap_err();
        assert_eq!(e, "all items have spans");
        let n = 3;
        let e = catch(|| -> u32 { panic!("formatted {n}") }).unwrap_err();
        assert_eq!(e, "formatted 3");
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("http://user:pw@host:8080/a?b"),
            "http://***@host:8080/a?b"
        );
        assert_eq!(redact_url("https://tok@h/x"), "https://***@h/x");
        assert_eq!(redact_url("http://host/a@b"), "http://host/a@b");
        assert_eq!(redact_url("/local/path"), "/local/path");
        assert_eq!(
            redact_text("GET http://u:p@a/x failed; retry https://b/y and ftp://q:r@c"),
            "GET http://***@a/x failed; retry https://b/y and ftp://***@c"
        );
        assert_eq!(redact_text("x://"), "x://");
    }

    #[test]
    fn redirects_go_to_http_and_https_only() {
        assert_eq!(redirect_target("http://a/b/c", "/d").unwrap(), "http://a/d");
        assert_eq!(
            redirect_target("http://a/b/c", "https://x/y").unwrap(),
            "https://x/y"
        );
        assert!(redirect_target("http://a/b", "file:///etc/passwd")
            .unwrap_err()
            .contains("only http and https"));
        assert!(redirect_target("http://a/b", "ftp://h/f").is_err());
        assert!(redirect_target("http://a/b", "http://").is_err());
    }
}
