//! A library request's body (`Body`): none, bytes held in memory (sent again on a retry), or a
//! stream the caller feeds chunk by chunk through a `BodySender` while the request is under way
//! (a one-chunk local channel: the sender waits until the connection took the previous chunk,
//! so memory stays bounded). Embedding thread (`Rc`, no locks).

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::Error;

/// The body of a request sent through a [`Client`](super::Client).
///
/// ```
/// use shardgate::embed::Body;
/// let empty = Body::empty();
/// let held = Body::from("hello");
/// let (sender, streamed) = Body::channel(Some(1 << 20)); // 1 MiB, fed by `sender`
/// # drop((empty, held, sender, streamed));
/// ```
pub struct Body {
    kind: Kind,
}

pub(super) enum Kind {
    Empty,
    Full(Bytes),
    Stream {
        channel: Rc<RefCell<Channel>>,
        length: Option<u64>,
    },
}

/// The sending half of a streamed body ([`Body::channel`]). Call [`finish`](Self::finish) after
/// the last chunk: a sender dropped without it fails the request with
/// [`Error::RequestBody`](super::Error::RequestBody) (the upstream sees an incomplete body).
pub struct BodySender {
    channel: Rc<RefCell<Channel>>,
}

#[derive(Default)]
pub(super) struct Channel {
    chunk: Option<Bytes>,
    finished: bool,
    aborted: bool,
    /// The request ended (answered or failed) and takes no more of the body.
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Body {
    /// No body.
    pub fn empty() -> Body {
        Body { kind: Kind::Empty }
    }

    /// A body streamed from the returned [`BodySender`]: sent with `Content-Length: length`
    /// when given (the sender must send exactly that many bytes), chunked otherwise. A streamed
    /// body is read once, so a request that carries one is never retried.
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// use shardgate::embed::Body;
    /// let (mut tx, body) = Body::channel(None); // chunked
    /// monoio::spawn(async move {
    ///     for _ in 0..4 {
    ///         if tx.send(vec![b'x'; 64 * 1024]).await.is_err() {
    ///             return; // the request ended early
    ///         }
    ///     }
    ///     tx.finish();
    /// });
    /// let req = http::Request::post("http://api.internal/upload").body(body).unwrap();
    /// let resp = client.send(req).await?;
    /// # drop(resp); Ok(()) }
    /// ```
    pub fn channel(length: Option<u64>) -> (BodySender, Body) {
        let channel = Rc::new(RefCell::new(Channel::default()));
        let body = Body {
            kind: Kind::Stream {
                channel: channel.clone(),
                length,
            },
        };
        (BodySender { channel }, body)
    }

    pub(super) fn kind(&self) -> &Kind {
        &self.kind
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body {
            kind: if b.is_empty() {
                Kind::Empty
            } else {
                Kind::Full(b)
            },
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::from(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Body {
    fn from(v: &'static [u8]) -> Body {
        Body::from(Bytes::from_static(v))
    }
}

impl From<&'static str> for Body {
    fn from(v: &'static str) -> Body {
        Body::from(Bytes::from_static(v.as_bytes()))
    }
}

impl From<String> for Body {
    fn from(v: String) -> Body {
        Body::from(Bytes::from(v))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Body {
        Body::empty()
    }
}

impl BodySender {
    /// Hands one chunk to the request, waiting until the connection has taken the previous one.
    /// Fails with [`Error::UpstreamClosed`](super::Error::UpstreamClosed) when the request no
    /// longer takes its body (it failed, or the upstream answered early).
    pub async fn send(&mut self, chunk: impl Into<Bytes>) -> Result<(), Error> {
        let chunk = chunk.into();
        poll_fn(|cx| {
            let mut c = self.channel.borrow_mut();
            if c.closed {
                return Poll::Ready(Err(Error::UpstreamClosed));
            }
            if c.chunk.is_some() {
                c.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await?;
        let mut c = self.channel.borrow_mut();
        if !chunk.is_empty() {
            c.chunk = Some(chunk);
        }
        if let Some(w) = c.reader.take() {
            w.wake();
        }
        Ok(())
    }

    /// Ends the body after the chunks sent so far.
    pub fn finish(self) {
        self.channel.borrow_mut().finished = true;
        // Drop wakes the reader.
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        let mut c = self.channel.borrow_mut();
        if !c.finished {
            c.aborted = true;
        }
        if let Some(w) = c.reader.take() {
            w.wake();
        }
    }
}

/// The request's side of a streamed body.
pub(super) async fn next_chunk(channel: &RefCell<Channel>) -> Result<Option<Bytes>, Error> {
    poll_fn(|cx| {
        let mut c = channel.borrow_mut();
        if let Some(chunk) = c.chunk.take() {
            if let Some(w) = c.writer.take() {
                w.wake();
            }
            return Poll::Ready(Ok(Some(chunk)));
        }
        if c.aborted {
            return Poll::Ready(Err(Error::RequestBody));
        }
        if c.finished {
            return Poll::Ready(Ok(None));
        }
        c.reader = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// The request ended: a sender still sending is told so.
pub(super) fn close(channel: &RefCell<Channel>) {
    let mut c = channel.borrow_mut();
    c.closed = true;
    if let Some(w) = c.writer.take() {
        w.wake();
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("Body::Empty"),
            Kind::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Kind::Stream { length, .. } => write!(f, "Body::Stream(length {length:?})"),
        }
    }
}

impl std::fmt::Debug for BodySender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodySender")
    }
}
