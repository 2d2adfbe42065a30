//! The `[[listeners]]` entries of the config file: raw (address, PROXY protocol) and checked
//! into a `Listener`; errors name `listeners[i].addr`. Main thread.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::entry::EntryError;
use crate::config::{parse_listen, Listener};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    addr: Spanned<String>,
    #[serde(default)]
    proxy_protocol: bool,
}

impl RawListener {
    /// Where the entry's address is written.
    pub fn addr_span(&self) -> Range<usize> {
        self.addr.span()
    }
}

pub fn listener(i: usize, raw: RawListener) -> Result<Listener, EntryError> {
    let addr = parse_listen(raw.addr.get_ref())
        .map_err(|m| (raw.addr.span(), format!("listeners[{i}].addr"), m))?;
    Ok(Listener {
        addr,
        proxy_protocol: raw.proxy_protocol,
    })
}
