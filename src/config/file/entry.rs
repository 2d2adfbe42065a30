//! What the checks of one `[[listeners]]`, `[[clusters]]` or `[[routes]]` entry share: the
//! spanned optional value, the located `EntryError`, and duration / spanned-value helpers.
//! Main thread.

use std::ops::Range;

use toml::Spanned;

use crate::config::parse_duration;

/// An optional value and where it is written.
pub type S<T> = Option<Spanned<T>>;

/// An error in an entry: (span, field, message).
pub type EntryError = (Range<usize>, String, String);

pub fn err<T>(span: Range<usize>, field: String, msg: impl Into<String>) -> Result<T, EntryError> {
    Err((span, field, msg.into()))
}

pub fn dur(
    v: S<String>,
    field: impl Fn() -> String,
) -> Result<Option<std::time::Duration>, EntryError> {
    match v {
        None => Ok(None),
        Some(v) => parse_duration(v.get_ref())
            .map(Some)
            .map_err(|m| (v.span(), field(), m)),
    }
}

/// A duration that must be greater than zero.
pub fn positive(
    v: S<String>,
    field: impl Fn() -> String,
) -> Result<Option<std::time::Duration>, EntryError> {
    let span = v.as_ref().map(|v| v.span());
    match dur(v, &field)? {
        Some(d) if d.is_zero() => Err((
            span.unwrap_or(0..0),
            field(),
            "must be greater than 0".into(),
        )),
        d => Ok(d),
    }
}

/// The value and where it is written (the entry's span when absent).
pub fn spanned<T: Default>(v: S<T>, entry: &Range<usize>) -> (T, Range<usize>) {
    match v {
        Some(v) => {
            let span = v.span();
            (v.into_inner(), span)
        }
        None => (T::default(), entry.clone()),
    }
}
