//! TLS listener configuration through the binary: `--check` loads every certificate, key and
//! client CA a listener names (files written by `openssl` here: RSA with a PKCS#1 key, ECDSA
//! P-256 with a SEC1 key, a CA) and exits 0, or 2 with `FILE: message` located at the flag or
//! file:line:col that named the file; flag pairing errors; a certificate close to expiry is
//! warned about; a reload with a broken key keeps the old config, a good one takes the new files.

#[path = "tls_config/pems.rs"]
mod pems;
mod support;

use std::path::Path;
use std::time::Duration;

use pems::Pems;
use support::proxy::Run;
use support::*;

/// A config file whose only listener serves `pairs` (cert, key), with `extra` in its tls table.
fn toml(pems: &Pems, pairs: &[(&str, &str)], extra: &str) -> String {
    let certs: Vec<String> = pairs
        .iter()
        .map(|(c, k)| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                pems.path(c),
                pems.path(k)
            )
        })
        .collect();
    format!(
        "upstreams = [\"127.0.0.1:9\"]\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\
         tls = {{ certificates = [{}]{extra} }}\n",
        certs.join(", ")
    )
}

fn check_file(text: &str) -> (Run, TempFile) {
    let file = temp_file("tls", text);
    (run(&["--config", file.path(), "--check"]), file)
}

#[test]
fn a_good_tls_config_checks_ok() {
    let pems = Pems::new("good");
    let extra = format!(
        ", client_ca = \"{}\", client_auth = \"optional\", alpn = [\"http/1.1\"]",
        pems.path("ca.pem")
    );
    let (out, file) = check_file(&toml(
        &pems,
        &[("rsa.pem", "rsa.key"), ("ec.pem", "ec.key")],
        &extra,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("{}: ok", file.path())),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    let flags = [
        "--listen-tls",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--tls-cert",
        &pems.path("rsa.pem"),
        "--tls-key",
        &pems.path("rsa.key"),
        "--tls-cert",
        &pems.path("ec.pem"),
        "--tls-key",
        &pems.path("ec.key"),
        "--tls-handshake-timeout",
        "3s",
        "--check",
    ];
    let out = run(&flags);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
}

#[test]
fn each_broken_file_fails_the_check_with_its_name() {
    let pems = Pems::new("broken");
    let missing = pems.path("missing.pem");
    // (pairs, extra, field of the error, file named, message)
    type Case<'a> = (Vec<(&'a str, &'a str)>, String, &'a str, String, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("missing.pem", "ec.key")],
            String::new(),
            "listeners[0].tls.certificates[0].cert",
            missing.clone(),
            "cannot read: No such file",
        ),
        (
            vec![("ec.key", "ec.key")],
            String::new(),
            "listeners[0].tls.certificates[0].cert",
            pems.path("ec.key"),
            "no certificate in PEM",
        ),
        (
            vec![("ec.pem", "soon.pem")],
            String::new(),
            "listeners[0].tls.certificates[0].key",
            pems.path("soon.pem"),
            "no private key in PEM",
        ),
        (
            vec![("ec.pem", "ec.pem")],
            String::new(),
            "listeners[0].tls.certificates[0].key",
            pems.path("ec.pem"),
            "no private key in PEM",
        ),
        (
            vec![("garbage.pem", "ec.key")],
            String::new(),
            "listeners[0].tls.certificates[0].cert",
            pems.path("garbage.pem"),
            "not a valid PEM file",
        ),
        (
            vec![("rsa.pem", "rsa.key"), ("ec.pem", "rsa.key")],
            String::new(),
            "listeners[0].tls.certificates[1].key",
            pems.path("rsa.key"),
            "key does not match the certificate in",
        ),
        (
            vec![("ec.pem", "ec.key")],
            format!(", client_ca = \"{}\"", pems.path("garbage.pem")),
            "listeners[0].tls.client_ca",
            pems.path("garbage.pem"),
            "not a valid PEM file",
        ),
        (
            vec![("ec.pem", "ec.key")],
            format!(", client_ca = \"{}\"", pems.path("ec.key")),
            "listeners[0].tls.client_ca",
            pems.path("ec.key"),
            "no certificate in PEM",
        ),
    ];
    for (pairs, extra, field, path, message) in cases {
        let (out, file) = check_file(&toml(&pems, &pairs, &extra));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{field} {message}: {}",
            out.stderr
        );
        let want = format!("{path}: {message}");
        assert!(
            out.stderr.contains(&format!("{}:5:", file.path()))
                && out.stderr.contains(field)
                && out.stderr.contains(&want),
            "want file:5:COL: {field}: {want}, got {}",
            out.stderr
        );
    }
}

#[test]
fn a_broken_file_given_by_flag_names_the_flag() {
    let pems = Pems::new("flagfile");
    let out = run(&[
        "--listen-tls",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--tls-cert",
        &pems.path("ec.pem"),
        "--tls-key",
        &pems.path("rsa.key"),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let want = format!(
        "error: --tls-key: {}: key does not match the certificate in {}",
        pems.path("rsa.key"),
        pems.path("ec.pem")
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
}

#[test]
fn flag_pairing_errors_name_the_flag() {
    let pems = Pems::new("pairs");
    let (c, k) = (pems.path("ec.pem"), pems.path("ec.key"));
    let base = ["--upstream", "127.0.0.1:9", "--check"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                &c,
                "--tls-cert",
                &c,
                "--tls-key",
                &k,
            ],
            "error: --tls-key: 2 --tls-cert but 1 --tls-key",
        ),
        (
            vec!["--listen-tls", "127.0.0.1:0", "--tls-key", &k],
            "error: --tls-cert: 0 --tls-cert but 1 --tls-key",
        ),
        (
            vec!["--listen-tls", "127.0.0.1:0"],
            "error: --listen-tls: needs --tls-cert FILE and --tls-key FILE",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--tls-cert", &c, "--tls-key", &k],
            "error: --tls-cert: needs --listen-tls",
        ),
        (
            vec!["--listen-tls", "nowhere", "--tls-cert", &c, "--tls-key", &k],
            "error: --listen-tls: \"nowhere\" is not an IP:port",
        ),
        (
            vec![
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                &c,
                "--tls-key",
                &k,
                "--tls-handshake-timeout",
                "0s",
            ],
            "error: --tls-handshake-timeout: must be greater than 0",
        ),
    ];
    for (args, want) in cases {
        let out = run(&[&args[..], &base[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(want),
            "{args:?}: want {want:?}, got {}",
            out.stderr
        );
    }
}

#[test]
fn file_errors_in_the_tls_table_are_located() {
    let pems = Pems::new("table");
    let ca = format!(", client_ca = \"{}\"", pems.path("ca.pem"));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            toml(&pems, &[], ""),
            "listeners[0].tls.certificates",
            "at least one { cert, key } pair",
        ),
        (
            toml(
                &pems,
                &[("ec.pem", "ec.key")],
                ", client_auth = \"optional\"",
            ),
            "listeners[0].tls.client_auth",
            "needs client_ca",
        ),
        (
            toml(
                &pems,
                &[("ec.pem", "ec.key")],
                &format!("{ca}, client_auth = \"maybe\""),
            ),
            "listeners[0].tls.client_auth",
            "use required or optional",
        ),
        (
            toml(&pems, &[("ec.pem", "ec.key")], ", alpn = [\"h3\"]"),
            "listeners[0].tls.alpn",
            "\"h3\" is not served over TLS",
        ),
        (
            toml(&pems, &[("ec.pem", "ec.key")], ", alpn = []"),
            "listeners[0].tls.alpn",
            "at least one protocol",
        ),
        (
            toml(&pems, &[("ec.pem", "ec.key")], ", ciphers = [\"x\"]"),
            "listeners[0].tls",
            "unknown field `ciphers`",
        ),
        (
            format!(
                "{}\n[timeouts]\ntls_handshake = \"0s\"\n",
                toml(&pems, &[("ec.pem", "ec.key")], "")
            ),
            "timeouts.tls_handshake",
            "must be greater than 0",
        ),
    ];
    for (text, field, message) in cases {
        let (out, file) = check_file(&text);
        assert_eq!(out.status.code(), Some(2), "{field}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{}:", file.path()))
                && out.stderr.contains(field)
                && out.stderr.contains(message),
            "want {field}: {message}, got {}",
            out.stderr
        );
    }
}

#[test]
fn a_certificate_close_to_expiry_is_warned_about() {
    let pems = Pems::new("expiry");
    let (out, _file) = check_file(&toml(
        &pems,
        &[("ec.pem", "ec.key"), ("soon.pem", "ec.key")],
        "",
    ));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let want = format!(
        "warning: {}: certificate for soon.test expires at",
        pems.path("soon.pem")
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert!(!out.stderr.contains(&pems.path("ec.pem")), "{}", out.stderr);
}

/// A plain listener first (what the test connects to) and a TLS one serving `pair`.
fn reload_config(pems: &Pems, pair: (&str, &str)) -> String {
    format!("listen = [\"127.0.0.1:0\"]\n{}", toml(pems, &[pair], ""))
}

#[test]
fn a_reload_with_a_broken_key_keeps_the_old_certificates() {
    let pems = Pems::new("reload");
    let up = Upstream::fixed("ok");
    let text =
        reload_config(&pems, ("ec.pem", "ec.key")).replace("127.0.0.1:9", &up.addr.to_string());
    let file = temp_file("tls-reload", &text);
    let proxy = Proxy::start(&["--config", file.path()]);
    std::fs::write(&file.0, text.replace("ec.key", "rsa.key")).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    let line = proxy
        .wait_stderr(Duration::from_secs(5), "reload failed")
        .expect("a `reload failed` line");
    let want = format!(
        "{}: key does not match the certificate in",
        pems.path("rsa.key")
    );
    assert!(
        line.contains(&want) && line.contains(&format!("{}:6:", file.path())),
        "{line}"
    );
    let running = admin(&proxy, "GET", "/config").text();
    assert!(
        running.contains(&format!("key = \"{}\"", pems.path("ec.key"))),
        "{running}"
    );
    assert_eq!(proxy.connect().exchange(&get("/")).status, 200);

    let renewed = text.replace("ec.pem", "soon.pem");
    std::fs::write(&file.0, renewed).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line");
    let running = admin(&proxy, "GET", "/config").text();
    assert!(
        running.contains(&format!("cert = \"{}\"", pems.path("soon.pem"))),
        "{running}"
    );
    assert!(Path::new(&pems.path("soon.pem")).exists());
}
