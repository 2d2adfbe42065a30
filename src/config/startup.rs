//! What would make a valid-looking config fail at start, found without binding anything: the same
//! address twice (also `0.0.0.0:P` beside `127.0.0.1:P`), the admin address on a listen address,
//! an access log whose directory is missing or not writable, a port below the kernel's
//! unprivileged start without CAP_NET_BIND_SERVICE, a TLS listener whose certificate, key or
//! client CA cannot be used (`FILE: message`; certificates near expiry are warned about on
//! stderr), a cluster whose upstream TLS files cannot be used (or that verifies nothing: a
//! warning). Main thread, in `config::check` (so at `--check`, start and reload alike).

use std::net::SocketAddr;
use std::path::Path;

use super::{AccessLogTarget, Config, ListenerTls, UpstreamTls};
use std::sync::Arc;

use crate::tls::{ClientMaterial, FileRole, Material};

/// The first problem found, as (config field, message). TLS listeners keep the material their
/// files gave (`ListenerTls::material`).
pub fn check(c: &mut Config) -> Result<(), (String, String)> {
    let mut taken: Vec<(SocketAddr, String)> = Vec::new();
    for (i, l) in c.listeners.iter().enumerate() {
        let field = format!("listeners[{i}]");
        if let Some((other, f)) = taken.iter().find(|(a, _)| overlap(*a, l.addr)) {
            let what = if *other == l.addr {
                "is listed twice".to_string()
            } else {
                format!("overlaps {other}")
            };
            let msg = format!("{} {what} (also {})", l.addr, c.origins.describe(f));
            return Err((field, msg));
        }
        privileged(l.addr).map_err(|m| (field.clone(), m))?;
        taken.push((l.addr, field));
    }
    if let Some(admin) = c.admin {
        if let Some((other, f)) = taken.iter().find(|(a, _)| overlap(*a, admin)) {
            let msg = format!(
                "{admin} is also a listen address ({other}, {})",
                c.origins.describe(f)
            );
            return Err(("admin".into(), msg));
        }
        privileged(admin).map_err(|m| ("admin".to_string(), m))?;
    }
    access_log(&c.access_log).map_err(|m| ("access_log".to_string(), m))?;
    tls_material(c)?;
    upstream_material(c)
}

/// Reads every TLS listener's files (again) into its `material`; on an error no listener of `c`
/// has changed. Also what the coordinator runs alone when a watched file changed.
pub fn tls_material(c: &mut Config) -> Result<(), (String, String)> {
    let mut loaded = Vec::new();
    for (i, l) in c.listeners.iter().enumerate() {
        if let Some(t) = &l.tls {
            loaded.push(Arc::new(tls(i, t)?));
        }
    }
    let tls_listeners = c.listeners.iter_mut().filter_map(|l| l.tls.as_mut());
    for (t, m) in tls_listeners.zip(loaded) {
        t.material = Some(m);
    }
    Ok(())
}

/// Reads every TLS cluster's files (CA or system roots, client certificate) into its `material`.
pub fn upstream_material(c: &mut Config) -> Result<(), (String, String)> {
    for (i, cl) in c.clusters.iter_mut().enumerate() {
        if let Some(t) = &mut cl.tls {
            t.material = Some(Arc::new(upstream_tls(i, &cl.name, &cl.endpoints, t)?));
        }
    }
    Ok(())
}

/// Loads cluster `i`'s TLS files as a shard would and checks each endpoint has a name to verify
/// its certificate for; warns on stderr when verification is off.
fn upstream_tls(
    i: usize,
    name: &str,
    endpoints: &[super::Endpoint],
    t: &UpstreamTls,
) -> Result<ClientMaterial, (String, String)> {
    let material = ClientMaterial::load(t).map_err(|e| {
        let field = match e.role() {
            Some(FileRole::Cert(_)) => format!("clusters[{i}].tls.cert"),
            Some(FileRole::Key(_)) => format!("clusters[{i}].tls.key"),
            Some(FileRole::ClientCa) => format!("clusters[{i}].tls.ca"),
            None => format!("clusters[{i}].tls"),
        };
        (field, e.to_string())
    })?;
    if t.sni.is_none() {
        for e in endpoints {
            crate::tls::server_name(None, &e.name).map_err(|m| {
                let msg = format!("{}: {m}; set tls.sni", e.name);
                (format!("clusters[{i}].endpoints"), msg)
            })?;
        }
    }
    if !t.verify {
        eprintln!(
            "warning: cluster {name}: upstream TLS certificate verification is OFF (tls.verify = \
             false): any server that reaches these endpoints' addresses is trusted"
        );
    }
    Ok(material)
}

/// Loads listener `i`'s TLS files as a shard would; the error names the field that gave the
/// file (so its flag or file:line) and says `FILE: message`.
fn tls(i: usize, t: &ListenerTls) -> Result<Material, (String, String)> {
    let material = crate::tls::Material::load(t).map_err(|e| {
        let field = match e.role() {
            Some(FileRole::Cert(j)) => format!("listeners[{i}].tls.certificates[{j}].cert"),
            Some(FileRole::Key(j)) => format!("listeners[{i}].tls.certificates[{j}].key"),
            Some(FileRole::ClientCa) => format!("listeners[{i}].tls.client_ca"),
            None => format!("listeners[{i}].tls"),
        };
        (field, e.to_string())
    })?;
    for w in material.expiry_warnings(std::time::SystemTime::now()) {
        eprintln!("warning: {w}");
    }
    Ok(material)
}

/// Two sockets cannot both bind these (port 0 picks a free port, so never clashes). A wildcard
/// address covers every address of its family; `[::]` also covers IPv4 unless
/// net.ipv6.bindv6only is set (the listeners leave IPV6_V6ONLY at that default).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let covers = |w: SocketAddr, x: SocketAddr| {
        w.ip().is_unspecified() && (w.is_ipv4() == x.is_ipv4() || (w.is_ipv6() && dual_stack()))
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// IPv6 wildcard sockets also take IPv4 (net.ipv6.bindv6only = 0, Linux's default).
fn dual_stack() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").map_or(true, |s| s.trim() == "0")
}

/// A port the kernel reserves for privileged processes needs CAP_NET_BIND_SERVICE in the
/// effective set (root without it cannot bind either; a non-root user with it can).
fn privileged(addr: SocketAddr) -> Result<(), String> {
    let port = addr.port();
    if port == 0 || u32::from(port) >= unprivileged_port_start() || can_bind_privileged() {
        return Ok(());
    }
    Err(format!(
        "port {port} is below {} (net.ipv4.ip_unprivileged_port_start) and this process lacks \
         CAP_NET_BIND_SERVICE (grant it, e.g. systemd AmbientCapabilities=CAP_NET_BIND_SERVICE, \
         or use a higher port)",
        unprivileged_port_start()
    ))
}

fn unprivileged_port_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// CAP_NET_BIND_SERVICE (bit 10) in this process's effective capabilities; assumed present when
/// /proc cannot tell.
fn can_bind_privileged() -> bool {
    const CAP_NET_BIND_SERVICE: u32 = 10;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|eff| eff & (1 << CAP_NET_BIND_SERVICE) != 0)
}

/// A file access log must be creatable (or, if present, writable) by this process.
fn access_log(target: &AccessLogTarget) -> Result<(), String> {
    let AccessLogTarget::File(path) = target else {
        return Ok(());
    };
    if path.is_dir() {
        return Err(format!(
            "{} is a directory; give a file path",
            path.display()
        ));
    }
    if path.exists() {
        return crate::sys::may_access(path, libc::W_OK)
            .map_err(|e| format!("cannot write {}: {e}", path.display()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "directory {} does not exist (create it, or change the path)",
            dir.display()
        ));
    }
    crate::sys::may_access(dir, libc::W_OK | libc::X_OK).map_err(|e| {
        format!(
            "cannot create {} in {}: {e}",
            path.file_name().map_or("".into(), |f| f.to_string_lossy()),
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn overlapping_addresses() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.1:80", "127.0.0.1:80", true),
            ("0.0.0.0:80", "127.0.0.1:80", true),
            ("127.0.0.1:80", "0.0.0.0:80", true),
            ("[::]:80", "127.0.0.1:80", super::dual_stack()),
            ("[::]:80", "[::1]:80", true),
            ("[::1]:80", "127.0.0.1:80", false),
            ("0.0.0.0:80", "[::1]:80", false),
            ("127.0.0.1:80", "127.0.0.2:80", false),
            ("127.0.0.1:80", "127.0.0.1:81", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                overlap(a.parse().unwrap(), b.parse().unwrap()),
                *want,
                "{a} {b}"
            );
        }
    }
}
