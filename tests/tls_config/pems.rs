//! PEM files for tests/tls_config.rs, made with the openssl CLI (scripts/test.sh installs it):
//! an RSA key in PKCS#1, ECDSA P-256 keys in SEC1, self-signed certificates with one SAN name
//! each (one of them 2 days from expiry), a CA, and a PEM that does not decode.

use std::path::PathBuf;
use std::process::Command;

/// A directory of PEM files made with the openssl CLI, removed on drop.
pub struct Pems(pub PathBuf);

impl Pems {
    pub fn new(tag: &str) -> Pems {
        let dir = std::env::temp_dir().join(format!("sg-tlsconf-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = Pems(dir);
        p.openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
        p.openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ]);
        p.openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "other.key",
        ]);
        p.self_signed("rsa.key", "rsa.pem", "a.test", "30");
        p.self_signed("ec.key", "ec.pem", "*.b.test", "30");
        p.self_signed("other.key", "ca.pem", "test-ca", "30");
        p.self_signed("ec.key", "soon.pem", "soon.test", "2");
        std::fs::write(p.path("garbage.pem"), "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        p
    }

    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("openssl runs (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn self_signed(&self, key: &str, out: &str, name: &str, days: &str) {
        let subj = format!("/CN={name}");
        let san = format!("subjectAltName=DNS:{name}");
        self.openssl(&[
            "req", "-x509", "-new", "-key", key, "-subj", &subj, "-addext", &san, "-days", days,
            "-out", out,
        ]);
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Pems {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
