//! tests/grpc/server.py, a real gRPC server (grpcio, PyPI) on 127.0.0.1, over h2c or TLS:
//! service `test.Echo` (unary, streaming, failing, sleeping and cancel-counting methods; see the
//! script). Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// tests/grpc/server.py on 127.0.0.1; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// `tls`: (certificate, key) files: the server speaks TLS with ALPN h2.
    pub fn start(tls: Option<(&str, &str)>) -> Server {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/server.py");
        let mut args = vec![script];
        if let Some((cert, key)) = tls {
            args.extend(["--tls", cert, key]);
        }
        let mut child = Command::new("python3")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("server.py said {line:?}: is grpcio installed (pip install grpcio)?")
            });
        Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
