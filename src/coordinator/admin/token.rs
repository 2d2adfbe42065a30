//! The admin bearer token (`--admin-token`, `admin_token_file`): parsed at start (the file again at
//! every reload), checked by the
//! admin thread against each request's `Authorization: Bearer …` in time that does not depend on
//! where the given token first differs. Never printed: `Debug` shows `Token(<redacted>)`. The
//! `TokenSlot` holds the one in force, replaced by the coordinator when a reload reads a new one.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A valid admin token: 1 to 512 visible ASCII characters (what a header value can carry).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

const MAX_LEN: usize = 512;

impl Token {
    /// Checks a token given on the command line or read from a file (surrounding whitespace,
    /// such as the file's final newline, is dropped).
    pub fn parse(text: &str) -> Result<Token, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("the token is empty".into());
        }
        if t.len() > MAX_LEN {
            return Err(format!("the token is longer than {MAX_LEN} bytes"));
        }
        if let Some(c) = t.bytes().find(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "the token may hold only visible ASCII characters, not {:?}",
                char::from(c)
            ));
        }
        Ok(Token(t.as_bytes().into()))
    }

    /// Reads the token from `path` (the whole file, surrounding whitespace dropped).
    pub fn read(path: &Path) -> Result<Token, String> {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Token::parse(&text).map_err(|e| format!("{shown}: {e}"))
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`. The comparison looks at
    /// every byte of the expected token whatever the given one holds, so its time tells nothing
    /// about how much of a guess was right.
    pub fn authorizes(&self, authorization: &[u8]) -> bool {
        let given = match authorization.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => return false,
        };
        let want = &self.0;
        let mut diff = u8::from(given.len() != want.len());
        for (i, w) in want.iter().enumerate() {
            diff |= w ^ given.get(i).copied().unwrap_or(0);
        }
        std::hint::black_box(diff) == 0
    }
}

/// The token the admin thread checks, shared with the coordinator, which replaces it when a
/// reload read a new one (`admin_token_file`). The admin thread takes a copy per connection:
/// off the shards' request path, so a mutex is fine here.
#[derive(Clone, Debug, Default)]
pub struct TokenSlot(Arc<Mutex<Option<Token>>>);

impl TokenSlot {
    pub fn new(token: Option<Token>) -> TokenSlot {
        TokenSlot(Arc::new(Mutex::new(token)))
    }

    /// The token in force now (`None`: none is asked for).
    pub fn get(&self) -> Option<Token> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `token` in force for the next connection; returns whether it differs from the one
    /// before.
    pub fn set(&self, token: Option<Token>) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *slot != token;
        *slot = token;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_refuses_what_a_header_cannot_carry() {
        assert_eq!(
            Token::parse("  s3cr3t\n").unwrap(),
            Token::parse("s3cr3t").unwrap()
        );
        assert!(Token::parse(" \n").unwrap_err().contains("empty"));
        assert!(Token::parse("a b").unwrap_err().contains("visible ASCII"));
        assert!(Token::parse("é").is_err());
        assert!(Token::parse(&"x".repeat(513)).unwrap_err().contains("512"));
        assert!(Token::parse("two\nlines").unwrap_err().contains("'\\n'"));
        assert_eq!(
            format!("{:?}", Token::parse("s3cr3t").unwrap()),
            "Token(<redacted>)"
        );
    }

    #[test]
    fn a_slot_hands_out_the_token_set_last() {
        let slot = TokenSlot::new(Some(Token::parse("old").unwrap()));
        let admin_side = slot.clone();
        assert!(!slot.set(Some(Token::parse("old").unwrap())), "unchanged");
        assert!(slot.set(Some(Token::parse("new").unwrap())));
        assert!(admin_side.get().unwrap().authorizes(b"Bearer new"));
        assert!(!admin_side.get().unwrap().authorizes(b"Bearer old"));
        assert!(slot.set(None));
        assert_eq!(admin_side.get(), None);
    }

    #[test]
    fn authorizes_only_the_exact_bearer_token() {
        let t = Token::parse("s3cr3t").unwrap();
        assert!(t.authorizes(b"Bearer s3cr3t"));
        assert!(t.authorizes(b"bearer  s3cr3t "));
        for wrong in [
            &b"Bearer s3cr3"[..],
            b"Bearer s3cr3tt",
            b"Bearer S3CR3T",
            b"Bearer ",
            b"Basic s3cr3t",
            b"s3cr3t",
            b"",
            b"Bearer s3cr3t\0",
        ] {
            assert!(!t.authorizes(wrong), "{:?}", String::from_utf8_lossy(wrong));
        }
    }
}
