//! The framework's floor for the load comparison: a minimal pingora 0.9
//! proxy that forwards everything to one HTTPS upstream and adds a fixed
//! Authorization header. Same pingora version, TLS stack, allocator and
//! runtime layout (no work stealing unless asked) as bearer-proxy; no routing, access check, token cache, metrics or logs.
//!
//!   pingora_floor --listen 127.0.0.1:18081 --upstream 127.0.0.1:18443 \
//!                 --sni localhost --ca ca.pem --threads 1 \
//!                 [--authorization-file value.txt] [--work-stealing true]

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;

/// The same allocator as bearer-proxy, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Floor {
    peer: HttpPeer,
    authorization: http::HeaderValue,
}

#[async_trait]
impl pingora::proxy::ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut pingora::proxy::Session,
        _ctx: &mut (),
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut pingora::proxy::Session,
        req: &mut pingora::http::RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        req.insert_header("host", self.peer.sni.as_str())?;
        req.insert_header("authorization", self.authorization.clone())?;
        Ok(())
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    bearer_proxy::install_crypto_provider();
    let listen = arg("--listen").expect("--listen");
    let upstream: SocketAddr = arg("--upstream")
        .expect("--upstream")
        .parse()
        .expect("IP:port");
    let sni = arg("--sni").unwrap_or_else(|| "localhost".into());
    // The same token bytes bearer-proxy sends, so the upstream requests
    // are alike.
    let authorization = arg("--authorization-file")
        .map(|f| std::fs::read_to_string(f).expect("authorization file"))
        .unwrap_or_else(|| "Bearer floor-fixed-token".into());
    let authorization = http::HeaderValue::try_from(authorization.trim()).expect("header value");
    let threads: usize = arg("--threads").map_or(1, |t| t.parse().expect("number"));
    // The same runtime layout as bearer-proxy's default (server.work_stealing).
    let work_stealing: bool = arg("--work-stealing").is_some_and(|v| v == "true");
    let mut peer = HttpPeer::new(upstream, true, sni);
    if let Some(ca) = arg("--ca") {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<WrappedX509> = rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .expect("CA file")
            .map(|c| {
                let der = c.expect("PEM certificate").as_ref().to_vec();
                WrappedX509::new(der, pingora::utils::tls::parse_x509)
            })
            .collect();
        peer.options.ca = Some(Arc::from(certs));
    }
    let conf = ServerConf {
        threads,
        work_stealing,
        daemon: false,
        // pingora's default is a 300 s drain on SIGTERM.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server =
        Server::new_with_opt_and_conf(None::<pingora::server::configuration::Opt>, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Floor {
            peer,
            authorization,
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
