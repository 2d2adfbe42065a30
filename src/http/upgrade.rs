//! Which protocol upgrades go upstream: the request's `Upgrade` list filtered by the route's
//! allow-list (RFC 9110 §7.8). A protocol not allowed is dropped, not refused: `Upgrade` is a
//! request the server may ignore, so the client gets a plain HTTP/1.1 answer and carries on
//! (browsers and h2c clients fall back by design); the head then goes without `Upgrade`, without
//! the `upgrade` Connection token and without `HTTP2-Settings`, and a 101 to it is a malformed
//! response (502, never a tunnel). Pure; runs inside `request::process` on the shard thread.

/// Appends `Connection: upgrade` and an `Upgrade` field naming the protocols of `value` that
/// `allowed` (lower-case names, `name` or `name/version`) lets through, in the client's order.
/// Returns false, with `out` unchanged, when none is allowed.
pub fn write_allowed(out: &mut Vec<u8>, value: &[u8], allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return false;
    }
    let start = out.len();
    out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
    let first = out.len();
    for p in value.split(|&b| b == b',') {
        let p = p.trim_ascii();
        if !p.is_empty() && is_allowed(p, allowed) {
            if out.len() > first {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(p);
        }
    }
    if out.len() == first {
        out.truncate(start);
        return false;
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// `protocol` (`name[/version]`) matches an entry naming it exactly, or naming its `name` alone.
fn is_allowed(protocol: &[u8], allowed: &[String]) -> bool {
    let name = protocol.split(|&b| b == b'/').next().unwrap_or(b"");
    allowed.iter().any(|a| {
        let a = a.as_bytes();
        a.eq_ignore_ascii_case(protocol) || a.eq_ignore_ascii_case(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(value: &str, allowed: &[&str]) -> Option<String> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let mut out = b"GET / HTTP/1.1\r\n".to_vec();
        let kept = write_allowed(&mut out, value.as_bytes(), &allowed);
        let out = String::from_utf8(out).unwrap();
        let added = out.strip_prefix("GET / HTTP/1.1\r\n").unwrap().to_string();
        assert_eq!(kept, !added.is_empty(), "{added:?}");
        kept.then_some(added)
    }

    #[test]
    fn filters_the_list() {
        let ws = ["websocket"];
        let both = "Connection: upgrade\r\nUpgrade: websocket\r\n";
        for (name, value, allowed, want) in [
            ("websocket", "websocket", &ws[..], Some(both)),
            (
                "case",
                "WebSocket",
                &ws[..],
                Some("Connection: upgrade\r\nUpgrade: WebSocket\r\n"),
            ),
            ("h2c alone", "h2c", &ws[..], None),
            ("h2c first", "h2c, websocket", &ws[..], Some(both)),
            (
                "versioned",
                "websocket/13",
                &ws[..],
                Some("Connection: upgrade\r\nUpgrade: websocket/13\r\n"),
            ),
            ("other version", "foo/2", &["foo/1"][..], None),
            ("empty list", "websocket", &[][..], None),
            ("blank items", " , ,", &ws[..], None),
            ("prefix only", "websockets", &ws[..], None),
        ] {
            assert_eq!(run(value, allowed).as_deref(), want, "{name}");
        }
    }
}
