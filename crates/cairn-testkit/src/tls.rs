//! An S3 server behind a private certificate authority, for tests of the
//! trust a repository gives (`caCert`, `StoreOptions::root_certificates`):
//! a CA and a certificate for 127.0.0.1 made with `openssl`, and a TLS
//! front (`scripts/tls-proxy.py`) before a plain-HTTP server on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A TLS front on 127.0.0.1 with a certificate from a CA of its own; it
/// stops when dropped.
#[derive(Debug)]
pub struct TlsFront {
    child: Child,
    dir: PathBuf,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsFront {
    /// Makes the CA and the certificate, and starts the front before
    /// `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str) -> TlsFront {
        let dir = std::env::temp_dir().join(format!(
            "cairn-tls-{}-{}",
            std::process::id(),
            crate::noise(upstream.len() as u64 ^ 0x7a11, 4)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        std::fs::create_dir_all(&dir).expect("tls dir");
        certificates(&dir);
        let script = crate::workspace_root().join("scripts/tls-proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.join("srv.pem"))
            .arg(dir.join("srv.key"))
            .arg(upstream)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("scripts/tls-proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the front's port");
        let port = line.trim().parse().expect("a port");
        TlsFront { child, dir, port }
    }

    /// The CA's certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.pem")).expect("ca.pem")
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A front for the plain-HTTP S3 server an `s3://…?endpoint=http://…`
    /// URL names.
    pub fn before(url: &str) -> TlsFront {
        TlsFront::start(&upstream(url))
    }

    /// `url` reaching its server through this front: the endpoint
    /// replaced, `allow-http` dropped.
    pub fn url(&self, url: &str) -> String {
        let (head, query) = url.split_once('?').unwrap_or((url, ""));
        let params: Vec<String> = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| match kv.split_once('=') {
                Some(("endpoint", _)) => Some(format!("endpoint={}", self.endpoint())),
                Some(("allow-http", _)) => None,
                _ => Some(kv.to_owned()),
            })
            .collect();
        format!("{head}?{}", params.join("&"))
    }
}

/// `host:port` of the `endpoint=http://…` of an `s3://` URL.
fn upstream(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("endpoint="))
        .map(|e| e.trim_start_matches("http://").to_owned())
        .unwrap_or_else(|| panic!("{url} names no endpoint"))
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = ["-newkey", "rsa:2048", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &key,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=cairn test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &key,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("write");
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}
