//! Header names and values a route may match, add or remove (`headers`, `request_headers_*`,
//! `response_headers_*`): token and value checks, the framing headers no route may touch, and the
//! checked `HeaderEdits`. Main thread.

use std::collections::HashMap;
use std::ops::Range;

use super::entry::{err, spanned, EntryError, S};
use crate::config::HeaderEdits;

pub fn header_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers that frame or route the message: a route may not add or remove them.
fn framing_header(n: &str) -> bool {
    const FRAMING: [&str; 9] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
    ];
    FRAMING.iter().any(|f| n.eq_ignore_ascii_case(f))
}

pub fn header_value_ok(v: &str) -> bool {
    v.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

pub fn edits(
    add: S<HashMap<String, String>>,
    remove: S<Vec<String>>,
    entry: Range<usize>,
    field: impl Fn(&str) -> String,
) -> Result<HeaderEdits, EntryError> {
    let mut e = HeaderEdits::default();
    let (add, span) = spanned(add, &entry);
    let mut add: Vec<_> = add.into_iter().collect();
    add.sort();
    for (n, v) in add {
        if !header_name_ok(&n) || !header_value_ok(&v) {
            return err(
                span,
                field("add"),
                format!("{n:?}: {v:?} is not a valid header"),
            );
        }
        if framing_header(&n) {
            return err(
                span,
                field("add"),
                format!("{n:?} frames the message and cannot be set"),
            );
        }
        e.add.push((n, v));
    }
    let (remove, span) = spanned(remove, &entry);
    for n in remove {
        if !header_name_ok(&n) || framing_header(&n) {
            return err(
                span,
                field("remove"),
                format!("{n:?} is not a header name a route may remove"),
            );
        }
        e.remove.push(n.to_ascii_lowercase());
    }
    Ok(e)
}
