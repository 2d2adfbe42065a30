//! The client's side of an HTTP/1.1 exchange as the upstream's HTTP/1.1 code sees it (`Relay`):
//! borrowed from the client connection for one attempt, so the upstream layer never names the
//! front-end's types. Shard thread.

use super::replay::RawReplay;
use crate::shard::io::Buf;

/// The client's side of an HTTP/1.1 exchange, borrowed from its connection for one attempt: the
/// stream, the bytes read from it, the upstream buffer, the head sent upstream (kept across
/// retries), the response head buffer, the header lines admission adds to the response, and the
/// body bytes kept for sending again after a refused HTTP/2 stream.
pub struct Relay<'a, S> {
    pub stream: &'a mut S,
    pub buf: &'a mut Buf,
    pub up_buf: &'a mut Buf,
    pub head: &'a mut Vec<u8>,
    pub out: &'a mut Vec<u8>,
    pub extra: &'a [u8],
    pub replay: &'a mut RawReplay,
}
