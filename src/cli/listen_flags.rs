//! `--listen`, `--listen-tls`, `--tls-cert`/`--tls-key`, `--proxy-protocol` and `--h2c` over the file's
//! listeners: plain and TLS addresses from flags replace the file's; certificate pairs alone
//! replace those of the file's TLS listeners; `--h2c` turns h2c on for every plain listener. Main thread, at start and each reload.

use super::Args;
use crate::config::{self, CertPaths, Config, Listener, ListenerTls, Origin};

const H2C_NEEDS_PLAIN: &str = "--h2c: needs a plain listener (--listen, or one without `tls` in \
                               the config file): h2c is HTTP/2 over plain TCP";

impl Args {
    pub(super) fn apply_listeners(&self, cfg: &mut Config) -> Result<(), String> {
        let pairs = self.tls_pairs()?;
        if !self.listen.is_empty() || !self.listen_tls.is_empty() {
            let mut listeners = Vec::new();
            for l in &self.listen {
                let addr = config::parse_listen(l).map_err(|e| format!("--listen: {e}"))?;
                cfg.origins.replace(
                    &format!("listeners[{}]", listeners.len()),
                    Origin::Flag("--listen"),
                );
                listeners.push(Listener {
                    addr,
                    proxy_protocol: self.proxy_protocol,
                    tls: None,
                    h2c: self.h2c,
                    bound: None,
                });
            }
            for l in &self.listen_tls {
                let addr = config::parse_listen(l).map_err(|e| format!("--listen-tls: {e}"))?;
                let Some(pairs) = &pairs else {
                    return Err(
                        "--listen-tls: needs --tls-cert FILE and --tls-key FILE (a certificate \
                         chain and its key)"
                            .into(),
                    );
                };
                cfg.origins.replace(
                    &format!("listeners[{}]", listeners.len()),
                    Origin::Flag("--listen-tls"),
                );
                record_pairs(cfg, listeners.len(), pairs.len());
                listeners.push(Listener {
                    addr,
                    proxy_protocol: self.proxy_protocol,
                    tls: Some(ListenerTls::new(pairs.clone())),
                    h2c: false,
                    bound: None,
                });
            }
            if pairs.is_some() && self.listen_tls.is_empty() {
                return Err(
                    "--tls-cert: needs --listen-tls (--listen addresses are plain HTTP)".into(),
                );
            }
            if self.h2c && self.listen.is_empty() {
                return Err(H2C_NEEDS_PLAIN.into());
            }
            cfg.listeners = listeners;
            return Ok(());
        }
        if self.proxy_protocol {
            cfg.listeners
                .iter_mut()
                .for_each(|l| l.proxy_protocol = true);
        }
        if self.h2c {
            let plain = cfg.listeners.iter_mut().filter(|l| l.tls.is_none());
            if plain.map(|l| l.h2c = true).count() == 0 {
                return Err(
                    "--h2c: needs a plain listener (--listen, or one without `tls` in \
                            the config file): h2c is HTTP/2 over plain TCP"
                        .into(),
                );
            }
        }
        if let Some(pairs) = pairs {
            let mut any = false;
            for i in 0..cfg.listeners.len() {
                if let Some(tls) = &mut cfg.listeners[i].tls {
                    tls.certificates = pairs.clone();
                    record_pairs(cfg, i, pairs.len());
                    any = true;
                }
            }
            if !any {
                return Err(
                    "--tls-cert: needs --listen-tls (or a TLS listener in the config file)".into(),
                );
            }
        }
        Ok(())
    }

    /// The `--tls-cert`/`--tls-key` pairs in order (`None` when neither is given).
    fn tls_pairs(&self) -> Result<Option<Vec<CertPaths>>, String> {
        let (certs, keys) = (&self.tls_cert, &self.tls_key);
        if certs.is_empty() && keys.is_empty() {
            return Ok(None);
        }
        if certs.len() != keys.len() {
            let flag = if certs.len() < keys.len() {
                "--tls-cert"
            } else {
                "--tls-key"
            };
            return Err(format!(
                "{flag}: {} --tls-cert but {} --tls-key: give them in pairs, in order (each \
                 certificate followed by its key)",
                certs.len(),
                keys.len()
            ));
        }
        for (flag, list) in [("--tls-cert", certs), ("--tls-key", keys)] {
            if list.iter().any(|p| p.is_empty()) {
                return Err(format!("{flag}: empty path"));
            }
        }
        let pairs = certs
            .iter()
            .zip(keys)
            .map(|(c, k)| CertPaths {
                cert: c.into(),
                key: k.into(),
            })
            .collect();
        Ok(Some(pairs))
    }
}

/// Errors about listener `i`'s certificate or key files name the flag that gave them.
fn record_pairs(cfg: &mut Config, i: usize, n: usize) {
    let base = format!("listeners[{i}].tls.certificates");
    cfg.origins.replace(&base, Origin::Flag("--tls-cert"));
    for j in 0..n {
        cfg.origins
            .set(format!("{base}[{j}].cert"), Origin::Flag("--tls-cert"));
        cfg.origins
            .set(format!("{base}[{j}].key"), Origin::Flag("--tls-key"));
    }
}
