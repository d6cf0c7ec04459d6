//! The validation layer for everything the store reads from outside this process: records, item
//! records, bundles, remote documents, tar entry names. Digests, relative paths and stage names
//! are types that can only hold valid values (checked when deserialized or constructed), so an
//! invalid value is rejected where it is read, as a whole record, and no path built from one can
//! leave the cache. No file content reaches a slice index or a path join unchecked.
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value read from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` {why}")]
pub struct Invalid {
    pub what: &'static str,
    /// The value, shortened and escaped for messages.
    pub value: String,
    pub why: &'static str,
}

fn invalid(what: &'static str, value: &str, why: &'static str) -> Invalid {
    let mut shown: String = value.chars().take(80).collect();
    if value.chars().count() > 80 {
        shown.push_str("...");
    }
    Invalid {
        what,
        value: shown.escape_debug().to_string(),
        why,
    }
}

/// Longest relative path stored in a record, and longest component (most filesystems' limit).
pub const MAX_PATH: usize = 1024;
pub const MAX_COMPONENT: usize = 255;
/// Longest stage name: names become parts of file names (locks, records) under the cache.
pub const MAX_STAGE_NAME: usize = 64;

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, Invalid> {
                let s = s.into();
                $check(&s)?;
                Ok($name(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_string!(
    /// A blake3 digest or a key: exactly 64 lowercase hex characters.
    Digest,
    check_digest
);
validated_string!(
    /// A path relative to an output directory: '/'-separated, normalised, bounded, with no
    /// empty, `.` or `..` component, no leading `/`, no NUL and no backslash.
    RelPath,
    check_rel_path
);
validated_string!(
    /// A stage name: 1 to 64 ASCII letters, digits, `_` and `-`.
    StageName,
    check_stage_name
);

fn check_digest(s: &str) -> Result<(), Invalid> {
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if s.len() != 64 || !s.bytes().all(hex) {
        return Err(invalid("digest", s, "is not 64 lowercase hex characters"));
    }
    Ok(())
}

fn check_rel_path(s: &str) -> Result<(), Invalid> {
    let bad = |why| Err(invalid("path", s, why));
    if s.is_empty() {
        return bad("is empty");
    }
    if s.len() > MAX_PATH {
        return bad("is too long");
    }
    if s.contains('\0') || s.contains('\\') {
        return bad("contains a NUL or a backslash");
    }
    if s.starts_with('/') {
        return bad("is absolute");
    }
    for c in s.split('/') {
        match c {
            "" => return bad("has an empty component"),
            "." | ".." => return bad("has a `.` or `..` component"),
            c if c.len() > MAX_COMPONENT => return bad("has a component that is too long"),
            _ => {}
        }
    }
    Ok(())
}

/// Also used by pipeline.toml's checks, so that a name the config accepts is one the store does.
pub fn check_stage_name(s: &str) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > MAX_STAGE_NAME {
        return Err(invalid("stage name", s, "must have 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(invalid(
            "stage name",
            s,
            "may hold only letters, digits, `_` and `-`",
        ));
    }
    Ok(())
}

impl Digest {
    /// The digest of a blake3 hash.
    pub fn of(hash: blake3::Hash) -> Digest {
        Digest(hash.to_hex().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_lowercase_hex() {
        let ok = "0".repeat(64);
        assert!(Digest::new(ok.clone()).is_ok());
        for bad in [
            "",
            "a",
            "xx/tmp/secret",
            &"A".repeat(64),
            &"0".repeat(63),
            "é",
            &format!("{}/", "0".repeat(63)),
        ] {
            assert!(Digest::new(bad).is_err(), "{bad:?}");
        }
        let e = serde_json::from_str::<Digest>("\"../x\"").unwrap_err();
        assert!(e.to_string().contains("not 64 lowercase hex"), "{e}");
    }

    #[test]
    fn relative_paths_cannot_climb_out_or_be_absolute() {
        for ok in [
            "a.txt",
            "items/00001/weights.safetensors",
            "a..b",
            ".hidden",
        ] {
            assert!(RelPath::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/tmp/x",
            "../../../../../tmp/x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a/",
            "a\\..\\b",
            "a\0b",
            &"x".repeat(300),
            &"a/".repeat(600),
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stage_names_are_bounded_path_components() {
        assert!(StageName::new("train-vae_2").is_ok());
        for bad in ["", "a/b", "..", "a b", &"s".repeat(65), "é"] {
            assert!(StageName::new(bad).is_err(), "{bad:?}");
        }
    }
}

/// Property tests over the entry points the fuzz targets cover (tests/fuzz), run with the suite:
/// whatever bytes arrive, reading them is an error or a value, never a panic, and nothing is
/// written outside the cache.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use crate::cache::{Cache, ItemRecord, StageRecord};

    proptest! {
        #[test]
        fn records_from_any_json_are_checked_not_trusted(text in ".{0,400}") {
            if let Ok(r) = serde_json::from_str::<StageRecord>(&text) {
                let _ = r.check(&r.stage.to_string(), &r.key.to_string());
            }
            let _ = serde_json::from_str::<ItemRecord>(&text);
        }

        #[test]
        fn any_pipeline_text_is_a_pipeline_or_an_error(text in "(\\[stages\\.[a-z]{1,3}\\]\n|kind = \"(cmd|test-write)\"\n|run = \"true\"\n|deps = \\[\"[a-z]\"\\]\n|[a-z]{1,6} = [0-9a-z\"\\[\\]]{1,6}\n){0,12}") {
            let reg = crate::registry::Registry::from(crate::testkit::register);
            if let Ok(p) = crate::config::parse(std::path::Path::new("p.toml"), &text, &reg, &[]) {
                let _ = crate::dag::Dag::build(&p);
            }
        }

        #[test]
        fn any_bundle_bytes_import_or_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let dir = tempfile::tempdir().unwrap();
            let bundle = dir.path().join("b.tar");
            std::fs::write(&bundle, &bytes).unwrap();
            let cache = Cache::open(&dir.path().join("cache")).unwrap();
            let _ = cache.import(&bundle);
            let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            prop_assert!(outside.len() == 2, "{outside:?}");
        }
    }
}
