//! STUB (replaced by the edge branch).
pub struct TraceParent { pub trace_id: [u8; 16], pub parent_id: [u8; 8], pub flags: u8 }
pub fn parse(_v: &[u8]) -> Option<TraceParent> { None }
pub fn forward(_i: Option<&TraceParent>, _s: u64, _t: u128, _st: bool, _o: &mut Vec<u8>) -> Option<[u8; 32]> { None }
