//! Request heads: parse (httparse) and validate (RFC 9112 framing, smuggling defences), then write
//! the head the upstream receives into a reused buffer: hop-by-hop headers stripped,
//! X-Forwarded-*, X-Request-Id. Runs on the shard thread that owns the connection. The types it
//! takes and gives are in `request/types.rs`, its unit tests in `request/tests.rs`.

use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::framing::{is_hop_by_hop, ConnectionTokens, FramingError, FramingScan};
use super::head_rules::NameVerdict;
use super::target::Target;
use super::{host as host_syntax, trace};
use super::{name_is, BodyFraming, Head, MAX_HEADERS};

mod types;

pub use types::{Forwarding, Method, Parsed, Plan, Reject, Request, RequestId};

/// Parses and validates the head at the start of `buf`, asks `plan` (routing) what to do with it,
/// and then `out` holds the upstream head. `full` says the buffer cannot take more bytes, so a
/// partial head is too large.
pub fn process<'p>(
    buf: &[u8],
    full: bool,
    max_line: usize,
    fwd: &Forwarding<'_>,
    plan: impl FnOnce(&Parsed<'_>) -> Plan<'p>,
    out: &mut Vec<u8>,
) -> Result<Head<Request>, Reject> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return match (full, buf.iter().position(|&b| b == b'\n')) {
                (_, Some(eol)) if eol > max_line => Err(Reject::UriTooLong),
                (false, _) => Ok(Head::Partial),
                (true, None) => Err(Reject::UriTooLong),
                (true, Some(_)) => Err(Reject::HeadersTooLarge),
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadersTooLarge),
        Err(_) => return Err(Reject::BadRequest),
    };
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(head_len);
    if line_len > max_line {
        return Err(Reject::UriTooLong);
    }
    let rules = fwd.rules;
    if !rules.raw_head_ok(&buf[..head_len]) {
        return Err(Reject::BadRequest);
    }
    let (Some(method_name), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::BadRequest);
    };
    let http10 = minor == 0;
    let method = Method::from_name(method_name);
    if method_name == "CONNECT" {
        return Err(Reject::NotImplemented);
    }

    // Pass 1: framing, Connection tokens, Host, Expect, Upgrade.
    let mut framing = FramingScan::default();
    let mut conn = ConnectionTokens::default();
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut expect_continue = false;
    let mut upgrade_value: Option<&[u8]> = None;
    let mut has_request_id = false;
    let mut request_id: &[u8] = b"";
    let mut traceparent: Option<&[u8]> = None;
    let mut traceparents = 0;
    let mut te_trailers = false;
    for h in req.headers.iter() {
        match rules.name(h.name) {
            NameVerdict::Keep => {}
            NameVerdict::Drop => continue,
            NameVerdict::Refuse => return Err(Reject::BadRequest),
        }
        if framing.header(h.name, h.value) {
            continue;
        }
        if name_is(h.name, "te") {
            te_trailers |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        } else if name_is(h.name, "host") {
            hosts += 1;
            host = Some(h.value);
        } else if name_is(h.name, "connection") {
            conn.add(h.value);
        } else if name_is(h.name, "expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(Reject::ExpectationFailed);
            }
        } else if name_is(h.name, "upgrade") {
            upgrade_value = Some(h.value);
        } else if name_is(h.name, "x-request-id") {
            has_request_id = true;
            request_id = h.value;
        } else if name_is(h.name, "traceparent") {
            traceparents += 1;
            traceparent = Some(h.value);
        }
    }
    if hosts > 1 || (!http10 && hosts == 0) || host.is_some_and(|h| h.is_empty() && !http10) {
        return Err(Reject::BadRequest);
    }
    if conn.must_refuse() {
        return Err(Reject::BadRequest);
    }
    if host.is_some_and(|h| !h.is_empty() && !host_syntax::is_valid(h)) {
        return Err(Reject::BadRequest);
    }
    let Some(target) = Target::parse(target.as_bytes(), method == Method::Options, rules.strict)
    else {
        return Err(Reject::BadRequest);
    };
    // An absolute-form target comes with a Host equal to its authority (routes match Host, the
    // upstream gets it); without a Host (HTTP/1.0) the upstream would get the fallback host.
    if target
        .authority
        .is_some_and(|a| !host.is_some_and(|h| h.eq_ignore_ascii_case(a)))
    {
        return Err(Reject::BadRequest);
    }
    // An empty Host (HTTP/1.0 only) is replaced like a missing one; a listed X-Request-Id is
    // dropped as hop-by-hop, so a new one is generated.
    let host = host.filter(|h| !h.is_empty());
    let has_request_id = has_request_id && !conn.lists("x-request-id");
    let body = framing.request(http10).map_err(|e| match e {
        FramingError::Invalid => Reject::BadRequest,
        FramingError::UnknownCoding => Reject::NotImplemented,
    })?;
    let upgrade = !http10 && conn.upgrade && upgrade_value.is_some();
    let expect_continue =
        expect_continue && !http10 && !matches!(body, BodyFraming::None | BodyFraming::Length(0));
    let keep_alive = if http10 {
        conn.keep_alive && !conn.close
    } else {
        !conn.close
    };

    let plan = plan(&Parsed {
        method: method_name.as_bytes(),
        target: target.routing(),
        host: host.unwrap_or(b""),
        headers: req.headers,
        content_length: match body {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::None => Some(0),
            _ => None,
        },
    });
    let request_id = if has_request_id {
        RequestId::new(request_id)
    } else {
        RequestId::new(&hex32(fwd.request_id))
    };
    let mut done = Request {
        head_len,
        method,
        http10,
        body,
        keep_alive,
        upgrade: false,
        expect_continue,
        expect_forwarded: false,
        answer_locally: plan.answer_locally,
        te_trailers,
        request_id,
        trace_id: None,
    };
    out.clear();
    if plan.answer_locally {
        return Ok(Head::Complete(done));
    }

    // Pass 2: the head the upstream receives.
    out.extend_from_slice(method_name.as_bytes());
    out.push(b' ');
    target.write(out, plan.strip, plan.prefix);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        let n = h.name;
        let dropped = rules.name(n) == NameVerdict::Drop
            || is_hop_by_hop(n)
            || name_is(n, "traceparent")
            || plan.remove.iter().any(|r| name_is(n, r))
            || plan.add.iter().any(|(a, _)| name_is(n, a))
            || conn.lists(n)
            || (name_is(n, "host") && host.is_none())
            || name_is(n, "upgrade")
            || name_is(n, "expect")
            || name_is(n, "http2-settings")
            || name_is(n, "x-forwarded-for")
            || name_is(n, "x-forwarded-proto")
            || name_is(n, "x-forwarded-host")
            || (name_is(n, "x-forwarded-client-cert") && !fwd.trusted_peer);
        if !dropped {
            header(out, n.as_bytes(), h.value);
        }
    }
    if host.is_none() {
        header(out, b"Host", fwd.fallback_host);
    }
    out.extend_from_slice(b"X-Forwarded-For: ");
    for h in req
        .headers
        .iter()
        .filter(|h| name_is(h.name, "x-forwarded-for"))
    {
        out.extend_from_slice(h.value);
        out.extend_from_slice(b", ");
    }
    push_ip(out, fwd.client_ip);
    out.extend_from_slice(if fwd.https {
        b"\r\nX-Forwarded-Proto: https\r\n".as_slice()
    } else {
        b"\r\nX-Forwarded-Proto: http\r\n".as_slice()
    });
    if let Some(h) = host {
        header(out, b"X-Forwarded-Host", h);
    }
    if let Some(c) = fwd.client_cert {
        header(out, b"X-Forwarded-Client-Cert", c);
    }
    if !has_request_id {
        header(out, b"X-Request-Id", done.request_id.as_bytes());
    }
    for (n, v) in plan.add {
        header(out, n.as_bytes(), v.as_bytes());
    }
    // Several traceparent fields make the trace context invalid (http/trace.rs): none is used.
    let incoming = traceparent
        .filter(|_| traceparents == 1)
        .and_then(trace::parse);
    if incoming.is_some() || plan.trace_start {
        done.trace_id = trace::forward(
            incoming.as_ref(),
            plan.span_id,
            plan.new_trace,
            plan.trace_start,
            out,
        );
    }
    if let (true, Some(u)) = (upgrade, upgrade_value) {
        done.upgrade = super::upgrade::write_allowed(out, u, plan.upgrades);
    }
    if expect_continue && plan.forward_expect {
        out.extend_from_slice(b"Expect: 100-continue\r\n");
        done.expect_forwarded = true;
    }
    out.extend_from_slice(b"\r\n");
    Ok(Head::Complete(done))
}

#[inline]
pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes an address as text; IPv4 (the common case) without the formatting machinery.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if o >= 100 {
                    out.push(b'0' + o / 100);
                }
                if o >= 10 {
                    out.push(b'0' + o / 10 % 10);
                }
                out.push(b'0' + o % 10);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

fn hex32(v: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 32];
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((v >> ((31 - i) * 4)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests;
