//! The operations surface from the outside: requests to the admin listener (one per connection,
//! as it closes after each answer), its Prometheus text parsed strictly into samples, and the
//! access log's JSON lines read back from a file while the proxy writes it.

use super::message::Response;
use super::proxy::Proxy;
use super::wire::Conn;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Sends `METHOD path` to the admin listener at `addr` and reads the answer (the admin closes
/// the connection after it).
pub fn admin_get(addr: SocketAddr, method: &str, path: &str) -> Response {
    let mut c = Conn::connect(addr);
    let req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    c.send(req.as_bytes()).expect("send to the admin listener");
    c.read_response_to(method)
        .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"))
}

/// `admin_get` on the proxy's own admin listener.
pub fn admin(proxy: &Proxy, method: &str, path: &str) -> Response {
    let addr = proxy.admin.expect("the proxy printed `admin listening on`");
    admin_get(addr, method, path)
}

/// Polls `GET path` until `pred` holds (returning that response), or panics with the last one.
pub fn admin_until(
    proxy: &Proxy,
    path: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let r = admin(proxy, "GET", path);
        if pred(&r) {
            return r;
        }
        if Instant::now() >= deadline {
            panic!(
                "GET {path}: {what} not seen within {within:?}; last answer {} {:?}",
                r.status,
                r.text()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// === Prometheus text format 0.0.4 ===

/// One sample line: metric name, labels, value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A scrape, checked against the text format's rules while parsing.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Family name → (HELP text, TYPE).
    pub families: BTreeMap<String, (String, String)>,
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the exposition strictly: each family has one HELP and one TYPE before its samples,
    /// a family's samples are contiguous, every sample belongs to the family declared last
    /// (histograms: `_bucket`, `_sum`, `_count`), values are numbers, and the text ends in `\n`.
    pub fn parse(text: &str) -> Result<Metrics, String> {
        if !text.ends_with('\n') {
            return Err("the exposition does not end with a line feed".into());
        }
        let mut m = Metrics::default();
        let mut help: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<(String, String)> = None; // the family whose samples may follow
        let mut closed: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = |why: String| format!("line {}: {why}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                if help.insert(name.to_string(), text.to_string()).is_some() {
                    return Err(at(format!("second HELP for {name}")));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| at("TYPE without a type".into()))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at(format!("unknown type {kind}")));
                }
                if m.families.contains_key(name) {
                    return Err(at(format!("second TYPE for {name}")));
                }
                let h = help
                    .get(name)
                    .cloned()
                    .ok_or_else(|| at(format!("TYPE for {name} without a HELP before it")))?;
                if let Some((prev, _)) = current.take() {
                    closed.push(prev);
                }
                m.families.insert(name.to_string(), (h, kind.to_string()));
                current = Some((name.to_string(), kind.to_string()));
                continue;
            }
            if line.starts_with('#') {
                continue; // a comment
            }
            let sample = parse_sample(line).map_err(at)?;
            let Some((family, kind)) = &current else {
                return Err(at("a sample before any TYPE".into()));
            };
            let suffixes: &[&str] = match kind.as_str() {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            let belongs = suffixes
                .iter()
                .any(|s| sample.name == format!("{family}{s}"));
            if !belongs {
                let why = if closed.iter().any(|c| sample.name.starts_with(c.as_str())) {
                    format!("a sample of {} after its family ended", sample.name)
                } else {
                    format!("a sample of {} under the TYPE of {family}", sample.name)
                };
                return Err(at(why));
            }
            m.samples.push(sample);
        }
        Ok(m)
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn select(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of `select(name, labels)` (0 when none match).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.select(name, labels).iter().map(|s| s.value).sum()
    }

    /// The single sample that matches, or a panic saying how many did.
    pub fn one(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.select(name, labels);
        assert_eq!(
            found.len(),
            1,
            "want exactly one sample {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "a sample without a value".to_string())?;
    let name = &line[..name_end];
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inner
                .find("=\"")
                .ok_or_else(|| "a label without =\"".to_string())?;
            let key = &inner[..eq];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad label name {key:?}"));
            }
            let mut value = String::new();
            let mut chars = inner[eq + 2..].char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape in a label value: {other:?}")),
                    },
                    Some((_, '\n')) | None => return Err("unterminated label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            inner = &inner[end + 1..];
            inner = inner.strip_prefix(',').unwrap_or(inner);
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_string())?;
    let value = value.split(' ').next().unwrap_or(""); // an optional timestamp may follow
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .map_err(|_| format!("value {v:?} is not a number"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `GET /metrics`, parsed (a malformed exposition fails the test).
pub fn scrape(proxy: &Proxy) -> Metrics {
    let r = admin(proxy, "GET", "/metrics");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    Metrics::parse(&r.text())
        .unwrap_or_else(|e| panic!("GET /metrics is not valid 0.0.4 text: {e}"))
}

/// Scrapes until `pred` holds and returns that scrape, or panics with `what` and the last one's
/// samples of `show`. (A shard counts a request just after writing its response, so a client
/// that has its response may scrape a moment before the count.)
pub fn scrape_until(
    proxy: &Proxy,
    within: Duration,
    what: &str,
    show: &str,
    pred: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + within;
    loop {
        let m = scrape(proxy);
        if pred(&m) {
            return m;
        }
        if Instant::now() >= deadline {
            let shown: Vec<&Sample> = m
                .samples
                .iter()
                .filter(|s| s.name.starts_with(show))
                .collect();
            panic!("/metrics: {what} not seen within {within:?}; samples of {show}: {shown:#?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// === access log ===

/// The JSON lines of an access log file so far (none when the file does not exist); a line that
/// is not a JSON object fails the test.
pub fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    parse_log(&text, &path.display().to_string())
}

/// Parses JSON lines; only a complete last line (ending in `\n`) counts, so a line the writer
/// is halfway through is not misread as malformed.
pub fn parse_log(text: &[u8], what: &str) -> Vec<serde_json::Value> {
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(i) => &text[..=i],
        None => return Vec::new(),
    };
    complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!(
                    "{what}: a line that is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(l)
                )
            });
            assert!(v.is_object(), "{what}: a line that is not an object: {v}");
            v
        })
        .collect()
}

/// Polls the log file until it holds at least `n` lines; returns them, or panics after `within`.
pub fn wait_log_lines(path: &Path, n: usize, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let lines = log_lines(path);
        if lines.len() >= n {
            return lines;
        }
        if Instant::now() >= deadline {
            panic!(
                "{}: {} lines after {within:?}, want {n}: {lines:#?}",
                path.display(),
                lines.len()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A path in the temp dir for a file the proxy creates (removed when the guard drops).
pub fn temp_path(tag: &str, ext: &str) -> super::TempFile {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    super::TempFile(std::env::temp_dir().join(format!(
        "shardgate-test-{}-{tag}-{n}.{ext}",
        std::process::id()
    )))
}
