//! A test double for `Wire` (unit tests only): a stream that hands out scripted bytes a few at a
//! time, records everything written to it, and is not a TCP socket, so code running over it
//! proves it needs nothing but monoio's rent I/O traits (no fd, no splice). Reads past the script
//! return EOF. Test thread, inside a monoio runtime.

use std::future::Future;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

use super::io::Wire;

/// Scripted input in reads of at most `chunk` bytes; output captured in `written`.
pub struct Scripted {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    pub written: Vec<u8>,
    /// Read calls made (a relay that needed many reads shows it here).
    pub reads: usize,
}

impl Scripted {
    pub fn new(input: &[u8], chunk: usize) -> Scripted {
        Scripted {
            input: input.to_vec(),
            pos: 0,
            chunk: chunk.max(1),
            written: Vec::new(),
            reads: 0,
        }
    }

    /// Input bytes not read yet.
    pub fn unread(&self) -> &[u8] {
        &self.input[self.pos..]
    }
}

impl Wire for Scripted {}

impl AsyncReadRent for Scripted {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.reads += 1;
        let end = (self.pos + self.chunk).min(self.input.len());
        let mut part: &[u8] = &self.input[self.pos..end];
        let before = part.len();
        let (res, buf) = part.read(buf).await;
        self.pos += before - part.len();
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.reads += 1;
        let end = (self.pos + self.chunk).min(self.input.len());
        let mut part: &[u8] = &self.input[self.pos..end];
        let before = part.len();
        let (res, buf) = part.readv(buf).await;
        self.pos += before - part.len();
        (res, buf)
    }
}

impl AsyncWriteRent for Scripted {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        // SAFETY: `IoBuf` promises `bytes_init` initialised bytes at `read_ptr` while `buf` lives.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        self.written.extend_from_slice(bytes);
        let n = bytes.len();
        async move { (Ok(n), buf) }
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let _ = &buf;
        async move { (Err(std::io::ErrorKind::Unsupported.into()), buf) }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
