//! The `--h2-*` flags: downstream HTTP/2 limits over the file's `[http2]` table (`--h2c` itself
//! is a listener flag, listen_flags.rs). Main thread, at start and each reload.

use std::time::Duration;

use clap::Args as ClapArgs;

use crate::config::{parse_duration, Http2};

/// Flattened into `Args`.
#[derive(ClapArgs, Debug, Default)]
pub struct Http2Flags {
    /// HTTP/2 streams a client may have open at once per connection [default: 100]
    #[arg(long = "h2-max-concurrent-streams", value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 initial stream window in bytes: request body a client may send ahead of the
    /// upstream [default: 65535]
    #[arg(long = "h2-initial-stream-window", value_name = "BYTES")]
    pub initial_stream_window: Option<u32>,
    /// HTTP/2 connection receive window in bytes [default: 1048576]
    #[arg(long = "h2-initial-connection-window", value_name = "BYTES")]
    pub initial_connection_window: Option<u32>,
    /// Largest HTTP/2 frame payload accepted, 16384..=16777215 [default: 16384]
    #[arg(long = "h2-max-frame-size", value_name = "BYTES")]
    pub max_frame_size: Option<u32>,
    /// Streams one HTTP/2 connection may open before a graceful GOAWAY, 0 = no limit
    /// [default: 1000]
    #[arg(long = "h2-max-requests", value_name = "N")]
    pub max_requests: Option<u64>,
    /// An HTTP/2 connection older than this gets a graceful GOAWAY, 0 = never [default: 1h]
    #[arg(long = "h2-max-age", value_name = "DUR", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Streams an HTTP/2 client may reset before the proxy takes them up, waiting at once; one
    /// more closes the connection with GOAWAY ENHANCE_YOUR_CALM (rapid reset) [default: 20]
    #[arg(long = "h2-max-pending-accept-reset-streams", value_name = "N")]
    pub max_pending_accept_reset_streams: Option<u32>,
    /// Streams the proxy may reset for an HTTP/2 client's protocol errors over a connection's
    /// life; one more closes it with GOAWAY ENHANCE_YOUR_CALM [default: 1024]
    #[arg(long = "h2-max-local-error-reset-streams", value_name = "N")]
    pub max_local_error_reset_streams: Option<u32>,
}

impl Http2Flags {
    pub(super) fn apply(&self, h: &mut Http2) {
        let set = |v: Option<u32>, f: &mut u32| *f = v.unwrap_or(*f);
        set(self.max_concurrent_streams, &mut h.max_concurrent_streams);
        set(self.initial_stream_window, &mut h.initial_stream_window);
        set(
            self.initial_connection_window,
            &mut h.initial_connection_window,
        );
        set(self.max_frame_size, &mut h.max_frame_size);
        set(
            self.max_pending_accept_reset_streams,
            &mut h.max_pending_accept_reset_streams,
        );
        set(
            self.max_local_error_reset_streams,
            &mut h.max_local_error_reset_streams,
        );
        h.max_requests = self.max_requests.unwrap_or(h.max_requests);
        h.max_age = self.max_age.unwrap_or(h.max_age);
    }
}
