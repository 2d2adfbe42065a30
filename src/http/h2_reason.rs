//! The HTTP/2 error codes (RFC 9113 §7) by name, as the GOAWAY counter labels them
//! (`shardgate_downstream_http2_goaways_total{reason}`). Pure; any thread.

/// Each error code's label, indexed by the code.
pub const NAMES: [&str; 14] = [
    "no_error",
    "protocol_error",
    "internal_error",
    "flow_control_error",
    "settings_timeout",
    "stream_closed",
    "frame_size_error",
    "refused_stream",
    "cancel",
    "compression_error",
    "connect_error",
    "enhance_your_calm",
    "inadequate_security",
    "http_1_1_required",
];

/// The index in `NAMES` of an error code; a code RFC 9113 does not define counts as
/// `internal_error`.
pub fn index(code: u32) -> usize {
    match usize::try_from(code) {
        Ok(i) if i < NAMES.len() => i,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_their_names() {
        assert_eq!(NAMES[index(0)], "no_error");
        assert_eq!(NAMES[index(0xb)], "enhance_your_calm");
        assert_eq!(NAMES[index(0xd)], "http_1_1_required");
        assert_eq!(NAMES[index(0x1234)], "internal_error");
    }
}
