//! `tls` unit tests: certificates made by rcgen at test time; certificate choice and client
//! certificates checked through a real rustls handshake in memory; each load error's message.

pub(super) mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use support::{handshake, path, Ca, Dir, Leaf};

use super::settings::{CertPaths, ClientAuth, ListenerTls};
use super::{name_matches, Material, TlsError};

/// A shard's ticketer with fresh keys.
fn tickets() -> Arc<super::Ticketer> {
    super::Ticketer::new(&super::TicketKeys::generate(Duration::from_secs(3600)).unwrap())
}

const P256: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ECDSA_P256_SHA256;

/// Writes each leaf's certificate and key and returns the listener config naming them.
fn listener(dir: &Dir, leaves: &[&Leaf]) -> ListenerTls {
    let certificates = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| CertPaths {
            cert: dir.write(&format!("c{i}.pem"), &l.cert),
            key: dir.write(&format!("k{i}.pem"), &l.key),
        })
        .collect();
    ListenerTls::new(certificates)
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let dir = Dir::new("sni");
    let ca = Ca::new("test ca");
    let default = ca.leaf(&["default.test"], P256);
    let exact = ca.leaf(&["a.example.com", "other.test"], P256);
    let wild = ca.leaf(&["*.example.com"], P256);
    let tls = listener(&dir, &[&default, &exact, &wild]);
    let m = Material::load(&tls).unwrap();
    assert_eq!(m.certificates()[2].names, ["*.example.com"]);
    let server = m.server_config(&tickets()).unwrap();
    let cases: &[(Option<&str>, &Leaf)] = &[
        (Some("a.example.com"), &exact),
        (Some("A.Example.COM"), &exact),
        (Some("other.test"), &exact),
        (Some("x.example.com"), &wild),
        (Some("a.b.example.com"), &default),
        (Some("example.com"), &default),
        (Some("default.test"), &default),
        (Some("unknown.test"), &default),
        (None, &default),
    ];
    for (sni, want) in cases {
        let got = handshake(server.clone(), *sni, None).unwrap();
        assert!(got == want.der, "SNI {sni:?} got the wrong certificate");
    }
}

#[test]
fn the_first_certificate_naming_a_name_wins_it() {
    let dir = Dir::new("first");
    let ca = Ca::new("test ca");
    let one = ca.leaf(&["default.test"], P256);
    let two = ca.leaf(&["dup.test"], P256);
    let three = ca.leaf(&["dup.test"], P256);
    let m = Material::load(&listener(&dir, &[&one, &two, &three])).unwrap();
    let got = handshake(m.server_config(&tickets()).unwrap(), Some("dup.test"), None).unwrap();
    assert!(got == two.der);
}

#[test]
fn ecdsa_p256_p384_and_ed25519_keys_serve() {
    let dir = Dir::new("algs");
    let ca = Ca::new("test ca");
    for alg in [P256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let leaf = ca.leaf(&["k.test"], alg);
        let m = Material::load(&listener(&dir, &[&leaf])).unwrap();
        let got = handshake(m.server_config(&tickets()).unwrap(), Some("k.test"), None).unwrap();
        assert!(got == leaf.der, "{alg:?}");
    }
}

/// A listener with `client_ca` = the CA `ca` and the given mode.
fn mtls(dir: &Dir, ca: &Ca, auth: ClientAuth) -> Arc<rustls::ServerConfig> {
    let leaf = ca.leaf(&["m.test"], P256);
    let mut tls = listener(dir, &[&leaf]);
    tls.client_ca = Some(dir.write("ca.pem", &ca.pem));
    tls.client_auth = auth;
    Material::load(&tls)
        .unwrap()
        .server_config(&tickets())
        .unwrap()
}

#[test]
fn required_client_certificates() {
    let dir = Dir::new("mreq");
    let ca = Ca::new("client ca");
    let other = Ca::new("someone else");
    let server = mtls(&dir, &ca, ClientAuth::Required);
    handshake(server.clone(), Some("m.test"), Some(&ca.client("alice"))).unwrap();
    let none = handshake(server.clone(), Some("m.test"), None).unwrap_err();
    assert!(
        none.contains("server") && none.contains("no certificates"),
        "{none}"
    );
    let wrong = handshake(server, Some("m.test"), Some(&other.client("mallory"))).unwrap_err();
    assert!(
        wrong.contains("server") && wrong.contains("UnknownIssuer"),
        "{wrong}"
    );
}

#[test]
fn optional_client_certificates() {
    let dir = Dir::new("mopt");
    let ca = Ca::new("client ca");
    let other = Ca::new("someone else");
    let server = mtls(&dir, &ca, ClientAuth::Optional);
    handshake(server.clone(), Some("m.test"), Some(&ca.client("alice"))).unwrap();
    handshake(server.clone(), Some("m.test"), None).unwrap();
    let wrong = handshake(server, Some("m.test"), Some(&other.client("mallory"))).unwrap_err();
    assert!(wrong.contains("UnknownIssuer"), "{wrong}");
}

#[test]
fn each_shard_gets_its_own_config() {
    let dir = Dir::new("own");
    let leaf = Ca::new("ca").leaf(&["o.test"], P256);
    let m = Material::load(&listener(&dir, &[&leaf])).unwrap();
    let (a, b) = (
        m.server_config(&tickets()).unwrap(),
        m.server_config(&tickets()).unwrap(),
    );
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a.session_storage, &b.session_storage));
}

fn load_err(tls: &ListenerTls) -> String {
    match Material::load(tls) {
        Ok(_) => panic!("loaded"),
        Err(e @ TlsError::File { .. }) => e.to_string(),
        Err(e) => panic!("not a file error: {e}"),
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = Dir::new("mismatch");
    let ca = Ca::new("ca");
    let a = ca.leaf(&["a.test"], P256);
    let b = ca.leaf(&["b.test"], P256);
    let tls = ListenerTls::new(vec![CertPaths {
        cert: dir.write("a.pem", &a.cert),
        key: dir.write("b.key", &b.key),
    }]);
    let want = format!(
        "{}: key does not match the certificate in {}",
        path(&dir.0.join("b.key")),
        path(&dir.0.join("a.pem"))
    );
    assert_eq!(load_err(&tls), want);
}

#[test]
fn each_broken_file_is_named_with_its_problem() {
    let dir = Dir::new("broken");
    let ca = Ca::new("ca");
    let good = ca.leaf(&["g.test"], P256);
    let cert = dir.write("good.pem", &good.cert);
    let key = dir.write("good.key", &good.key);
    let missing = dir.0.join("missing.pem");
    let garbage = dir.write("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!\n");
    let pair = |c: &PathBuf, k: &PathBuf| {
        ListenerTls::new(vec![CertPaths {
            cert: c.clone(),
            key: k.clone(),
        }])
    };
    let cases: &[(ListenerTls, &PathBuf, &str)] = &[
        (pair(&missing, &key), &missing, "cannot read: No such file"),
        (pair(&key, &key), &key, "no certificate in PEM"),
        (pair(&cert, &cert), &cert, "no private key in PEM"),
        (pair(&garbage, &key), &garbage, "not a valid PEM file"),
        (pair(&cert, &missing), &missing, "cannot read"),
    ];
    for (tls, file, want) in cases {
        let got = load_err(tls);
        let prefix = format!("{}: {want}", path(file));
        assert!(got.starts_with(&prefix), "got {got:?}, want {prefix:?}");
    }
    let mut tls = pair(&cert, &key);
    tls.client_ca = Some(key.clone());
    assert!(load_err(&tls).starts_with(&format!("{}: no certificate in PEM", path(&key))));
    tls.client_ca = Some(dir.write("notca.pem", &fake_certificate_pem()));
    let got = load_err(&tls);
    assert!(
        got.starts_with(&format!(
            "{}: certificate 1 is not a usable CA",
            path(&dir.0.join("notca.pem"))
        )),
        "{got}"
    );
}

/// A PEM CERTIFICATE section whose body is not a certificate.
fn fake_certificate_pem() -> String {
    "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n".into()
}

#[test]
fn expiry_is_reported_and_warned_about() {
    let dir = Dir::new("expiry");
    let leaf = Ca::new("ca").leaf(&["e.test", "f.test"], P256);
    let m = Material::load(&listener(&dir, &[&leaf])).unwrap();
    let exp = m.expiries();
    assert_eq!(exp.len(), 1);
    assert_eq!(exp[0].0, "e.test");
    let end = exp[0].1;
    assert!(m
        .expiry_warnings(end - Duration::from_secs(8 * 86400))
        .is_empty());
    let soon = m.expiry_warnings(end - Duration::from_secs(3 * 86400));
    assert_eq!(soon.len(), 1);
    assert!(
        soon[0].contains("certificate for e.test expires at") && soon[0].contains("in 72 hours"),
        "{soon:?}"
    );
    let past = m.expiry_warnings(end + Duration::from_secs(1));
    assert!(
        past[0].contains("certificate for e.test expired at"),
        "{past:?}"
    );
}

#[test]
fn wildcard_names_cover_one_label() {
    let cases = [
        ("a.example.com", "a.example.com", true),
        ("a.example.com", "A.EXAMPLE.COM", true),
        ("a.example.com", "b.example.com", false),
        ("*.example.com", "a.example.com", true),
        ("*.example.com", "a.b.example.com", false),
        ("*.example.com", "example.com", false),
        ("*.example.com", ".example.com", false),
    ];
    for (pattern, sni, want) in cases {
        assert_eq!(name_matches(pattern, sni), want, "{pattern} {sni}");
    }
}
