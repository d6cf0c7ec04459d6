//! The HTTP remote against a real HTTP server: nginx with WebDAV's PUT, started here on a free
//! local port (scripts/test.sh installs Debian's nginx-light where it can). Upload and fetch,
//! a corrupt blob on the server, and the server going away mid-run.
mod common;
#[path = "support/nginx.rs"]
mod nginx;

use std::path::{Path, PathBuf};

use common::{set, stderr, Project};

const PIPELINE: &str = common::TWO_STAGES;

fn files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn upload_fetch_reject_and_survive_the_server_going_away() {
    let Some(server) = nginx::start(Default::default()) else {
        return;
    };
    let url = server.url.as_str();

    // Machine A computes and uploads; machine B fetches everything and computes nothing.
    let a = Project::new(PIPELINE);
    let out = a.nasflow(&["run", "--remote", url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 2 records"),
        "{}",
        stderr(&out)
    );
    let stored = files(&server.store());
    assert!(
        stored
            .iter()
            .any(|p| p.to_string_lossy().contains("/cache/records/b/")),
        "{stored:?}"
    );
    let b = Project::new(PIPELINE);
    let out = b.nasflow(&["run", "--remote", url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("fetched 2 records"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), set(&[]));

    // A corrupt blob on the server is rejected by digest; the stage computes locally.
    for p in stored
        .iter()
        .filter(|p| p.to_string_lossy().contains("/cache/blobs/"))
    {
        // Same length: a longer blob is refused as it streams, before its digest.
        let len = std::fs::metadata(p).unwrap().len() as usize;
        std::fs::write(p, "x".repeat(len)).unwrap();
    }
    let c = Project::new(PIPELINE);
    let out = c.nasflow(&["run", "--remote", url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), set(&["a", "b"]));
    let out = Project::new(PIPELINE).nasflow(&["cache", "pull", url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // The server goes away mid-run (a stage stops it): the run completes locally and says
    // what was not uploaded.
    let pipeline = format!(
        "{PIPELINE}[stages.c]\nkind = \"cmd\"\ndeps = [\"b\"]\nrun = \"kill $(cat {}) && sleep 0.5 && echo c > $NASFLOW_OUT/c.txt\"\n",
        server.pid_file().display()
    );
    let d = Project::new(&pipeline.replace("echo b >>", "echo b2 >>"));
    let out = d.nasflow(&["run", "--remote", url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not uploaded"), "{}", stderr(&out));
    assert_eq!(common::ran(&out), set(&["a", "b", "c"]));
    assert_eq!(d.run_ok(&[]), set(&[]), "the local cache has everything");
}

/// HTTPS with a certificate the test makes, and a bearer token: without the CA the TLS handshake
/// fails, with a wrong token the server refuses, and either way the run completes locally and
/// says why, never printing the token; with both right, results go up and come back.
#[test]
fn https_with_a_ca_certificate_and_a_token() {
    let Some(server) = nginx::start(nginx::Options {
        tls: true,
        token: Some("s3cret-token".into()),
        ..Default::default()
    }) else {
        return;
    };
    let url = server.url.as_str();
    let ca = server.cert();
    let run = |p: &Project, ca: Option<&Path>, token: &str| {
        let mut c = p.cmd(&["run", "--remote", url]);
        c.env("NASFLOW_REMOTE_TOKEN", token);
        match ca {
            Some(ca) => c.env("NASFLOW_REMOTE_CA", ca),
            None => c.env_remove("NASFLOW_REMOTE_CA"),
        };
        c.output().unwrap()
    };
    let a = Project::new(PIPELINE);
    let out = run(&a, None, "s3cret-token");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
    assert_eq!(common::ran(&out), set(&["a", "b"]));

    let b = Project::new(PIPELINE);
    let out = run(&b, Some(&ca), "wrong-token");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused the credentials (HTTP 401)"), "{err}");
    assert!(err.contains("NASFLOW_REMOTE_TOKEN"), "{err}");
    assert!(
        !err.contains("wrong-token"),
        "the token is never printed: {err}"
    );

    let c = Project::new(PIPELINE);
    let out = run(&c, Some(&ca), "s3cret-token");
    assert!(
        stderr(&out).contains("uploaded 2 records"),
        "{}",
        stderr(&out)
    );
    let d = Project::new(PIPELINE);
    let out = run(&d, Some(&ca), "s3cret-token");
    assert!(
        stderr(&out).contains("fetched 2 records"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), set(&[]));
}
