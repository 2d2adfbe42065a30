//! gRPC-Web ↔ gRPC, the sans-IO half of the bridge: which requests are gRPC-Web (binary
//! `application/grpc-web[+proto]` or base64 `application/grpc-web-text[+proto]`), the content
//! type each side gets, the trailer frame (flag 0x80, then `name: value\r\n` lines) that carries
//! the upstream's trailers in the response body, and the base64 of the `-text` forms, streamed
//! (chunks of any length in; padded segments may follow each other, as gRPC-Web allows). Pure
//! code; the shard's attempt code calls it per chunk.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A gRPC-Web request's wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Web {
    /// `application/grpc-web` or `application/grpc-web+proto`: gRPC frames as they are.
    Binary,
    /// `application/grpc-web-text[+proto]`: the same frames in base64.
    Text,
}

/// The gRPC-Web form of a request's `content-type`, or `None` when it is not gRPC-Web.
pub fn classify(content_type: &[u8]) -> Option<Web> {
    const TEXT: &[u8] = b"application/grpc-web-text";
    const BINARY: &[u8] = b"application/grpc-web";
    let starts = |p: &[u8]| {
        content_type.len() >= p.len()
            && content_type[..p.len()].eq_ignore_ascii_case(p)
            && matches!(content_type.get(p.len()), None | Some(b'+' | b';'))
    };
    if starts(TEXT) {
        Some(Web::Text)
    } else if starts(BINARY) {
        Some(Web::Binary)
    } else {
        None
    }
}

/// The `content-type` the gRPC upstream gets for a gRPC-Web one: `application/grpc` with the
/// same `+format` (`+proto` is gRPC's default, kept as written).
pub fn upstream_content_type(content_type: &[u8]) -> Vec<u8> {
    let suffix = classify(content_type).map_or(&b""[..], |w| {
        let base = match w {
            Web::Binary => "application/grpc-web".len(),
            Web::Text => "application/grpc-web-text".len(),
        };
        &content_type[base..]
    });
    [&b"application/grpc"[..], suffix].concat()
}

/// The `content-type` of the response to a gRPC-Web client of form `web`.
pub fn response_content_type(web: Web) -> &'static str {
    match web {
        Web::Binary => "application/grpc-web+proto",
        Web::Text => "application/grpc-web-text+proto",
    }
}

/// Appends the trailer frame for `trailers` (names lowercased, as gRPC-Web wants them).
pub fn trailer_frame<'a>(
    trailers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(&[0x80, 0, 0, 0, 0]);
    for (name, value) in trailers {
        out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let len = (out.len() - start - 5) as u32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Appends `data` in base64 (padded: each response chunk is a segment of its own).
pub fn encode_text(data: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + data.len().div_ceil(3) * 4, 0);
    let n = STANDARD
        .encode_slice(data, &mut out[at..])
        .expect("sized for the encoding");
    out.truncate(at + n);
}

/// A `-text` request body's base64, decoded as it streams: a group of four characters split
/// across chunks waits for the rest.
#[derive(Debug, Default)]
pub struct TextDecoder {
    held: Vec<u8>,
}

/// The body is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBase64;

impl TextDecoder {
    /// Decodes what `chunk` completes and appends it to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), BadBase64> {
        self.held
            .extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
        let whole = self.held.len() / 4 * 4;
        let mut run = 0;
        let mut at = 0;
        // Runs of unpadded groups decode at once; a padded group ends a segment.
        while at < whole {
            let group = &self.held[at..at + 4];
            at += 4;
            if group.contains(&b'=') {
                decode(&self.held[run..at], out)?;
                run = at;
            }
        }
        decode(&self.held[run..whole], out)?;
        self.held.drain(..whole);
        Ok(())
    }

    /// The body ended: a partial group left over is an error.
    pub fn finish(&self) -> Result<(), BadBase64> {
        if self.held.is_empty() {
            Ok(())
        } else {
            Err(BadBase64)
        }
    }
}

fn decode(b64: &[u8], out: &mut Vec<u8>) -> Result<(), BadBase64> {
    if b64.is_empty() {
        return Ok(());
    }
    let at = out.len();
    out.resize(at + b64.len() / 4 * 3, 0);
    match STANDARD.decode_slice(b64, &mut out[at..]) {
        Ok(n) => {
            out.truncate(at + n);
            Ok(())
        }
        Err(_) => {
            out.truncate(at);
            Err(BadBase64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(classify(b"application/grpc-web"), Some(Web::Binary));
        assert_eq!(classify(b"application/grpc-web+proto"), Some(Web::Binary));
        assert_eq!(classify(b"application/grpc-web-text"), Some(Web::Text));
        assert_eq!(
            classify(b"Application/gRPC-Web-Text+proto"),
            Some(Web::Text)
        );
        assert_eq!(classify(b"application/grpc"), None);
        assert_eq!(classify(b"application/grpc-webx"), None);
        assert_eq!(
            upstream_content_type(b"application/grpc-web"),
            b"application/grpc"
        );
        assert_eq!(
            upstream_content_type(b"application/grpc-web-text+proto"),
            b"application/grpc+proto"
        );
        assert_eq!(
            upstream_content_type(b"application/grpc-web+json"),
            b"application/grpc+json"
        );
    }

    #[test]
    fn trailer_frames() {
        let mut out = b"x".to_vec();
        trailer_frame(
            [("grpc-status", &b"0"[..]), ("Grpc-Message", &b"ok"[..])],
            &mut out,
        );
        let body = b"grpc-status: 0\r\ngrpc-message: ok\r\n";
        assert_eq!(out[..6], [b'x', 0x80, 0, 0, 0, body.len() as u8]);
        assert_eq!(&out[6..], body);
    }

    #[test]
    fn text_round_trip_across_any_split_and_padded_segments() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut text = Vec::new();
        // Segments of 1, 2, 3… bytes, each padded on its own, as a server may flush them.
        let mut at = 0;
        for n in 1.. {
            if at >= data.len() {
                break;
            }
            let end = (at + n).min(data.len());
            encode_text(&data[at..end], &mut text);
            at = end;
        }
        for step in [1, 2, 3, 5, 7, 64, text.len()] {
            let mut d = TextDecoder::default();
            let mut out = Vec::new();
            for chunk in text.chunks(step) {
                d.feed(chunk, &mut out).unwrap();
            }
            d.finish().unwrap();
            assert_eq!(out, data, "chunks of {step}");
        }
    }

    #[test]
    fn bad_base64_is_an_error() {
        let mut out = Vec::new();
        assert_eq!(
            TextDecoder::default().feed(b"QQ!=", &mut out),
            Err(BadBase64)
        );
        let mut d = TextDecoder::default();
        d.feed(b"QUJD", &mut out).unwrap();
        assert_eq!(out, b"ABC");
        d.feed(b"QQ", &mut out).unwrap();
        assert_eq!(d.finish(), Err(BadBase64), "a cut group at the end");
    }
}
