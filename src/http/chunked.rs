//! Sans-IO chunked transfer-coding decoder (RFC 9112 §7.1). It validates the framing byte by byte
//! so a body can be relayed verbatim (request smuggling defence) or de-chunked (HTTP/1.0 clients),
//! and it says exactly where the message ends, so pipelined bytes after it are kept.

use std::ops::Range;

/// Longest chunk extension and trailer section accepted, in bytes.
const MAX_EXTENSION: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// Not a hex chunk size, or none at all.
    BadSize,
    /// A chunk size that does not fit 64 bits.
    SizeOverflow,
    /// A line not ended by CRLF where one was due.
    BadLineEnd,
    ExtensionTooLong,
    TrailersTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// Whitespace after the size: only `;` may follow.
    SizeSpace,
    /// Inside a chunk extension, up to CR.
    Extension,
    /// CR seen after the size line; LF must follow.
    SizeLf,
    /// This many data bytes of the current chunk remain.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// One step of decoding: how much input was consumed, which part of it was body data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub consumed: usize,
    /// Payload bytes within the input (empty when this step only consumed framing).
    pub data: Range<usize>,
    /// The last-chunk and trailers are complete; bytes after `consumed` belong to the next message.
    pub done: bool,
}

/// Decoder state carried across reads.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    size: u64,
    /// At least one hex digit of the current size was read (leading zeros are unbounded).
    has_digit: bool,
    extension: usize,
    trailers: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Size,
            size: 0,
            has_digit: false,
            extension: 0,
            trailers: 0,
        }
    }
}

impl Decoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The last chunk was read: what `feed` consumes from here to `done` is the trailer section
    /// (its field lines and the final CRLF).
    pub fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf
        )
    }

    /// Consumes framing from `input` up to and including at most one run of data bytes.
    /// Call again with the rest while `consumed < input.len()` and not `done`.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Data(left) => {
                    let take = left.min((input.len() - i) as u64) as usize;
                    let rest = left - take as u64;
                    self.state = if rest == 0 {
                        State::DataCr
                    } else {
                        State::Data(rest)
                    };
                    return Ok(Step {
                        consumed: i + take,
                        data: i..i + take,
                        done: false,
                    });
                }
                State::Size => match hex(b) {
                    Some(d) => {
                        if self.size > u64::MAX >> 4 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.size = self.size << 4 | u64::from(d);
                        self.has_digit = true;
                    }
                    None if !self.has_digit => return Err(ChunkError::BadSize),
                    None => match b {
                        b';' => self.state = State::Extension,
                        b' ' | b'\t' => self.state = State::SizeSpace,
                        b'\r' => self.state = State::SizeLf,
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::SizeSpace => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Extension,
                    _ => return Err(ChunkError::BadSize),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => {
                        self.extension += 1;
                        if self.extension > MAX_EXTENSION {
                            return Err(ChunkError::ExtensionTooLong);
                        }
                    }
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    let last = self.size == 0;
                    self.state = if last {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                    self.size = 0;
                    self.has_digit = false;
                    self.extension = 0;
                    if last {
                        // A step ends at the trailer section, so a caller can take it apart.
                        return Ok(Step {
                            consumed: i + 1,
                            data: 0..0,
                            done: false,
                        });
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    self.state = match b {
                        b'\r' => State::EndLf,
                        b'\n' => return Err(ChunkError::BadLineEnd),
                        _ => State::TrailerLine,
                    };
                    self.count_trailer()?;
                }
                State::TrailerLine => {
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => return Err(ChunkError::BadLineEnd),
                        _ => {}
                    }
                    self.count_trailer()?;
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: i + 1,
                        data: 0..0,
                        done: true,
                    });
                }
                State::Done => {
                    return Ok(Step {
                        consumed: i,
                        data: 0..0,
                        done: true,
                    })
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: 0..0,
            done: self.state == State::Done,
        })
    }

    fn count_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError::TrailersTooLong);
        }
        Ok(())
    }
}

/// Validates the start of a chunked body without keeping state: `Err` when the bytes seen so far
/// already break the framing (so the request can be refused before anything is forwarded).
pub fn check_prefix(mut input: &[u8]) -> Result<(), ChunkError> {
    let mut d = Decoder::default();
    while !input.is_empty() && !d.is_done() {
        let step = d.feed(input)?;
        input = &input[step.consumed..];
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns (payload, bytes consumed).
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() && !d.is_done() {
            let end = (pos + step).min(input.len());
            let piece = &input[pos..end];
            let mut off = 0;
            while off < piece.len() && !d.is_done() {
                let s = d.feed(&piece[off..])?;
                out.extend_from_slice(&piece[off + s.data.start..off + s.data.end]);
                off += s.consumed;
            }
            pos += off;
            if off < piece.len() {
                break;
            }
        }
        Ok((out, pos))
    }

    #[test]
    fn valid_bodies_in_any_split() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("simple", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            ("two chunks", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde"),
            ("upper hex", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            ("extension", b"3;name=v\r\nabc\r\n0;x\r\n\r\n", b"abc"),
            ("space before ext", b"3 ;x\r\nabc\r\n0\r\n\r\n", b"abc"),
            ("trailers", b"1\r\na\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n", b"a"),
            ("leading zeros", b"0003\r\nabc\r\n0\r\n\r\n", b"abc"),
        ];
        for (name, input, want) in cases {
            for step in [1, 2, 3, 7, input.len()] {
                let (body, used) = decode(input, step).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_eq!(&body, want, "case {name} step {step}");
                assert_eq!(used, input.len(), "case {name} step {step}");
            }
        }
    }

    #[test]
    fn any_number_of_leading_zeros() {
        for zeros in [255, 256, 257, 512] {
            let input = [vec![b'0'; zeros], b"5\r\nhello\r\n0\r\n\r\n".to_vec()].concat();
            assert_eq!(decode(&input, 64).unwrap().0, b"hello", "{zeros} zeros");
        }
    }

    #[test]
    fn prefix_check() {
        assert!(check_prefix(b"5\r\nhel").is_ok());
        assert!(check_prefix(b"").is_ok());
        assert_eq!(check_prefix(b"zz\r\n"), Err(ChunkError::BadSize));
        assert_eq!(check_prefix(b"1\r\naX"), Err(ChunkError::BadLineEnd));
    }

    /// A step ends right after the last chunk, so what follows up to `done` is exactly the
    /// trailer section (relayed as HTTP/2 trailers).
    #[test]
    fn a_step_ends_at_the_trailer_section() {
        let input = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let mut d = Decoder::default();
        let mut at = 0;
        while !d.in_trailers() {
            at += d.feed(&input[at..]).unwrap().consumed;
        }
        assert_eq!(&input[..at], b"3\r\nabc\r\n0\r\n");
        let step = d.feed(&input[at..]).unwrap();
        assert!(step.done && !d.in_trailers());
        assert_eq!(&input[at..at + step.consumed], b"X-Sum: 1\r\n\r\n");
    }

    #[test]
    fn stops_at_message_end() {
        let (body, used) = decode(b"2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 64).unwrap();
        assert_eq!((body.as_slice(), used), (&b"hi"[..], 12));
    }

    #[test]
    fn invalid_bodies() {
        let cases: &[(&str, &[u8], ChunkError)] = &[
            ("not hex", b"zz\r\n", ChunkError::BadSize),
            ("empty size", b"\r\n", ChunkError::BadSize),
            (
                "overflow",
                b"ffffffffffffffffff\r\n",
                ChunkError::SizeOverflow,
            ),
            ("bare lf after size", b"3\nabc\r\n", ChunkError::BadSize),
            (
                "missing crlf after data",
                b"3\r\nabcX",
                ChunkError::BadLineEnd,
            ),
            ("bare cr", b"3\rabc", ChunkError::BadLineEnd),
            ("negative", b"-1\r\n", ChunkError::BadSize),
            ("space in size", b"1 2\r\n", ChunkError::BadSize),
            (
                "bare lf in trailer",
                b"0\r\nX: 1\n\r\n",
                ChunkError::BadLineEnd,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(decode(input, 64).map(|_| ()), Err(*want), "case {name}");
        }
    }
}
