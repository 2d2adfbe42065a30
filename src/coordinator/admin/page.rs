//! The status page (`GET /` on the admin listener): one self-contained HTML file, `status.html`
//! beside this one, embedded in the binary and served by the admin thread itself without asking
//! the coordinator (it holds no data: the page's script polls `/stats.json`).

use super::Reply;

/// The page, as built into the binary.
pub const PAGE: &str = include_str!("status.html");

/// The page as a 200 reply.
pub fn reply() -> Reply {
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: PAGE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        assert!(PAGE.starts_with("<!doctype html>"));
        assert!(PAGE.contains("fetch(\"/stats.json\""));
        for external in ["http://", "https://", "//cdn", "<link", "@import", "src=\""] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
    }
}
