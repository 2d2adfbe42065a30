//! The `[[listeners]]` entries of the config file: raw (address, PROXY protocol, h2c, `tls` table) and
//! checked into a `Listener`; errors name `listeners[i].addr`, `listeners[i].tls.alpn`, …
//! Main thread.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::entry::{err, EntryError, S};
use crate::config::ListenerTls;
use crate::config::{check_alpn, default_alpn, parse_listen, CertPaths, ClientAuth, Listener};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    addr: Spanned<String>,
    #[serde(default)]
    proxy_protocol: bool,
    h2c: S<bool>,
    tls: S<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificates: Spanned<Vec<Spanned<RawCert>>>,
    client_ca: S<String>,
    client_auth: S<String>,
    alpn: S<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    cert: Spanned<String>,
    key: Spanned<String>,
}

impl RawListener {
    /// Where the entry's address is written.
    pub fn addr_span(&self) -> Range<usize> {
        self.addr.span()
    }
}

/// Where each file the entry names is written, as (sub-field under `listeners[i]`, span), so an
/// error found when the file is read names its line.
pub type FileSpans = Vec<(String, Range<usize>)>;

pub fn listener(i: usize, raw: RawListener) -> Result<(Listener, FileSpans), EntryError> {
    let addr = parse_listen(raw.addr.get_ref())
        .map_err(|m| (raw.addr.span(), format!("listeners[{i}].addr"), m))?;
    let mut spans = FileSpans::new();
    let h2c = match raw.h2c {
        Some(h) if *h.get_ref() && raw.tls.is_some() => {
            return err(
                h.span(),
                format!("listeners[{i}].h2c"),
                "h2c is HTTP/2 over plain TCP: a TLS listener cannot take it (HTTP/2 over TLS \
                 is negotiated by ALPN)",
            )
        }
        h => h.is_some_and(|h| h.into_inner()),
    };
    let tls = match raw.tls {
        None => None,
        Some(t) => Some(tls(i, t, &mut spans)?),
    };
    let l = Listener {
        addr,
        proxy_protocol: raw.proxy_protocol,
        tls,
        h2c,
        bound: None,
    };
    Ok((l, spans))
}

fn tls(i: usize, raw: Spanned<RawTls>, spans: &mut FileSpans) -> Result<ListenerTls, EntryError> {
    let f = |k: &str| format!("listeners[{i}].tls.{k}");
    let span = raw.span();
    let raw = raw.into_inner();
    let mut certificates = Vec::new();
    let list_span = raw.certificates.span();
    for (j, c) in raw.certificates.into_inner().into_iter().enumerate() {
        let c = c.into_inner();
        for (what, p) in [("cert", &c.cert), ("key", &c.key)] {
            if p.get_ref().is_empty() {
                return err(
                    p.span(),
                    f(&format!("certificates[{j}].{what}")),
                    "empty path",
                );
            }
            spans.push((format!("tls.certificates[{j}].{what}"), p.span()));
        }
        certificates.push(CertPaths {
            cert: PathBuf::from(c.cert.into_inner()),
            key: PathBuf::from(c.key.into_inner()),
        });
    }
    if certificates.is_empty() {
        return err(
            list_span,
            f("certificates"),
            "at least one { cert, key } pair is required",
        );
    }
    let client_ca = match raw.client_ca {
        None => None,
        Some(ca) if ca.get_ref().is_empty() => return err(ca.span(), f("client_ca"), "empty path"),
        Some(ca) => {
            spans.push(("tls.client_ca".into(), ca.span()));
            Some(PathBuf::from(ca.into_inner()))
        }
    };
    let client_auth = match raw.client_auth {
        None => ClientAuth::Required,
        Some(_) if client_ca.is_none() => {
            return err(
                span,
                f("client_auth"),
                "needs client_ca (the CA client certificates chain to)",
            )
        }
        Some(a) => ClientAuth::parse(a.get_ref()).ok_or_else(|| {
            let msg = format!("{:?}: use {}", a.get_ref(), ClientAuth::HELP);
            (a.span(), f("client_auth"), msg)
        })?,
    };
    let alpn = match raw.alpn {
        None => default_alpn(),
        Some(a) => {
            let span = a.span();
            let a = a.into_inner();
            check_alpn(&a).map_err(|m| (span, f("alpn"), m))?;
            a
        }
    };
    Ok(ListenerTls {
        certificates,
        client_ca,
        client_auth,
        alpn,
        material: None,
    })
}
