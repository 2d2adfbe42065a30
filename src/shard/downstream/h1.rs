//! The HTTP/1.1 connection as the pipeline's `Downstream`: the request body is read from the
//! connection's stream (its first bytes already in `buf`), responses are written to it, local
//! answers carry `Connection: close` when the connection cannot go on, and an attempt lends the
//! connection's stream and buffers to the upstream's HTTP/1.1 side (`Relay`). Over any `Wire`.
//! Shard thread, on the connection's task.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::client::{refuse, Client};
use crate::error::ClientError;
use crate::http::request::{Method, Request};
use crate::http::{canned, chunked, BodyFraming};
use crate::shard::io::{write_vec, Wire};
use crate::shard::pipeline::admission::Scratch;
use crate::shard::pipeline::{Downstream, Local};
use crate::shard::upstream::attempt::{Done, Failed, Limits, Tally};
use crate::shard::upstream::h2pool::H2Lease;
use crate::shard::upstream::relay::Relay;
use crate::shard::upstream::{h1, h2_from_h1};
use crate::tls::Negotiated;

impl<S: Wire> Client<S> {
    /// The connection's stream and buffers, lent to one upstream attempt.
    fn relay(&mut self) -> Relay<'_, S> {
        Relay {
            stream: &mut self.stream,
            buf: &mut self.buf,
            up_buf: &mut self.up_buf,
            head: &mut self.head,
            out: &mut self.out,
            extra: &self.scratch.extra,
            replay: &mut self.replay,
        }
    }
}

impl<S: Wire> Downstream for Client<S> {
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
    fn protocol(&self, req: &Request) -> &'static str {
        if req.http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    fn begin_body(&mut self, req: &Request) -> Result<(), ClientError> {
        self.buf.consume(req.head_len);
        self.replay.reset();
        if req.body == BodyFraming::Chunked && chunked::check_prefix(self.buf.data()).is_err() {
            return Err(ClientError::BadBody);
        }
        Ok(())
    }

    async fn refuse(&mut self, bytes: &'static [u8], idle: Duration) -> u64 {
        refuse(&mut self.stream, bytes, idle).await;
        bytes.len() as u64
    }

    async fn answer(
        &mut self,
        req: &Request,
        local: &Local<'_>,
        draining: bool,
        idle: Duration,
    ) -> Option<(u64, bool)> {
        // A request body is not read: the connection cannot carry another request after it.
        let bodiless = matches!(req.body, BodyFraming::None | BodyFraming::Length(0));
        let keep = bodiless && req.keep_alive && !req.http10 && !draining;
        self.buf.consume(req.head_len);
        let out = &mut self.out;
        out.clear();
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            local.status,
            canned::reason(local.status),
            local.content_type,
            local.body.len()
        );
        out.extend_from_slice(&self.scratch.extra);
        out.extend_from_slice(if keep {
            b"\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        if req.method != Method::Head {
            out.extend_from_slice(local.body);
        }
        let n = out.len() as u64;
        write_vec(&mut self.stream, out, idle).await.ok()?;
        Some((n, keep))
    }

    fn attempt<'a, U: Wire>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut U,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a {
        h1::attempt(self.relay(), req, up, limits, retry_status, tally)
    }

    fn attempt_h2<'a>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut H2Lease,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a {
        h2_from_h1::attempt(self.relay(), req, up, limits, retry_status, tally)
    }
}

#[cfg(test)]
mod tests;
