//! tests/grpc/server.py, a real gRPC server (grpcio, PyPI) on 127.0.0.1, over h2c or TLS:
//! service `test.Echo` (unary, streaming, failing, sleeping and cancel-counting methods; see the
//! script). Killed when dropped.

use super::script::Served;

/// Starts the server; `tls`: (certificate, key) files: it speaks TLS with ALPN h2.
pub fn start(tls: Option<(&str, &str)>) -> Served {
    let mut args = vec![];
    if let Some((cert, key)) = tls {
        args.extend(["--tls", cert, key]);
    }
    Served::start("grpc/server.py", &args, "grpcio (pip install grpcio)")
}
