//! The TOML config file, main thread (at start, `--check` and every reload): `load`/`parse` read
//! the text into the raw spanned tables (`raw` for the top level, `listeners`, `clusters`,
//! `routes` for the entry arrays), then `builder` checks them field by field into a `Config`.
//! The only place that says "invalid config"; every error (`error`) names file, line and field.

mod builder;
mod clusters;
mod entry;
mod error;
mod headers;
mod listeners;
mod rate_limit;
mod raw;
mod routes;

pub use error::ConfigError;

use super::{key_path, Config};
use builder::Builder;
use raw::RawFile;

/// Reads and parses `path`; `config::check` the result once flags are applied.
pub fn load(path: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_string(),
        line: 0,
        col: 0,
        field: String::new(),
        message: format!("cannot read config file: {e}"),
    })?;
    parse(path, &text)
}

/// Validates the text of a config file named `file` (the name is only used in errors).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let mut b = Builder::new(file, text);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let field = key_path::at(text, span.start);
        b.error(span, &field, e.message().trim().to_string())
    })?;
    b.build(raw)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_transport;
