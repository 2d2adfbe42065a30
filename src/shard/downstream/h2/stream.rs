//! One HTTP/2 stream as the pipeline's `Downstream`: its task writes the request's HTTP/1.1
//! equivalent (http/h2.rs) into a kit's buffer and runs it through the same parser, admission
//! and rewrite as an HTTP/1.1 head (`request::process`), then `pipeline::handle`; local answers
//! and canned errors become HTTP/2 responses, an attempt relays through the upstream's
//! HTTP/1.1-for-HTTP/2 side (upstream/h1_from_h2.rs). A response left unfinished (an upstream
//! that failed mid-body) is reset. Shard thread, one task per stream.
//!
//! Cost of the synthetic head: one copy of the header block into the kit's buffer and one
//! httparse pass over it per stream (the HPACK decode is `h2`'s); the kit comes from the shard's
//! pool, so nothing is allocated for it in steady state.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use monoio::time::Instant;

use crate::error::ClientError;
use crate::http::request::{self, Forwarding, Method, Request};
use crate::http::{canned, grpc, h2 as translate, Head};
use crate::shard::h2io::Respond;
use crate::shard::io::{Buf, Wire};
use crate::shard::kit::Kit;
use crate::shard::pipeline::admission::{self, Scratch};
use crate::shard::pipeline::record::{self, Refused};
use crate::shard::pipeline::{self, Downstream, Local};
use crate::shard::upstream::attempt::{Done, Failed, Limits, Tally};
use crate::shard::upstream::h1_from_h2::{self, H2Side};
use crate::shard::upstream::h2_from_h2;
use crate::shard::upstream::h2pool::H2Lease;
use crate::shard::upstream::replay::ChunkReplay;
use crate::shard::Shard;
use crate::tls::Negotiated;

use super::guard::Live;

/// The client's side of one HTTP/2 stream while the pipeline serves it.
struct Stream {
    client: SocketAddr,
    /// What the connection's TLS handshake negotiated (ALPN `h2`); `None` on h2c.
    tls: Option<Rc<Negotiated>>,
    body: RecvStream,
    respond: Respond,
    /// The synthesized request head (the body never passes through it).
    buf: Buf,
    up_buf: Buf,
    head: Vec<u8>,
    out: Vec<u8>,
    scratch: Scratch,
    kit_rest: monoio::io::Canceller,
    /// A gRPC request (`content-type: application/grpc*`): the proxy's own errors go out as
    /// trailers-only responses with a `grpc-status`.
    grpc: bool,
    /// When the client stops waiting: now + its `grpc-timeout`.
    deadline: Option<std::time::Instant>,
    /// The `grpc-status` the client got, once it was sent.
    grpc_status: Option<u8>,
    /// The body an HTTP/2 upstream may refuse unprocessed (sent again then).
    replay: ChunkReplay,
}

/// Serves one stream to its end; `client` is the connection's client, `tls` what its TLS
/// handshake negotiated; `live` counts the task among the connection's running ones (and a
/// client's reset before the response was complete).
pub async fn serve(
    shard: Rc<Shard>,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    client: SocketAddr,
    tls: Option<Rc<Negotiated>>,
    live: Live,
) {
    let _in_flight = shard.drain.request();
    let streams = &shard.stats.h2_streams;
    streams.set(streams.get() + 1);
    let started = Instant::now();
    let table = shard.table();
    let (parts, body) = req.into_parts();
    let (grpc, deadline) = grpc_call(&parts.headers);
    let k = shard.kits.take();
    let mut respond = Respond::new(respond);
    if grpc {
        respond.watch_grpc();
    }
    let mut s = Stream {
        client,
        tls,
        respond,
        buf: k.buf,
        up_buf: k.up_buf,
        head: k.head,
        out: k.out,
        scratch: k.scratch,
        kit_rest: k.cancel,
        body,
        grpc,
        deadline,
        grpc_status: None,
        replay: ChunkReplay::default(),
    };
    let end_stream = s.body.is_end_stream();
    translate::request_head(&parts, end_stream, &mut s.buf.v);
    let fwd = Forwarding {
        client_ip: client.ip(),
        request_id: shard.next_request_id(),
        fallback_host: &table.fallback_host,
        rules: table.config.head_rules,
        https: s.tls.is_some(),
        client_cert: s
            .tls
            .as_ref()
            .and_then(|t| t.client_cert.as_ref())
            .map(|cc| &*cc.xfcc),
        trusted_peer: !table.trusted.is_empty() && table.trusted.contains(client.ip()),
    };
    let log = shard.log.enabled();
    let mut decided = (None, admission::Verdict::Forward);
    let scratch = &mut s.scratch;
    let processed = request::process(
        s.buf.data(),
        true,
        shard.base.shards.max_request_line,
        &fwd,
        |p| {
            let ids = (shard.next_span_id(), shard.next_request_id());
            let (plan, route, verdict) =
                admission::admit(&table, client.ip(), log, ids, p, scratch);
            decided = (route, verdict);
            plan
        },
        &mut s.head,
    );
    let idle = table.config.timeouts.body;
    match processed {
        Ok(Head::Complete(req)) => {
            let cx = shard.pipeline();
            let (route, verdict) = decided;
            pipeline::handle(&cx, &table, &mut s, &req, route, verdict, started).await;
        }
        Ok(Head::Partial) => refused(&shard, &mut s, &parts, 400, started, idle).await,
        Err(reject) => {
            let status = reject.status();
            refused(&shard, &mut s, &parts, status, started, idle).await;
        }
    }
    if s.respond.reset_seen() {
        live.reset_by_client();
    }
    s.respond.close(&mut s.body, idle).await;
    shard.kits.give(Kit {
        buf: s.buf,
        up_buf: s.up_buf,
        head: s.head,
        out: s.out,
        scratch: s.scratch,
        cancel: s.kit_rest,
    });
    streams.set(streams.get() - 1);
}

/// Answers a head the HTTP/1.1 rules refuse (400, 414, 431, 501…) and logs it.
async fn refused(
    shard: &Shard,
    s: &mut Stream,
    parts: &http::request::Parts,
    status: u16,
    started: Instant,
    idle: Duration,
) {
    let sent = s.refuse(canned::response(status), idle).await;
    let refused = Refused {
        client: s.client,
        method: parts.method.as_str().as_bytes(),
        path: parts
            .uri
            .path_and_query()
            .map_or(b"", |p| p.as_str().as_bytes()),
        protocol: "HTTP/2",
        status,
        bytes_in: s.buf.len() as u64,
        bytes_out: sent,
        tls: s.tls.as_deref(),
    };
    record::refused(&shard.pipeline(), &refused, started);
}

/// Whether a request is gRPC, and its deadline (`grpc-timeout` from now) if it names one.
fn grpc_call(h: &http::HeaderMap) -> (bool, Option<std::time::Instant>) {
    let grpc = h
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| grpc::is_grpc(v.as_bytes()));
    let deadline = h
        .get("grpc-timeout")
        .filter(|_| grpc)
        .and_then(|v| grpc::parse_timeout(v.as_bytes()))
        .and_then(|t| std::time::Instant::now().checked_add(t));
    (grpc, deadline)
}

impl Stream {
    /// The stream's request body, response and buffers, lent to one upstream attempt.
    fn side(&mut self) -> H2Side<'_> {
        H2Side {
            body: &mut self.body,
            respond: &mut self.respond,
            up_buf: &mut self.up_buf,
            head: &mut self.head,
            out: &mut self.out,
            extra: &self.scratch.extra,
            replay: &mut self.replay,
        }
    }

    /// Answers a gRPC request the proxy itself refuses: a trailers-only response (`:status`
    /// 200, `grpc-status` for `status` as Envoy maps it, DEADLINE_EXCEEDED for a timeout once
    /// the client's deadline has passed, the reason as `grpc-message`) with the lines admission
    /// added (RateLimit-*). Returns the bytes of its HTTP/1.1 form.
    fn trailers_only(&mut self, status: u16, reason: &[u8]) -> Option<u64> {
        let passed = self
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d);
        let code = if status == 504 && passed {
            grpc::code::DEADLINE_EXCEEDED
        } else {
            grpc::status_for_http(status)
        };
        let out = &mut self.out;
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: {code}\r\n"
        );
        let reason = reason.trim_ascii();
        if !reason.is_empty() {
            out.extend_from_slice(b"grpc-message: ");
            grpc::encode_message(reason, out);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.scratch.extra);
        out.extend_from_slice(b"\r\n");
        self.grpc_status = Some(code);
        let (resp, _) = translate::response(&self.out).ok()?;
        self.respond.send_head(resp, true).ok()?;
        Some(self.out.len() as u64)
    }

    /// Sends an HTTP/1.1-shaped response (head in `out`, then `body`) as an HTTP/2 response.
    async fn send(&mut self, body: &[u8], idle: Duration) -> Option<u64> {
        let (resp, _) = translate::response(&self.out).ok()?;
        self.respond.send_head(resp, body.is_empty()).ok()?;
        if !body.is_empty() {
            self.respond.send_data(body, true, idle).await.ok()?;
        }
        Some((self.out.len() + body.len()) as u64)
    }
}

impl Downstream for Stream {
    #[inline]
    fn client(&self) -> SocketAddr {
        self.client
    }

    #[inline]
    fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    #[inline]
    fn tls(&self) -> Option<&Negotiated> {
        self.tls.as_deref()
    }

    #[inline]
    fn protocol(&self, _: &Request) -> &'static str {
        "HTTP/2"
    }

    #[inline]
    fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline
    }

    #[inline]
    fn grpc(&self) -> bool {
        self.grpc
    }

    #[inline]
    fn grpc_status(&self) -> Option<u8> {
        self.grpc_status.or(self.respond.grpc_status())
    }

    fn begin_body(&mut self, _: &Request) -> Result<(), ClientError> {
        Ok(())
    }

    /// A canned error as an HTTP/2 response while the head is unsent (413, 502, 503, 504…);
    /// after that, the stream is reset (by `serve`, as the response is unfinished).
    async fn refuse(&mut self, bytes: &'static [u8], idle: Duration) -> u64 {
        if self.respond.head_sent() {
            return 0;
        }
        let Ok((resp, len)) = translate::response(bytes) else {
            return 0;
        };
        let body = &bytes[len..];
        if self.grpc {
            return self
                .trailers_only(resp.status().as_u16(), body)
                .unwrap_or(0);
        }
        if self.respond.send_head(resp, body.is_empty()).is_err() {
            return 0;
        }
        if !body.is_empty() && self.respond.send_data(body, true, idle).await.is_err() {
            return len as u64;
        }
        bytes.len() as u64
    }

    async fn answer(
        &mut self,
        req: &Request,
        local: &Local<'_>,
        _draining: bool,
        idle: Duration,
    ) -> Option<(u64, bool)> {
        if self.grpc && !(200..300).contains(&local.status) {
            return self
                .trailers_only(local.status, local.body)
                .map(|n| (n, true));
        }
        let out = &mut self.out;
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
            local.status,
            canned::reason(local.status),
            local.content_type,
            local.body.len()
        );
        out.extend_from_slice(&self.scratch.extra);
        out.extend_from_slice(b"\r\n");
        let body = if req.method == Method::Head {
            &[][..]
        } else {
            local.body
        };
        self.send(body, idle).await.map(|n| (n, true))
    }

    fn attempt<'a, U: Wire>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut U,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a {
        h1_from_h2::attempt(self.side(), req, up, limits, retry_status, tally)
    }

    fn attempt_h2<'a>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut H2Lease,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a {
        h2_from_h2::attempt(self.side(), req, up, limits, retry_status, tally)
    }
}
