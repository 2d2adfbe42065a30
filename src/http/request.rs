//! Request heads: parse (httparse) and validate (RFC 9112 framing, smuggling defences), then write
//! the head the upstream receives into a reused buffer: hop-by-hop headers stripped,
//! X-Forwarded-*, X-Request-Id. Runs on the shard thread that owns the connection.

use std::io::Write;
use std::mem::MaybeUninit;
use std::net::IpAddr;

use super::framing::{is_hop_by_hop, ConnectionTokens, FramingError, FramingScan};
use super::head_rules::{HeadRules, NameVerdict};
use super::target::Target;
use super::{host as host_syntax, trace};
use super::{name_is, BodyFraming, Head, MAX_HEADERS};

/// The request methods the proxy treats specially; the rest pass through by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Other,
}

impl Method {
    fn from_name(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: safe to send twice (retry on a fresh connection).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// What the connection task needs to know about a validated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head in the input buffer; the body (if any) starts here.
    pub head_len: usize,
    pub method: Method,
    pub http10: bool,
    pub body: BodyFraming,
    /// The client asked to keep the connection open after this exchange.
    pub keep_alive: bool,
    /// A protocol upgrade the route allows (WebSocket) went upstream: tunnel after a 101.
    pub upgrade: bool,
    /// `Expect: 100-continue` on a request with a body, from an HTTP/1.1 client.
    pub expect_continue: bool,
    /// The expectation went upstream (route `expect = "forward"`): its 100 is awaited.
    pub expect_forwarded: bool,
    /// The plan said to answer locally: no upstream head was written.
    pub answer_locally: bool,
    /// `TE` lists `trailers`: dropped from the HTTP/1.1 upstream head (hop-by-hop), kept as
    /// `te: trailers` for an HTTP/2 upstream (gRPC needs it).
    pub te_trailers: bool,
    /// The request id sent upstream (the client's, up to 64 bytes, or the generated one).
    pub request_id: RequestId,
    /// The W3C trace id (32 hex digits) when the request carries or started a trace.
    pub trace_id: Option<[u8; 32]>,
}

/// A request id kept by value, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    bytes: [u8; 64],
    len: u8,
}

impl RequestId {
    fn new(v: &[u8]) -> RequestId {
        let len = v.len().min(64);
        let mut bytes = [0; 64];
        bytes[..len].copy_from_slice(&v[..len]);
        RequestId {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What routing sees of a valid request head, before anything is written upstream.
pub struct Parsed<'b> {
    pub method: &'b [u8],
    /// The origin-form target (an absolute-form target's path and query, `/` when empty).
    pub target: &'b [u8],
    /// The Host header (empty when absent).
    pub host: &'b [u8],
    pub headers: &'b [httparse::Header<'b>],
    pub content_length: Option<u64>,
}

/// What the route decided about the head the upstream receives.
pub struct Plan<'p> {
    /// The caller answers itself (direct response, 404, 413, 429): write nothing upstream.
    pub answer_locally: bool,
    /// Path rewrite: replace the first `strip` bytes of the target by `prefix`.
    pub strip: usize,
    pub prefix: &'p [u8],
    /// Headers set on the request (replacing same-named ones) and removed (lower-case names).
    pub add: &'p [(String, String)],
    pub remove: &'p [String],
    /// `Upgrade` protocols forwarded (lower-case; see http/upgrade.rs).
    pub upgrades: &'p [String],
    /// Send `Expect: 100-continue` upstream instead of answering it here.
    pub forward_expect: bool,
    /// Start a trace when the request carries no valid `traceparent`.
    pub trace_start: bool,
    /// The span id this hop forwards with, and the trace id a started trace gets.
    pub span_id: u64,
    pub new_trace: u128,
}

impl Plan<'_> {
    /// Forward unchanged (tests, and routes without edits).
    pub fn forward() -> Plan<'static> {
        Plan {
            answer_locally: false,
            strip: 0,
            prefix: b"",
            add: &[],
            remove: &[],
            upgrades: &[],
            forward_expect: false,
            trace_start: false,
            span_id: 1,
            new_trace: 1,
        }
    }
}

/// Why a request head is refused; each maps to one canned response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    BadRequest,
    UriTooLong,
    HeadersTooLarge,
    NotImplemented,
    ExpectationFailed,
}

impl Reject {
    /// The status the client gets before the connection closes.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::UriTooLong => 414,
            Reject::HeadersTooLarge => 431,
            Reject::NotImplemented => 501,
            Reject::ExpectationFailed => 417,
        }
    }

    /// The canned response carrying `status()`.
    pub fn response(self) -> &'static [u8] {
        super::canned::response(self.status())
    }
}

/// Per-request facts the rewritten head carries.
pub struct Forwarding<'a> {
    pub client_ip: IpAddr,
    /// Written as X-Request-Id when the client sent none (32 hex digits).
    pub request_id: u128,
    /// Host sent upstream when an HTTP/1.0 client sent none.
    pub fallback_host: &'a [u8],
    /// Underscored header names and `--strict-http` (from the request's config version).
    pub rules: HeadRules,
    /// The client spoke TLS to us: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The verified client certificate as an `X-Forwarded-Client-Cert` value (mTLS).
    pub client_cert: Option<&'a [u8]>,
    /// The client is a trusted proxy: the `X-Forwarded-Client-Cert` it sent is kept (otherwise it
    /// is dropped, so a client cannot claim a certificate it did not present).
    pub trusted_peer: bool,
}

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
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Result<Head<Request>, Reject>, String) {
        let fwd = Forwarding {
            client_ip: "10.1.2.3".parse().unwrap(),
            request_id: 0xabc,
            fallback_host: b"up:80",
            rules: HeadRules::default(),
            https: false,
            client_cert: None,
            trusted_peer: false,
        };
        let mut out = Vec::new();
        let ws = vec!["websocket".to_string()];
        let plan = |_: &Parsed<'_>| Plan {
            upgrades: &ws,
            ..Plan::forward()
        };
        let r = process(input, false, 8192, &fwd, plan, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn reject(input: &[u8]) -> Reject {
        run(input).0.expect_err("should be rejected")
    }

    #[test]
    fn rewrites_headers() {
        let (r, out) = run(b"GET /a?b HTTP/1.1\r\nHost: ex.com\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n");
        let Ok(Head::Complete(req)) = r else {
            panic!("{r:?}")
        };
        assert!(req.keep_alive && !req.http10 && req.body == BodyFraming::None);
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\nX-Request-Id: 00000000000000000000000000000abc\r\n\r\n"
        );
    }

    #[test]
    fn keeps_client_request_id_and_upgrade() {
        let (r, out) = run(b"GET /ws HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert!(matches!(
            r,
            Ok(Head::Complete(Request { upgrade: true, .. }))
        ));
        assert!(out.contains("X-Request-Id: mine\r\n") && !out.contains("00000"));
        assert!(
            out.ends_with("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
            "{out}"
        );
    }

    #[test]
    fn ipv4_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "255.255.255.255",
            "1.20.100.9",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn http10_defaults() {
        let (r, out) = run(b"GET / HTTP/1.0\r\n\r\n");
        assert!(matches!(
            r,
            Ok(Head::Complete(Request {
                keep_alive: false,
                http10: true,
                ..
            }))
        ));
        assert!(out.contains("Host: up:80\r\n"));
        let (r, _) = run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(matches!(
            r,
            Ok(Head::Complete(Request {
                keep_alive: true,
                ..
            }))
        ));
    }

    #[test]
    fn listed_request_id_is_replaced() {
        let (_, out) = run(
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nConnection: X-Request-Id\r\n\r\n",
        );
        assert!(
            !out.contains("mine") && out.contains("X-Request-Id: 0000"),
            "{out}"
        );
    }

    #[test]
    fn http10_empty_host_gets_fallback() {
        let (r, out) = run(b"GET / HTTP/1.0\r\nHost:\r\n\r\n");
        assert!(matches!(r, Ok(Head::Complete(_))), "{r:?}");
        assert_eq!(out.matches("Host:").count(), 1, "{out}");
        assert!(out.contains("Host: up:80\r\n"), "{out}");
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(run(b"GET / HTTP/1.1\r\nHost: x\r\n").0, Ok(Head::Partial));
        let fwd = Forwarding {
            client_ip: "::1".parse().unwrap(),
            request_id: 1,
            fallback_host: b"",
            rules: HeadRules::default(),
            https: false,
            client_cert: None,
            trusted_peer: false,
        };
        let long = [b"GET /".as_slice(), &[b'a'; 200]].concat();
        assert_eq!(
            process(&long, true, 100, &fwd, |_| Plan::forward(), &mut Vec::new()),
            Err(Reject::UriTooLong)
        );
        let big = b"GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaa";
        assert_eq!(
            process(big, true, 100, &fwd, |_| Plan::forward(), &mut Vec::new()),
            Err(Reject::HeadersTooLarge)
        );
    }

    #[test]
    fn rejects_table() {
        let cases: &[(&str, &[u8], Reject)] = &[
            ("missing host", b"GET / HTTP/1.1\r\n\r\n", Reject::BadRequest),
            ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Reject::BadRequest),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reject::BadRequest),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", Reject::BadRequest),
            ("bare cr", b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", Reject::BadRequest),
            ("cl and te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", Reject::BadRequest),
            ("unknown te", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", Reject::NotImplemented),
            ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Reject::NotImplemented),
            ("bad expect", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", Reject::ExpectationFailed),
            ("bad version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("connection lists content-length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello", Reject::BadRequest),
            ("connection lists transfer-encoding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n", Reject::BadRequest),
            ("connection lists host", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n", Reject::BadRequest),
            ("dot-dot segment", b"GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("dot segment", b"GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("trailing dot-dot", b"GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("encoded dot-dot", b"GET /a/%2e%2E/b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("half-encoded dot-dot", b"GET /a/.%2e/b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("encoded slash", b"GET /a%2F..%2fb HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
            ("absolute form, other host", b"GET http://public.ex/x HTTP/1.1\r\nHost: admin.ex\r\n\r\n", Reject::BadRequest),
            ("absolute form, no host", b"OPT http://`/b HTTP/1.0\r\n\r\n", Reject::BadRequest),
        ];
        for (name, input, want) in cases {
            assert_eq!(reject(input), *want, "case {name}");
        }
    }

    #[test]
    fn each_reject_has_one_status_and_its_response_carries_it() {
        let cases = [
            (Reject::BadRequest, 400),
            (Reject::UriTooLong, 414),
            (Reject::HeadersTooLarge, 431),
            (Reject::NotImplemented, 501),
            (Reject::ExpectationFailed, 417),
        ];
        for (r, want) in cases {
            assert_eq!(r.status(), want, "{r:?}");
            let text = std::str::from_utf8(r.response()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {want} ")),
                "{r:?}: {text}"
            );
        }
    }
}
