//! W3C Trace Context: the `traceparent` request header, read from the client and rewritten for the
//! upstream with shardgate's own span as the parent, and the trace id for the access log.
//!
//! Pure code on the shard's connection task, once per request, writing into the connection's
//! reused output buffer. `tracestate` is not touched here: the caller passes it through as it is.
//! Several `traceparent` headers in one request make it invalid (the caller then passes `None`).

/// A parsed `traceparent`; the ids are never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The caller's span, which becomes the parent of shardgate's span.
    pub parent_id: [u8; 8],
    /// Bit 0 is `sampled`. From a version after 00 only that bit is kept.
    pub flags: u8,
}

/// The length of a version-00 value: `00-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;
/// A trace started here is marked sampled: shardgate records it (the access log's trace id).
const NEW_TRACE_FLAGS: u8 = 0x01;

/// Parses a `traceparent` value (surrounding spaces and tabs allowed).
///
/// Version 00 must be exactly 55 bytes of lower-case hex and dashes with ids not all zero. A later
/// version (not `ff`) is accepted when its first 55 bytes parse that way and, if longer, continue
/// with `-`. Anything else is `None`.
pub fn parse(value: &[u8]) -> Option<TraceParent> {
    let value = value.trim_ascii();
    let version = hex_byte(value.get(0..2)?)?;
    match version {
        0x00 if value.len() != LEN => return None,
        0xff => return None,
        _ if value.len() > LEN && value[LEN] != b'-' => return None,
        _ => {}
    }
    if value.len() < LEN || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    decode(&value[3..35], &mut trace_id)?;
    decode(&value[36..52], &mut parent_id)?;
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: if version == 0 { flags } else { flags & 0x01 },
    })
}

/// Writes `traceparent: 00-<trace>-<new span>-<flags>\r\n` into `out` (the header the upstream
/// gets) and returns the 32-hex trace id for the access log.
///
/// With `incoming`, the trace and its flags continue under `new_span`. Without it (absent, or
/// invalid and so dropped), a trace `new_trace` is started, marked sampled, when
/// `start_if_absent`; otherwise nothing is written and `None` returned. Zero ids, invalid on the
/// wire, are written as 1.
pub fn forward(
    incoming: Option<&TraceParent>,
    new_span: u64,
    new_trace: u128,
    start_if_absent: bool,
    out: &mut Vec<u8>,
) -> Option<[u8; 32]> {
    let (trace_id, flags) = match incoming {
        Some(tp) => (tp.trace_id, tp.flags),
        None if start_if_absent => (new_trace.max(1).to_be_bytes(), NEW_TRACE_FLAGS),
        None => return None,
    };
    let mut trace_hex = [0u8; 32];
    encode(&trace_id, &mut trace_hex);
    let mut span_hex = [0u8; 16];
    encode(&new_span.max(1).to_be_bytes(), &mut span_hex);
    out.extend_from_slice(b"traceparent: 00-");
    out.extend_from_slice(&trace_hex);
    out.push(b'-');
    out.extend_from_slice(&span_hex);
    out.push(b'-');
    out.extend_from_slice(&[HEX[usize::from(flags >> 4)], HEX[usize::from(flags & 0xf)]]);
    out.extend_from_slice(b"\r\n");
    Some(trace_hex)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One lower-case hex digit.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    match two {
        [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
        _ => None,
    }
}

/// Lower-case hex of twice `out`'s length into `out`.
fn decode(hex: &[u8], out: &mut [u8]) -> Option<()> {
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(())
}

fn encode(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const PARENT: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    fn tp(flags: u8) -> Option<TraceParent> {
        Some(TraceParent {
            trace_id: TRACE,
            parent_id: PARENT,
            flags,
        })
    }

    #[test]
    fn parses() {
        let cases: &[(&str, &[u8], Option<TraceParent>)] = &[
            (
                "spec example",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                tp(1),
            ),
            (
                "not sampled",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                tp(0),
            ),
            (
                "v00 flags kept whole",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                tp(3),
            ),
            (
                "surrounding whitespace",
                b" \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
                tp(1),
            ),
            (
                "upper-case hex",
                b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "upper-case flags",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                None,
            ),
            (
                "zero trace id",
                b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            (
                "zero parent id",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                None,
            ),
            (
                "v00 too long",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                None,
            ),
            (
                "v00 too short",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                None,
            ),
            (
                "short trace id",
                b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011",
                None,
            ),
            (
                "underscore separator",
                b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "non-hex in parent",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                None,
            ),
            (
                "version ff",
                b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "version not hex",
                b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "upper-case version",
                b"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
            (
                "future version",
                b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                tp(1),
            ),
            (
                "future version keeps only sampled",
                b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                tp(1),
            ),
            (
                "future version with more",
                b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever",
                tp(0),
            ),
            (
                "future version, no dash after flags",
                b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x",
                None,
            ),
            (
                "future version too short",
                b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                None,
            ),
            (
                "future version zero ids",
                b"01-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None,
            ),
            ("empty", b"", None),
            ("one byte", b"0", None),
            ("version only", b"00", None),
            (
                "not utf-8",
                b"\xff\xfe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            ),
        ];
        for (name, value, want) in cases {
            assert_eq!(parse(value), *want, "{name}");
        }
    }

    /// One `forward` call and what it must write and return.
    struct Forward {
        name: &'static str,
        incoming: Option<TraceParent>,
        span: u64,
        trace: u128,
        start: bool,
        header: &'static str,
        id: Option<&'static str>,
    }

    #[test]
    fn forwards() {
        const SPAN: u64 = 0x0123_4567_89ab_cdef;
        const NEW: u128 = 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c;
        let case = |name, incoming, start, header, id| Forward {
            name,
            incoming,
            span: SPAN,
            trace: NEW,
            start,
            header,
            id,
        };
        let cases = [
            case(
                "continues the trace under our span",
                tp(1),
                false,
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-01\r\n",
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            case(
                "keeps unsampled",
                tp(0),
                true,
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-00\r\n",
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            case(
                "keeps other flag bits",
                tp(0xa3),
                true,
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0123456789abcdef-a3\r\n",
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            case(
                "starts a sampled trace",
                None,
                true,
                "traceparent: 00-0af7651916cd43dd8448eb211c80319c-0123456789abcdef-01\r\n",
                Some("0af7651916cd43dd8448eb211c80319c"),
            ),
            case("absent and not starting", None, false, "", None),
            Forward {
                span: 0,
                trace: 0,
                ..case(
                    "zero ids become 1",
                    None,
                    true,
                    "traceparent: 00-00000000000000000000000000000001-0000000000000001-01\r\n",
                    Some("00000000000000000000000000000001"),
                )
            },
        ];
        for c in &cases {
            let mut out = b"GET / HTTP/1.1\r\n".to_vec();
            let got = forward(c.incoming.as_ref(), c.span, c.trace, c.start, &mut out);
            let name = c.name;
            assert_eq!(
                std::str::from_utf8(&out[16..]),
                Ok(c.header),
                "{name}: header"
            );
            assert_eq!(
                got.as_ref().map(|h| std::str::from_utf8(h).unwrap()),
                c.id,
                "{name}: id"
            );
            if !c.header.is_empty() {
                let value = &out[16 + "traceparent: ".len()..out.len() - 2];
                let parent = parse(value).map(|t| t.parent_id);
                assert_eq!(
                    parent,
                    Some(c.span.max(1).to_be_bytes()),
                    "{name}: round trip"
                );
            }
        }
    }
}
