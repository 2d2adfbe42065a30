//! HTTP/1.1 messages as the tests see them: parsed heads, requests, responses, their framing
//! (RFC 9112 §6.3), and strict parsing: anything shardgate sends that a lenient parser would accept
//! but a strict peer could read differently (bare CR, obs-fold, space before a colon, both
//! Content-Length and Transfer-Encoding) is an error here.

/// A parsed start line plus header fields, in arrival order, with the raw bytes kept.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
}

impl Head {
    /// First value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field line named `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// All comma-separated members of every `name` line, trimmed (RFC 9110 §5.3 combination).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the `name` list contains `token` (case-insensitive), e.g. `Connection: close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// A request as an upstream received it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub head: Head,
    /// The decoded body (at most the first MiB when an upstream stores it).
    pub body: Vec<u8>,
    pub body_len: usize,
    pub trailers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }
}

/// A response as the test client received it.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub head: Head,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// Whether the body came chunked.
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The decoded body and the trailer fields of a chunked one.
pub struct Body {
    pub data: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub fn parse_field(line: &[u8]) -> Result<(String, String), String> {
    let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
        format!(
            "field line without colon: {:?}",
            String::from_utf8_lossy(line)
        )
    })?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(format!(
            "bad field name {:?}",
            String::from_utf8_lossy(name)
        ));
    }
    let value = &line[colon + 1..];
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "CR/LF/NUL in value of {:?}",
            String::from_utf8_lossy(name)
        ));
    }
    let value = String::from_utf8_lossy(value)
        .trim_matches([' ', '\t'])
        .to_string();
    Ok((String::from_utf8_lossy(name).into_owned(), value))
}

/// Parses a head ending in CRLF CRLF; every line must end in CRLF, no obs-fold.
pub fn parse_head(raw: &[u8]) -> Result<Head, String> {
    let body = &raw[..raw.len() - 4];
    let mut lines = Vec::new();
    let mut rest = body;
    loop {
        match find(rest, b"\r\n") {
            Some(i) => {
                lines.push(&rest[..i]);
                rest = &rest[i + 2..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    let start = lines[0];
    if start.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err("bare CR/LF in start line".into());
    }
    let mut headers = Vec::new();
    for line in &lines[1..] {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err("obs-fold continuation line".into());
        }
        headers.push(parse_field(line)?);
    }
    Ok(Head {
        start: String::from_utf8_lossy(start).into_owned(),
        headers,
        raw: raw.to_vec(),
    })
}

pub fn parse_status_line(line: &str) -> Result<(String, u16, String), String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("bad status line {line:?}"));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad status code in {line:?}"));
    }
    Ok((
        version.to_string(),
        code.parse().unwrap(),
        reason.to_string(),
    ))
}

pub fn request_from_head(head: Head) -> Result<Request, String> {
    let parts: Vec<&str> = head.start.split(' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("bad request line {:?}", head.start));
    }
    if parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0" {
        return Err(format!("bad version in {:?}", head.start));
    }
    Ok(Request {
        method: parts[0].to_string(),
        target: parts[1].to_string(),
        version: parts[2].to_string(),
        head,
        ..Request::default()
    })
}

fn content_length(head: &Head) -> Result<Option<u64>, String> {
    let all = head.all("content-length");
    match all.len() {
        0 => Ok(None),
        1 if !all[0].is_empty() && all[0].bytes().all(|b| b.is_ascii_digit()) => all[0]
            .parse()
            .map(Some)
            .map_err(|_| format!("Content-Length overflow {:?}", all[0])),
        1 => Err(format!("invalid Content-Length {:?}", all[0])),
        _ => Err(format!("{} Content-Length fields", all.len())),
    }
}

fn transfer_chunked(head: &Head) -> Result<Option<bool>, String> {
    let codings = head.list("transfer-encoding");
    if !head.has("transfer-encoding") {
        return Ok(None);
    }
    if head.has("content-length") {
        return Err("both Transfer-Encoding and Content-Length".into());
    }
    Ok(Some(
        codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked")),
    ))
}

/// RFC 9112 §6.3 for a request (as sent by shardgate: it must be unambiguous).
pub fn request_framing(head: &Head) -> Result<Framing, String> {
    match transfer_chunked(head)? {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Err("request Transfer-Encoding not ending in chunked".into()),
        None => Ok(content_length(head)?.map_or(Framing::None, Framing::Length)),
    }
}

/// RFC 9112 §6.3 for a response to a request with `method`.
pub fn response_framing(method: &str, status: u16, head: &Head) -> Result<Framing, String> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::None);
    }
    match transfer_chunked(head)? {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Ok(Framing::UntilClose),
        None => Ok(content_length(head)?.map_or(Framing::UntilClose, Framing::Length)),
    }
}

pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let hex = std::str::from_utf8(hex).ok()?.trim_end_matches([' ', '\t']);
    if hex.is_empty() || hex.len() > 15 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}
