//! STUB (replaced by the policy branch): route match specs.

#[derive(Debug, Clone)]
pub enum HostPattern { Any, Exact(String), Suffix(String) }
impl HostPattern { pub fn parse(s: &str) -> Result<Self, String> { Ok(if let Some(r) = s.strip_prefix('*') { HostPattern::Suffix(r.to_string()) } else { HostPattern::Exact(s.to_string()) }) } }
#[derive(Debug, Clone)]
pub enum PathPattern { Any, Exact(String), Prefix(String), Template(String) }
impl PathPattern {
    pub fn exact(s: &str) -> Result<Self, String> { Ok(PathPattern::Exact(s.into())) }
    pub fn prefix(s: &str) -> Result<Self, String> { Ok(PathPattern::Prefix(s.into())) }
    pub fn template(s: &str) -> Result<Self, String> { Ok(PathPattern::Template(s.into())) }
}
#[derive(Debug, Clone)]
pub enum HeaderPattern { Present, Exact(Vec<u8>) }
#[derive(Debug, Clone)]
pub struct MatchSpec { pub host: HostPattern, pub path: PathPattern, pub methods: Vec<String>, pub headers: Vec<(String, HeaderPattern)> }
pub struct RouteInput<'a> { pub method: &'a [u8], pub host: &'a [u8], pub target: &'a [u8], pub headers: &'a [httparse::Header<'a>] }
pub struct Router;
impl Router { pub fn new(_s: &[MatchSpec]) -> Router { Router } pub fn find(&self, _r: &RouteInput) -> Option<usize> { Some(0) } }
pub fn strip_prefix_len(p: &PathPattern, t: &[u8]) -> Option<usize> { match p { PathPattern::Prefix(s) if t.starts_with(s.as_bytes()) => Some(s.len()), _ => None } }
