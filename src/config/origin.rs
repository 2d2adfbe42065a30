//! Where each setting came from: a flag (`--shards`) or a place in the config file
//! (`file:line:col` and its key path, `listen[1]`). Recorded on the main thread while the file is
//! read and the flags applied on top (`Config::origins`); read by every check made on the merged
//! config (limits, start-up checks) and by the coordinator when a bind fails at start or reload,
//! so each error names what the operator wrote rather than an internal field.

use std::collections::BTreeMap;
use std::fmt;

/// Where one value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, like `--shards`.
    Flag(&'static str),
    /// Not given: the default of the flag that would set it (flags-only configs).
    Default(&'static str),
    /// A value in the config file: its position and its key path (`routes[1].name`).
    File {
        file: String,
        line: usize,
        col: usize,
        key: String,
    },
}

impl fmt::Display for Origin {
    /// `--shards`, or `t.toml:4:9: shards.count` (the prefix of an error line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Default(flag) => write!(f, "{flag} (default)"),
            Origin::File {
                file,
                line,
                col,
                key,
            } => write!(f, "{file}:{line}:{col}: {key}"),
        }
    }
}

/// Origins by config field (`shards.count`, `listeners[0]`, `admin`); a field without an entry
/// has its default, or was set as part of a larger value whose entry its parent holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    by_field: BTreeMap<String, Origin>,
}

impl Origins {
    pub fn set(&mut self, field: impl Into<String>, origin: Origin) {
        self.by_field.insert(field.into(), origin);
    }

    /// `field` and everything under it (`listeners[2]`, `shards.count`) now come from `origin`.
    pub fn replace(&mut self, field: &str, origin: Origin) {
        self.by_field.retain(|k, _| !is_under(k, field));
        self.set(field, origin);
    }

    /// Where `field` came from: its own entry, else its nearest parent's (`listeners[1]` →
    /// `listeners`).
    pub fn of(&self, field: &str) -> Option<&Origin> {
        let mut f = field;
        loop {
            if let Some(o) = self.by_field.get(f) {
                return Some(o);
            }
            f = &f[..f.rfind(['.', '['])?];
        }
    }

    /// An error about `field`, located at its origin. `source` is the config file, if any.
    pub fn invalid(&self, source: Option<&str>, field: &str, message: String) -> Invalid {
        Invalid {
            origin: self.of(field).cloned().map(Box::new),
            source: source.map(str::to_string),
            field: field.to_string(),
            message,
        }
    }

    /// How to name `field` inside another error's message: `--listen`, `t.toml:1:11 (listen[0])`,
    /// or the field itself when it has its default.
    pub fn describe(&self, field: &str) -> String {
        match self.of(field) {
            Some(Origin::Flag(flag)) => flag.to_string(),
            Some(Origin::Default(flag)) => format!("{flag} (default)"),
            Some(Origin::File {
                file,
                line,
                col,
                key,
            }) => format!("{key} at {file}:{line}:{col}"),
            None => format!("{field} (default)"),
        }
    }
}

/// `k` is `field` or a part of it (`field.x`, `field[3]`).
fn is_under(k: &str, field: &str) -> bool {
    k.strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A merged config (file + flags) that cannot run, named by where the bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `None`: the value is a default (or missing), so only the field can be named.
    pub origin: Option<Box<Origin>>,
    /// The config file, if any; named when the value has no line of its own.
    pub source: Option<String>,
    /// The config field checked (`shards.count`, `listeners[1]`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    /// `--shards: …`, `F:LINE:COL: KEY: …`, or `F: FIELD: …` / `FIELD: …` for an unset value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, &self.source) {
            (Some(o), _) => write!(f, "{o}: {}", self.message),
            (None, Some(file)) => write!(f, "{file}: {}: {}", self.field, self.message),
            (None, None) => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, key: &str) -> Origin {
        Origin::File {
            file: "t.toml".into(),
            line,
            col: 1,
            key: key.into(),
        }
    }

    #[test]
    fn nearest_parent_answers_and_replace_drops_children() {
        let mut o = Origins::default();
        o.set("listeners[0]", at(1, "listen[0]"));
        o.set("listeners[1]", at(5, "listeners[0].addr"));
        o.set("listeners_x", at(9, "x"));
        assert_eq!(o.of("listeners[1].addr"), Some(&at(5, "listeners[0].addr")));
        assert_eq!(o.of("listeners[2]"), None);
        o.replace("listeners", Origin::Flag("--listen"));
        assert_eq!(o.of("listeners[0]"), Some(&Origin::Flag("--listen")));
        assert_eq!(
            o.of("listeners_x"),
            Some(&at(9, "x")),
            "not under `listeners`"
        );
    }

    #[test]
    fn errors_name_the_flag_or_the_place() {
        let mut o = Origins::default();
        o.set("shards.count", Origin::Flag("--shards"));
        o.set("timeouts.idle", at(4, "timeouts.idle"));
        let msg = |f: &str| o.invalid(Some("t.toml"), f, "bad".into()).to_string();
        assert_eq!(msg("shards.count"), "--shards: bad");
        assert_eq!(msg("timeouts.idle"), "t.toml:4:1: timeouts.idle: bad");
        assert_eq!(msg("pool.queue"), "t.toml: pool.queue: bad");
        assert_eq!(
            o.invalid(None, "pool.queue", "bad".into()).to_string(),
            "pool.queue: bad"
        );
    }
}
