//! `shardgate::http::chunked::Decoder` on arbitrary bytes fed in arbitrary pieces: the payload,
//! the end of the message and the error do not depend on how the bytes were split over reads,
//! and they agree with a small independent reference decoder written below.
//! Input: one byte K (K % 8 split points follow), K % 8 bytes placing the splits, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardgate::http::chunked::{ChunkError, Decoder};

#[path = "common.rs"]
mod common;
use common::esc;

/// What decoding a whole input gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The message ended after `consumed` bytes (the rest belongs to the next message).
    Done { payload: Vec<u8>, consumed: usize },
    /// Every byte was consumed and more are needed.
    NeedMore { payload: Vec<u8> },
    Error(ChunkError),
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let k = usize::from(k % 8).min(rest.len());
    let (marks, body) = rest.split_at(k);
    let mut splits: Vec<usize> = marks.iter().map(|&m| usize::from(m) * body.len() / 255).collect();
    splits.sort_unstable();

    let whole = decode(body, &[]);
    let bytewise: Vec<usize> = (1..body.len()).collect();
    let one_by_one = decode(body, &bytewise);
    let split = decode(body, &splits);
    assert_eq!(whole, one_by_one, "byte-at-a-time differs\nbody: {}", esc(body));
    assert_eq!(whole, split, "split at {splits:?} differs\nbody: {}", esc(body));

    let reference = reference(body);
    assert_eq!(whole, reference, "differs from the reference decoder\nbody: {}", esc(body));
});

/// Feeds `input` as separate reads cut at `cuts` (sorted, may repeat), as the relay loop does.
fn decode(input: &[u8], cuts: &[usize]) -> Outcome {
    let mut d = Decoder::default();
    let mut payload = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().chain([input.len()]) {
        let read = &input[start..end.max(start)];
        let mut off = 0;
        while off < read.len() {
            let piece = &read[off..];
            let step = match d.feed(piece) {
                Ok(s) => s,
                Err(e) => return Outcome::Error(e),
            };
            assert!(step.consumed <= piece.len(), "consumed {} of {}", step.consumed, piece.len());
            assert!(
                step.data.start <= step.data.end && step.data.end <= step.consumed,
                "data {:?} outside consumed {}",
                step.data,
                step.consumed
            );
            assert_eq!(step.done, d.is_done());
            assert!(step.consumed > 0 || step.done, "no progress on {} bytes", piece.len());
            payload.extend_from_slice(&piece[step.data.clone()]);
            off += step.consumed;
            if step.done {
                // Finished: more input is left alone.
                let again = d.feed(&read[off..]).expect("feed after done");
                assert_eq!((again.consumed, again.data.is_empty(), again.done), (0, true, true));
                return Outcome::Done { payload, consumed: start + off };
            }
        }
        start = end.max(start);
    }
    assert!(!d.is_done());
    Outcome::NeedMore { payload }
}

// ---- Reference decoder: RFC 9112 §7.1 grammar, read line by line over the whole input ---------
//
// chunked-body = *chunk last-chunk trailer-section CRLF
// chunk        = 1*HEXDIG [ *(SP / HTAB) ";" ext-bytes ] CRLF chunk-data CRLF
// ext-bytes    = any bytes but CR and LF, at most 4096 per size line
// trailer line = 1*(any byte but CR and LF) CRLF; trailer bytes (lines, their CRs and the final
//                CR) at most 16 KiB in all.
// An error is reported at the first byte that cannot start or continue a valid body; running out
// of bytes before that is NeedMore.

const MAX_EXTENSION: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

fn reference(input: &[u8]) -> Outcome {
    let mut payload = Vec::new();
    let mut pos = 0;
    macro_rules! need {
        () => {
            if pos >= input.len() {
                return Outcome::NeedMore { payload };
            }
        };
    }
    macro_rules! expect {
        ($byte:expr, $err:expr) => {
            need!();
            if input[pos] != $byte {
                return Outcome::Error($err);
            }
            pos += 1;
        };
    }
    loop {
        // chunk-size
        let digits_start = pos;
        let mut size: u128 = 0;
        while let Some(d) = input.get(pos).copied().and_then(hex) {
            size = size * 16 + u128::from(d);
            if size > u128::from(u64::MAX) {
                return Outcome::Error(ChunkError::SizeOverflow);
            }
            pos += 1;
        }
        need!();
        if pos == digits_start {
            return Outcome::Error(ChunkError::BadSize);
        }
        // [ BWS ";" chunk-ext ] CR
        if matches!(input[pos], b' ' | b'\t') {
            while pos < input.len() && matches!(input[pos], b' ' | b'\t') {
                pos += 1;
            }
            need!();
            if input[pos] != b';' {
                return Outcome::Error(ChunkError::BadSize);
            }
        }
        match input[pos] {
            b';' => {
                pos += 1;
                let rest = &input[pos..];
                let stop = rest.iter().position(|&b| b == b'\r' || b == b'\n');
                let len = stop.unwrap_or(rest.len());
                if len > MAX_EXTENSION {
                    return Outcome::Error(ChunkError::ExtensionTooLong);
                }
                match stop {
                    None => return Outcome::NeedMore { payload },
                    Some(i) if rest[i] == b'\n' => return Outcome::Error(ChunkError::BadLineEnd),
                    Some(i) => pos += i + 1,
                }
            }
            b'\r' => pos += 1,
            _ => return Outcome::Error(ChunkError::BadSize),
        }
        expect!(b'\n', ChunkError::BadLineEnd);
        if size == 0 {
            break;
        }
        // chunk-data CRLF
        let size = size as usize; // fits: it is at most what is left, or we return NeedMore
        let left = input.len() - pos;
        if left < size {
            payload.extend_from_slice(&input[pos..]);
            return Outcome::NeedMore { payload };
        }
        payload.extend_from_slice(&input[pos..pos + size]);
        pos += size;
        expect!(b'\r', ChunkError::BadLineEnd);
        expect!(b'\n', ChunkError::BadLineEnd);
    }
    // trailer-section CRLF
    let mut counted = 0;
    loop {
        let rest = &input[pos..];
        let stop = rest.iter().position(|&b| b == b'\r' || b == b'\n');
        let len = stop.unwrap_or(rest.len());
        let with_cr = len + usize::from(matches!(stop, Some(i) if rest[i] == b'\r'));
        if counted + with_cr > MAX_TRAILERS {
            return Outcome::Error(ChunkError::TrailersTooLong);
        }
        counted += with_cr;
        match stop {
            None => return Outcome::NeedMore { payload },
            Some(i) if rest[i] == b'\n' => return Outcome::Error(ChunkError::BadLineEnd),
            Some(i) => pos += i + 1,
        }
        expect!(b'\n', ChunkError::BadLineEnd);
        if len == 0 {
            return Outcome::Done { payload, consumed: pos };
        }
    }
}
