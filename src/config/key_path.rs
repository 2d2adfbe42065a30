//! The key path at a byte offset of a TOML text (`routes[1].rate_limit.burst`, `listen[2]`), for
//! errors the TOML parser reports by span only (unknown keys, wrong types), so that they name
//! the key the same way the config checks do. Main thread, only when a file is rejected.

use std::collections::HashMap;

/// One level of the value being read.
enum Frame {
    /// A table level (the statement itself, or an inline `{ }`): the key being set in it.
    Key(String),
    /// An array: the index of the element being read.
    Item(usize),
}

#[derive(PartialEq)]
enum Mode {
    LineStart,
    Key,
    Value,
}

/// The key path of whatever is written at byte `at` of `text`; `(file)` outside any key.
pub fn at(text: &str, at: usize) -> String {
    let b = text.as_bytes();
    let at = at.min(b.len());
    let mut table = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut mode = Mode::LineStart;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if i >= at && mode == Mode::Value {
            break;
        }
        match mode {
            Mode::LineStart => match c {
                b'[' => {
                    let end = line_end(b, i);
                    if at < end {
                        return header(&text[i..end], &mut arrays);
                    }
                    table = header(&text[i..end], &mut arrays);
                    i = end;
                    continue;
                }
                b'#' => {
                    i = line_end(b, i);
                    continue;
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => {
                    frames = vec![Frame::Key(String::new())];
                    mode = Mode::Key;
                    continue;
                }
            },
            Mode::Key => match c {
                b'=' => mode = Mode::Value,
                b'\n' | b',' | b'}' if i >= at => break,
                b'"' | b'\'' => {
                    let end = string_end(b, i);
                    push_key(
                        &mut frames,
                        text.get(i + 1..end.saturating_sub(1)).unwrap_or(""),
                    );
                    i = end;
                    continue;
                }
                b' ' | b'\t' => {}
                _ => push_key(&mut frames, &text[i..i + 1]),
            },
            Mode::Value => match c {
                b'[' => frames.push(Frame::Item(0)),
                b'{' => {
                    frames.push(Frame::Key(String::new()));
                    mode = Mode::Key;
                }
                b']' | b'}' => {
                    frames.pop();
                }
                b',' => match frames.last_mut() {
                    Some(Frame::Item(n)) => *n += 1,
                    Some(Frame::Key(k)) => {
                        k.clear();
                        mode = Mode::Key;
                    }
                    None => {}
                },
                b'"' | b'\'' => {
                    i = string_end(b, i);
                    continue;
                }
                b'#' => {
                    i = line_end(b, i);
                    continue;
                }
                b'\n' if frames.len() <= 1 => mode = Mode::LineStart,
                _ => {}
            },
        }
        i += 1;
    }
    let mut path = table;
    for f in &frames {
        match f {
            Frame::Key(k) if k.is_empty() => {}
            Frame::Key(k) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Item(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() {
        "(file)".to_string()
    } else {
        path
    }
}

fn push_key(frames: &mut [Frame], part: &str) {
    if let Some(Frame::Key(k)) = frames.last_mut() {
        k.push_str(part);
    }
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| from + p)
}

/// The byte after the string starting at `from` (basic, literal or multi-line).
fn string_end(b: &[u8], from: usize) -> usize {
    let q = b[from];
    let triple = b.len() >= from + 3 && b[from + 1] == q && b[from + 2] == q;
    let mut i = from + if triple { 3 } else { 1 };
    while i < b.len() {
        if q == b'"' && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q && (!triple || (i + 2 < b.len() && b[i + 1] == q && b[i + 2] == q)) {
            return i + if triple { 3 } else { 1 };
        }
        if b[i] == b'\n' && !triple {
            return i;
        }
        i += 1;
    }
    b.len()
}

/// The path of a `[table]` or `[[array]]` header line; an `[[array]]` counts one more element.
/// Parts naming an array of tables get the index of its current element (`clusters[1].breaker`).
fn header(line: &str, arrays: &mut HashMap<String, usize>) -> String {
    let line = line.split('#').next().unwrap_or("").trim();
    let is_array = line.starts_with("[[");
    let name = line.trim_matches(|c| c == '[' || c == ']').trim();
    let parts: Vec<String> = name
        .split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    let mut path = String::new();
    for (n, part) in parts.iter().enumerate() {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
        let last = n + 1 == parts.len();
        if last && is_array {
            let count = arrays.entry(path.clone()).or_insert(0);
            *count += 1;
            let index = *count - 1;
            return format!("{path}[{index}]");
        }
        if let Some(count) = arrays.get(&path) {
            path = format!("{path}[{}]", count - 1);
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::at;

    /// The path at the first occurrence of `needle` in `text`.
    fn path(text: &str, needle: &str) -> String {
        at(text, text.find(needle).expect("needle in text"))
    }

    #[test]
    fn cases() {
        let routes = "listen = [\"a\",\n  \"b\"]\n[[routes]]\nname = \"x\"\n[[routes]]\nnmae = \"y\"\nrate_limit = { rate = \"1/s\", burt = 2 }\n";
        let clusters = "[[clusters]]\nname = \"a\"\n[[clusters]]\nname = \"b\"\n[clusters.breaker]\nfailurs = 3\n";
        let cases: &[(&str, &str, &str, &str)] = &[
            ("top key", "listen = [\"a\"]\n", "listen", "listen"),
            ("array item", routes, "\"b\"", "listen[1]"),
            ("second entry", routes, "nmae", "routes[1].nmae"),
            ("inline key", routes, "burt", "routes[1].rate_limit.burt"),
            (
                "inline value",
                routes,
                "\"1/s\"",
                "routes[1].rate_limit.rate",
            ),
            (
                "nested table",
                clusters,
                "failurs",
                "clusters[1].breaker.failurs",
            ),
            (
                "table key",
                "[pool]\nmax_idel = 3\n",
                "max_idel",
                "pool.max_idel",
            ),
            (
                "value",
                "[shards]\ncount = \"two\"\n",
                "\"two\"",
                "shards.count",
            ),
            ("header", "[shardz]\ncount = 1\n", "shardz", "shardz"),
            (
                "after comment",
                "# [x]\n[pool] # c\nqueue = 1\n",
                "queue",
                "pool.queue",
            ),
            ("quoted", "[a]\n\"k.x\" = 1\n", "\"k.x\"", "a.k.x"),
            (
                "string with bracket",
                "[a]\nk = \"[x]\"\nj = 2\n",
                "j",
                "a.j",
            ),
        ];
        for (name, text, needle, want) in cases {
            assert_eq!(path(text, needle), *want, "{name}");
        }
    }
}
