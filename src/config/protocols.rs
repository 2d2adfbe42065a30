//! Validated protocol settings of a route or of the whole process: which `Upgrade` protocols are
//! forwarded (the allow-list), and who answers `Expect: 100-continue`. Pure; main thread (config
//! load) and every thread that reads the `Config`.

/// The upgrade allow-list when neither the file nor a flag gives one.
pub const DEFAULT_UPGRADES: &[&str] = &["websocket"];

/// Who answers a request's `Expect: 100-continue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectMode {
    /// The expectation goes upstream; its `100 Continue` (or early final answer) is relayed, and
    /// the proxy sends its own 100 when the upstream stays silent for a second.
    #[default]
    Forward,
    /// The proxy answers 100 itself and streams the body at once.
    Local,
}

impl ExpectMode {
    pub const HELP: &'static str = "use forward or local";

    pub fn parse(s: &str) -> Result<ExpectMode, String> {
        match s {
            "forward" => Ok(ExpectMode::Forward),
            "local" => Ok(ExpectMode::Local),
            other => Err(format!("{other:?}: {}", ExpectMode::HELP)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExpectMode::Forward => "forward",
            ExpectMode::Local => "local",
        }
    }
}

/// The default allow-list, owned.
pub fn default_upgrades() -> Vec<String> {
    DEFAULT_UPGRADES.iter().map(|s| s.to_string()).collect()
}

/// Checks an allow-list of upgrade protocol names (lower-cased). `h2c` is refused: RFC 9113 §3.1
/// deprecates the HTTP/1.1 upgrade to HTTP/2, and a tunnelled h2c connection would carry
/// requests past routing, limits and header rules.
pub fn parse_upgrades(list: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let name = p.to_ascii_lowercase();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        if !token {
            return Err(format!("{p:?} is not a protocol name (like \"websocket\")"));
        }
        let base = name.split('/').next().unwrap_or("");
        if base == "h2c" {
            return Err(
                "\"h2c\" cannot be allowed: RFC 9113 §3.1 deprecates the upgrade to HTTP/2, and \
                 the upgraded connection would bypass routing, limits and header rules"
                    .into(),
            );
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The `--upgrades` flag: a comma-separated list, or `none` for an empty one.
pub fn parse_upgrades_flag(s: &str) -> Result<Vec<String>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let list: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
    parse_upgrades(&list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists() {
        let ok = |s: &str| parse_upgrades_flag(s).unwrap();
        assert_eq!(ok("websocket"), vec!["websocket"]);
        assert_eq!(ok("WebSocket, foo/2"), vec!["websocket", "foo/2"]);
        assert!(ok("none").is_empty());
        for bad in [
            "h2c",
            "H2C",
            "websocket,h2c",
            "h2c/1",
            "",
            "web socket",
            "a,",
        ] {
            assert!(parse_upgrades_flag(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn expect_modes() {
        assert_eq!(ExpectMode::parse("forward"), Ok(ExpectMode::Forward));
        assert_eq!(ExpectMode::parse("local"), Ok(ExpectMode::Local));
        assert!(ExpectMode::parse("Local").is_err());
    }
}
