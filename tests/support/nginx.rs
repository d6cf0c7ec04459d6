//! A real nginx for the HTTP remote tests: WebDAV's PUT on a free local port, optionally over
//! TLS with a certificate made here, and optionally requiring a bearer token.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Nginx {
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    /// The access log: `STATUS BYTES_SENT RANGE` a request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }
    /// The certificate of the CA that signed the server's (TLS servers).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

impl Nginx {
    /// The server's base URL (without the remote's `/cache`).
    pub fn base(&self) -> &str {
        self.url.trim_end_matches("/cache")
    }

    /// Takes the server down now, mid-transfer included (SIGTERM: nginx's fast shutdown closes
    /// every connection), and waits for it.
    pub fn stop(&mut self) {
        let pid = std::fs::read_to_string(self.pid_file()).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
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

#[derive(Default)]
pub struct Options {
    /// Serve HTTPS with a self-signed certificate for 127.0.0.1 (made with openssl).
    pub tls: bool,
    /// Answer 401 unless `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Serve this directory instead of a new `store/`.
    pub root: Option<PathBuf>,
    /// nginx's `limit_rate` (bytes per second per connection, like `"100k"`).
    pub limit_rate: Option<String>,
}

/// A test CA (`cert.pem`, what clients trust) and a server certificate it signed for 127.0.0.1
/// and localhost (`server.pem`, `key.pem`), made with openssl in `dir`.
fn make_cert(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=nasflow test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "cert.pem",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "cert.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])
}

/// Starts nginx serving and storing a temp directory; `None` (with a message) where nginx (or,
/// for TLS, openssl) is not installed.
pub fn start(opts: Options) -> Option<Nginx> {
    let Some(bin) = nginx_binary() else {
        eprintln!("SKIPPED: nginx is not installed (scripts/test.sh installs nginx-light with apt when it can)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("store")).unwrap();
    if opts.tls && !make_cert(d) {
        eprintln!("SKIPPED: openssl cannot make a test certificate");
        return None;
    }
    // One start at a time in this test binary, until the server holds its port: two tests
    // asking the OS for a free port at once could be given the same one, and the second nginx
    // would then fail to bind while its readiness check reached the first (an HTTP client
    // talking to the TLS server: "connection reset").
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
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
    let (listen, scheme) = if opts.tls {
        (format!("listen 127.0.0.1:{port} ssl;\n    ssl_certificate {0}/server.pem;\n    ssl_certificate_key {0}/key.pem;", d.display()), "https")
    } else {
        (format!("listen 127.0.0.1:{port};"), "http")
    };
    let auth = match &opts.token {
        Some(t) => format!("if ($http_authorization != \"Bearer {t}\") {{ return 401; }}"),
        None => String::new(),
    };
    let root = opts
        .root
        .clone()
        .unwrap_or_else(|| d.join("store"))
        .display()
        .to_string();
    let limit = opts
        .limit_rate
        .as_ref()
        .map(|r| format!("limit_rate {r};"))
        .unwrap_or_default();
    let conf = format!(
        r#"daemon off;
worker_processes 1;
{user}
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format brief '$status $body_bytes_sent "$http_range"';
  access_log {d}/access.log brief;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    {listen}
    root {root};
    client_max_body_size 0;
    {limit}
    location / {{
      {auth}
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
        // Listening, and it is this nginx (alive, its pid file written after it bound the port).
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && matches!(child.try_wait(), Ok(None))
            && d.join("nginx.pid").exists()
        {
            return Some(Nginx {
                child,
                dir,
                url: format!("{scheme}://127.0.0.1:{port}/cache"),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
    panic!("nginx did not start listening on port {port}:\n{log}");
}
