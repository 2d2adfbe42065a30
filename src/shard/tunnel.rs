//! After a `101 Switching Protocols`: copy bytes both ways between client and upstream until each
//! direction ends, then close both. Runs on the shard that owned the exchange.

use monoio::io::{AsyncWriteRent, Splitable};
use monoio::net::TcpStream;

/// Relays until both directions have finished (each side's EOF is passed on as a FIN).
pub async fn run(client: TcpStream, upstream: TcpStream) {
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let to_upstream = async {
        let _ = monoio::io::copy(&mut client_rd, &mut up_wr).await;
        let _ = up_wr.shutdown().await;
    };
    let to_client = async {
        let _ = monoio::io::copy(&mut up_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    };
    monoio::join!(to_upstream, to_client);
}
