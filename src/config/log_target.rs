//! Where the access log goes (`access_log` / `--access-log`): `off`, `stdout` or a file path,
//! parsed when the config is built (main thread) and consumed by the coordinator, which starts
//! `crate::access_log::Writer` with it. Whether a file can be created is a start-up check
//! (`startup.rs`); this type only says what was asked for.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where access-log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    #[default]
    Off,
    Stdout,
    File(PathBuf),
}

impl AccessLogTarget {
    /// What a value may be, for error messages.
    pub const HELP: &'static str = "use stdout, off or a file path";
}

impl FromStr for AccessLogTarget {
    type Err = String;

    /// `off`, `stdout`, or a file path (any other non-empty text).
    fn from_str(s: &str) -> Result<AccessLogTarget, String> {
        match s {
            "" => Err(AccessLogTarget::HELP.into()),
            "off" => Ok(AccessLogTarget::Off),
            "stdout" => Ok(AccessLogTarget::Stdout),
            path => Ok(AccessLogTarget::File(PathBuf::from(path))),
        }
    }
}

/// Written back as it would be configured (`render`, error messages).
impl fmt::Display for AccessLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLogTarget::Off => f.write_str("off"),
            AccessLogTarget::Stdout => f.write_str("stdout"),
            AccessLogTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AccessLogTarget;

    #[test]
    fn targets_parse_and_print_back() {
        assert_eq!("off".parse(), Ok(AccessLogTarget::Off));
        assert_eq!("stdout".parse(), Ok(AccessLogTarget::Stdout));
        assert_eq!(
            "/var/log/sg.log".parse(),
            Ok(AccessLogTarget::File("/var/log/sg.log".into()))
        );
        assert!("".parse::<AccessLogTarget>().is_err());
        for text in ["off", "stdout", "/var/log/sg.log", "rel/a.log"] {
            let t: AccessLogTarget = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(AccessLogTarget::default(), AccessLogTarget::Off);
    }
}
