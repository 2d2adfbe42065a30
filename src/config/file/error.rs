//! Where a config file is wrong: `ConfigError` (file, line, column, key path, message) and the
//! byte-offset → line:column mapping every located error uses. Main thread.

use std::fmt;

/// A config file that cannot be used, pointing at the offending place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; 0 when the file could not be read at all.
    pub line: usize,
    pub col: usize,
    /// Key path, e.g. `timeouts.connect`, `routes[1].name`, `listen[0]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}
