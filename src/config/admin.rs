//! The admin listener's protection as configured: the token file (`admin_token_file` in the file,
//! `--admin-token-file`) read into `Config::admin_token` by `config::check` (so at `--check`, start
//! and every reload, where a rotated token takes effect), why an inline `admin_token` key is
//! refused, and the warning for an admin listener reachable from other hosts without a token.
//! Main thread (checks) and coordinator thread (a flags-only reload reads the file again).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Config;
use crate::coordinator::admin::Token;

/// Why the config file takes no `admin_token = "…"`: a config file is often world-readable,
/// copied into backups and version control; a token file can be mode 0600.
pub const INLINE_TOKEN_REFUSED: &str = "a token written in the config file is readable by whoever \
     can read the file (and its backups and history): put the token alone in a file only the \
     service user can read (chmod 600) and name it with admin_token_file = \"PATH\"";

/// Parses `admin_token_file` / `--admin-token-file`: a non-empty path (relative to the working
/// directory); the file is read by `read_token`.
pub fn parse_token_file(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("an empty path: name the file holding the admin token".into());
    }
    Ok(PathBuf::from(text))
}

/// Reads `c.admin_token_file` (when set) into `c.admin_token`; on an error (`FILE: message`,
/// reported against the field `admin_token_file`) `c` is unchanged.
pub fn read_token(c: &mut Config) -> Result<(), (String, String)> {
    if let Some(path) = &c.admin_token_file {
        let token = Token::read(path).map_err(|m| ("admin_token_file".to_string(), m))?;
        c.admin_token = Some(token);
    }
    Ok(())
}

/// The warning for an admin listener other hosts may reach (not a loopback address) that no
/// token protects, or `None`.
pub fn exposure_warning(c: &Config) -> Option<String> {
    let addr = c.admin?;
    (c.admin_token.is_none() && !is_loopback(addr)).then(|| {
        format!(
            "warning: the admin listener {addr} is not on a loopback address and no admin token \
             is set: anyone who can reach it can read the config and statistics, reload or drain \
             shardgate; set admin_token_file (or --admin-token-file), or keep admin on \
             127.0.0.1 and reach it through an SSH tunnel (README, \"Admin listener\")"
        )
    })
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(admin: Option<&str>, token: bool) -> Config {
        let mut c = crate::cli::Args::base_config();
        c.admin = admin.map(|a| a.parse().unwrap());
        c.admin_token = token.then(|| Token::parse("t0k").unwrap());
        c
    }

    #[test]
    fn only_a_reachable_admin_without_a_token_is_warned_about() {
        for exposed in [
            "0.0.0.0:9901",
            "[::]:9901",
            "10.1.2.3:9901",
            "[2001:db8::1]:0",
        ] {
            let w = exposure_warning(&with(Some(exposed), false));
            let w = w.unwrap_or_else(|| panic!("{exposed}: no warning"));
            assert!(w.contains(exposed) && w.contains("SSH tunnel"), "{w}");
            assert_eq!(exposure_warning(&with(Some(exposed), true)), None);
        }
        for local in [
            "127.0.0.1:9901",
            "127.0.0.2:0",
            "[::1]:9901",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(exposure_warning(&with(Some(local), false)), None, "{local}");
        }
        assert_eq!(exposure_warning(&with(None, false)), None, "admin off");
    }

    #[test]
    fn the_token_file_is_read_and_a_bad_one_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("sg-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "s3cr3t\n").unwrap();
        let mut c = with(Some("127.0.0.1:0"), false);
        c.admin_token_file = Some(good.clone());
        read_token(&mut c).unwrap();
        assert_eq!(c.admin_token, Some(Token::parse("s3cr3t").unwrap()));

        let cases = [
            ("empty", "\n", "the token is empty"),
            ("inner", "a b\n", "visible ASCII"),
        ];
        for (name, text, want) in cases {
            let bad = dir.join(name);
            std::fs::write(&bad, text).unwrap();
            c.admin_token_file = Some(bad.clone());
            let (field, msg) = read_token(&mut c).unwrap_err();
            assert_eq!(field, "admin_token_file");
            assert!(msg.starts_with(&format!("{}: ", bad.display())), "{msg}");
            assert!(msg.contains(want), "{msg}");
            assert_eq!(c.admin_token, Some(Token::parse("s3cr3t").unwrap()), "kept");
        }
        c.admin_token_file = Some(dir.clone()); // a directory: unreadable as a file
        let (_, msg) = read_token(&mut c).unwrap_err();
        assert!(
            msg.starts_with(&format!("cannot read {}: ", dir.display())),
            "{msg}"
        );
        assert!(parse_token_file(" ").unwrap_err().contains("empty path"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_names_a_token_file_never_a_token() {
        let dir = std::env::temp_dir().join(format!("sg-admin-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tok = dir.join("tok");
        std::fs::write(&tok, "s3cr3t-k3y\n").unwrap();
        let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n";
        let text = format!("{base}admin_token_file = {:?}\n", tok.display().to_string());
        let mut c = crate::config::parse("t.toml", &text).unwrap();
        crate::config::check(&mut c).unwrap();
        assert_eq!(c.admin_token, Some(Token::parse("s3cr3t-k3y").unwrap()));
        let shown = crate::config::render(&c);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let again = crate::config::parse("r.toml", &shown).unwrap();
        assert_eq!(again.admin_token_file, c.admin_token_file, "{shown}");
        c.admin_token_file = None; // as after --admin-token
        let shown = crate::config::render(&c);
        assert!(
            shown.contains("# admin token: set by --admin-token (not shown)"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");

        std::fs::write(&tok, "\n").unwrap();
        let mut c = crate::config::parse("t.toml", &text).unwrap();
        let e = crate::config::check(&mut c).unwrap_err().to_string();
        let want = format!(
            "t.toml:3:20: admin_token_file: {}: the token is empty",
            tok.display()
        );
        assert_eq!(e, want);
        let e = crate::config::parse("t.toml", &format!("{base}admin_token_file = \"\"\n"));
        let e = e.unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml:3:20: admin_token_file: an empty path"),
            "{e}"
        );
        let e = crate::config::parse("t.toml", &format!("{base}\nadmin_token = \"s3cr3t\"\n"));
        let e = e.unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml:4:15: admin_token: a token written in the config"),
            "{e}"
        );
        assert!(
            e.contains("admin_token_file") && !e.contains("s3cr3t"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
