//! A small HTTP/1 server loop for the emulator and the echo upstream, with
//! optional TLS and a switch that makes it drop every connection ("down").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A running server; stops when dropped.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `router` on `listener` until the handle is dropped. While `down`
/// is set, new connections are closed at once and requests on open ones
/// are aborted without an answer, like a crashed server.
pub fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    down: Arc<AtomicBool>,
) -> ServerHandle {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(_) => continue,
                },
                _ = stopped.changed() => return,
            };
            if down.load(Ordering::SeqCst) {
                drop(stream);
                continue;
            }
            let router = router.clone();
            let tls = tls.clone();
            let down = down.clone();
            let conn_stop = stopped.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let peer = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| PeerCertificate(c.as_ref().to_vec()));
                        serve_connection(stream, router, down, peer, conn_stop).await;
                    }
                    None => serve_connection(stream, router, down, None, conn_stop).await,
                }
            });
        }
    });
    ServerHandle { addr, stop }
}

/// The certificate a TLS client presented, on each of its requests (the
/// emulator's mTLS token endpoint compares it with the registered one).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Vec<u8>);

/// Serves one connection's requests until it closes or the server stops.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    down: Arc<AtomicBool>,
    peer: Option<PeerCertificate>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let down = down.clone();
            if let Some(peer) = &peer {
                req.extensions_mut().insert(peer.clone());
            }
            async move {
                if down.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("emulated outage"));
                }
                router
                    .oneshot(req.map(axum::body::Body::new))
                    .await
                    .map_err(|e| match e {})
            }
        });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! { _ = conn => {}, _ = stop.changed() => {} }
}
