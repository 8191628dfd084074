//! Opens many keep-alive client connections to a proxy, sends one request on
//! each (so every connection has been through a full request), then holds
//! them idle until standard input closes. Used by `benches/load/scale.sh`
//! to measure the proxy's resident memory per idle connection.
//!
//!   idle_clients --addr 127.0.0.1:18403 --connections 10000 \
//!                --header "X-API-Key: bench-key" [--ca ca.pem] < fifo
//!
//! With `--ca` the connections are TLS (server name `localhost`).
//!
//! With `--flood` a connection the proxy closes is counted instead of
//! ending the run (`ready <held> refused <n>`), and when standard input
//! closes every held connection sends one more request (`answered <n>`):
//! `scale.sh flood` checks the connection ceiling with it.
//!
//! With `--stall` every connection, after its answer, sends the first 16
//! bytes of a second request and stops there: a client stalled in the
//! middle of a request head, the costliest way to hold a connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "bench_client.rs"]
mod bench_client;
use bench_client::{arg, Stream};

/// One request on a fresh connection; the stream stays open for reuse.
async fn open(
    addr: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    request: &[u8],
) -> std::io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = bench_client::wrap(tcp, tls, "localhost").await?;
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("no answer in 30 s"))??;
        if n == 0 {
            return Err(std::io::Error::other("closed before answering"));
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(std::io::Error::other(format!(
                    "answer: {}",
                    head.lines().next().unwrap_or_default()
                )));
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return Ok(stream);
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let addr = arg("--addr").expect("--addr");
    let count: usize = arg("--connections").map_or(10_000, |n| n.parse().expect("number"));
    let header = arg("--header").map_or(String::new(), |h| format!("{h}\r\n"));
    let tls = arg("--ca").map(|ca| bench_client::connector(&ca));
    let request = format!("GET /ic/api/idle HTTP/1.1\r\nHost: bench\r\n{header}\r\n").into_bytes();
    let flood = std::env::args().any(|a| a == "--flood");
    let mut held = Vec::with_capacity(count);
    let mut refused = 0usize;
    // In batches, so the listener's accept queue is not overrun.
    for batch in (0..count).collect::<Vec<_>>().chunks(500) {
        let opened = futures_util::future::join_all(
            batch.iter().map(|_| open(&addr, tls.as_ref(), &request)),
        )
        .await;
        for stream in opened {
            match stream {
                Ok(s) => held.push(s),
                Err(_) if flood => refused += 1,
                Err(e) => {
                    eprintln!("connection {} failed: {e}", held.len());
                    std::process::exit(1);
                }
            }
        }
    }
    if std::env::args().any(|a| a == "--stall") {
        for stream in held.iter_mut() {
            stream.write_all(&request[..16]).await.expect("stall");
            stream.flush().await.expect("stall");
        }
    }
    println!("ready {} refused {refused}", held.len());
    // Hold until told to stop.
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
    if flood {
        let again =
            futures_util::future::join_all(held.iter_mut().map(|s| reuse(s, &request))).await;
        println!("answered {}", again.iter().filter(|ok| **ok).count());
    }
    drop(held);
}

/// One more request on a held connection; true when answered 200.
async fn reuse(stream: &mut Box<dyn Stream>, request: &[u8]) -> bool {
    if stream.write_all(request).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}
