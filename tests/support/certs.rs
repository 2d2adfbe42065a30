//! Certificates made at test time with the `openssl` CLI: a private CA per `Certs` and leaf
//! certificates it signs (ECDSA P-256, PKCS#8 keys, SANs as given), in a temp directory removed
//! when the `Certs` is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Certs {
    pub dir: PathBuf,
    /// The CA certificate that signs every leaf (what a client trusts: `curl --cacert`).
    pub ca: PathBuf,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Leaf {
    pub fn cert(&self) -> &str {
        self.cert.to_str().unwrap()
    }

    pub fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }

    /// The flags of one TLS listener on a free port serving this certificate.
    pub fn listen_args(&self) -> Vec<&str> {
        vec![
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            self.cert(),
            "--tls-key",
            self.key(),
        ]
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// A new CA named `name` in a fresh directory.
    pub fn new(name: &str) -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shardgate-certs-{}-{}-{}",
            std::process::id(),
            name,
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let subj = format!("/CN={name} test CA");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &subj,
            ],
        );
        let ca = dir.join("ca.pem");
        Certs { dir, ca }
    }

    pub fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }

    /// A leaf for `sans` (DNS names, or IP addresses), signed by this CA; `file` names its files.
    pub fn leaf(&self, file: &str, sans: &[&str]) -> Leaf {
        self.leaf_for_days(file, sans, 2)
    }

    /// `leaf`, valid for `days` days from now.
    pub fn leaf_for_days(&self, file: &str, sans: &[&str], days: u32) -> Leaf {
        let alt: Vec<String> = sans
            .iter()
            .map(|s| {
                if s.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{s}")
                } else {
                    format!("DNS:{s}")
                }
            })
            .collect();
        let ext = format!("{file}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
                alt.join(",")
            ),
        )
        .unwrap();
        let (key, csr, pem) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
        );
        let subj = format!("/CN={}", sans.first().copied().unwrap_or(file));
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
            ],
        );
        Leaf {
            cert: self.dir.join(pem),
            key: self.dir.join(key),
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
