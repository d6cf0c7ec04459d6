//! The HTTP remote against a real HTTP server: nginx with WebDAV's PUT, started here on a free
//! local port (scripts/test.sh installs Debian's nginx-light where it can). Upload and fetch,
//! a corrupt blob on the server, and the server going away mid-run.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{set, stderr, Project};

const PIPELINE: &str = common::TWO_STAGES;

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Nginx {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts nginx serving and storing a temp directory; `None` (with a message) where nginx is
/// not installed.
fn start() -> Option<Nginx> {
    let Some(bin) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed (scripts/test.sh installs nginx-light with apt when it can)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("store")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        r#"daemon off;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {d}/store;
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
    }}
  }}
}}
"#,
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(bin)
        .args(["-e", &format!("{}/error.log", d.display())])
        .args([
            "-p",
            &d.display().to_string(),
            "-c",
            &format!("{}/nginx.conf", d.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Nginx {
                child,
                dir,
                url: format!("http://127.0.0.1:{port}/cache"),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
    panic!("nginx did not start listening on port {port}:\n{log}");
}

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
    let Some(server) = start() else { return };
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
        std::fs::write(p, b"tampered").unwrap();
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
