//! The `[http2]` settings of downstream HTTP/2 connections (h2c listeners and ALPN `h2` on TLS
//! listeners): stream and flow-control limits announced in SETTINGS, and the per-connection
//! request and age caps after which a graceful GOAWAY makes a long-lived client reconnect (and so
//! spread again across shards). Reloadable: a connection keeps the settings it started with.
//! Built on the main thread, read by shards.

use std::time::Duration;

/// Largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// SETTINGS_MAX_FRAME_SIZE bounds (RFC 9113 §6.5.2).
pub const FRAME_SIZES: std::ops::RangeInclusive<u32> = 16_384..=16_777_215;

/// Limits of one downstream HTTP/2 connection. The header list limit is not here: it is the
/// HTTP/1.1 head limit (`shards.buffer_size`), so both protocols accept the same heads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Http2 {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once (nginx: 100).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a client may send on a stream before
    /// the proxy has forwarded them upstream.
    pub initial_stream_window: u32,
    /// The connection's receive window: request body bytes in flight over all its streams.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE: the largest frame payload the proxy accepts.
    pub max_frame_size: u32,
    /// Streams one connection may open before a graceful GOAWAY (0 = no limit).
    pub max_requests: u64,
    /// A connection older than this gets a graceful GOAWAY (zero = no limit).
    pub max_age: Duration,
    /// Streams the client reset before the proxy took them up, waiting at once (rapid reset,
    /// CVE-2023-44487): one more and the connection gets GOAWAY ENHANCE_YOUR_CALM (`h2`'s
    /// `max_pending_accept_reset_streams`).
    pub max_pending_accept_reset_streams: u32,
    /// Streams the proxy had to reset for the client's protocol errors, over the connection's
    /// life: one more and it gets GOAWAY ENHANCE_YOUR_CALM (`h2`'s
    /// `max_local_error_reset_streams`).
    pub max_local_error_reset_streams: u32,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            max_concurrent_streams: 100,
            initial_stream_window: 65_535,
            initial_connection_window: 1 << 20,
            max_frame_size: 16_384,
            max_requests: 1000,
            max_age: Duration::from_secs(3600),
            // `h2`'s own defaults.
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
        }
    }
}

impl Http2 {
    /// The ranges HTTP/2 and sense allow; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, v) in [
            ("http2.max_concurrent_streams", self.max_concurrent_streams),
            (
                "http2.max_pending_accept_reset_streams",
                self.max_pending_accept_reset_streams,
            ),
            (
                "http2.max_local_error_reset_streams",
                self.max_local_error_reset_streams,
            ),
        ] {
            if v == 0 {
                return Err((field, "must be at least 1".into()));
            }
        }
        for (field, v) in [
            ("http2.initial_stream_window", self.initial_stream_window),
            (
                "http2.initial_connection_window",
                self.initial_connection_window,
            ),
        ] {
            if !(65_535..=MAX_WINDOW).contains(&v) {
                return Err((field, format!("{v} is out of range 65535..={MAX_WINDOW}")));
            }
        }
        if !FRAME_SIZES.contains(&self.max_frame_size) {
            return Err((
                "http2.max_frame_size",
                format!("{} is out of range 16384..=16777215", self.max_frame_size),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_range_names_its_field() {
        assert_eq!(Http2::default().check(), Ok(()));
        let cases = [
            (
                Http2 {
                    max_concurrent_streams: 0,
                    ..Http2::default()
                },
                "http2.max_concurrent_streams",
            ),
            (
                Http2 {
                    initial_stream_window: 1000,
                    ..Http2::default()
                },
                "http2.initial_stream_window",
            ),
            (
                Http2 {
                    initial_connection_window: MAX_WINDOW + 1,
                    ..Http2::default()
                },
                "http2.initial_connection_window",
            ),
            (
                Http2 {
                    max_frame_size: 1 << 24,
                    ..Http2::default()
                },
                "http2.max_frame_size",
            ),
            (
                Http2 {
                    max_pending_accept_reset_streams: 0,
                    ..Http2::default()
                },
                "http2.max_pending_accept_reset_streams",
            ),
            (
                Http2 {
                    max_local_error_reset_streams: 0,
                    ..Http2::default()
                },
                "http2.max_local_error_reset_streams",
            ),
        ];
        for (h, field) in cases {
            assert_eq!(h.check().unwrap_err().0, field);
        }
    }
}
