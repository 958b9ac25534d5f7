//! What the GitHub tests share: the App's RSA key pair, made once per test binary.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// An RSA key pair (PKCS#1 private PEM, as GitHub hands out; SPKI public PEM) from `openssl`.
pub fn key_pair() -> &'static (String, String) {
    static PAIR: OnceLock<(String, String)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let private = Command::new("openssl")
            .args(["genrsa", "-traditional", "2048"])
            .stderr(Stdio::null())
            .output()
            .expect("these tests need `openssl` on PATH to generate a test key");
        assert!(private.status.success(), "openssl genrsa failed");
        let mut child = Command::new("openssl")
            .args(["rsa", "-pubout"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl rsa");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&private.stdout)
            .expect("write key");
        let public = child.wait_with_output().expect("openssl rsa -pubout");
        assert!(public.status.success(), "openssl rsa -pubout failed");
        (
            String::from_utf8(private.stdout).expect("pem"),
            String::from_utf8(public.stdout).expect("pem"),
        )
    })
}
