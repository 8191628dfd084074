//! `server:` — listeners, threads, time-outs, limits.

use rustls::pki_types::pem::PemObject as _;

use super::{files::read_limited, Validator};
use crate::config::defaults as d;
use crate::config::raw::{RawServer, RawTlsListener};
use crate::config::{Limits, ServerSettings, TlsListener};

impl Validator<'_> {
    pub(super) fn server(&mut self, raw: RawServer) -> Option<ServerSettings> {
        let listen_raw = raw
            .listen
            .clone()
            .unwrap_or_else(|| vec![d::LISTEN.to_string()]);
        if listen_raw.is_empty() {
            self.err("server.listen", "at least one address is required");
        }
        let listen = listen_raw
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.socket_addr(&format!("server.listen[{i}]"), a))
            .collect();
        let tls_listen = raw
            .tls_listen
            .iter()
            .enumerate()
            .filter_map(|(i, t)| self.tls_listener(&format!("server.tls_listen[{i}]"), t))
            .collect();
        let threads = raw.threads.unwrap_or(d::THREADS);
        if threads == 0 || threads > 256 {
            self.err("server.threads", "must be between 1 and 256");
        }
        let max_connections = raw.max_connections.unwrap_or(d::MAX_CONNECTIONS);
        if !(1..=d::MAX_CONNECTIONS_LIMIT).contains(&max_connections) {
            self.err(
                "server.max_connections",
                format!("must be between 1 and {}", d::MAX_CONNECTIONS_LIMIT),
            );
        }
        let token_requests_per_second = raw
            .token_requests_per_second
            .unwrap_or(d::TOKEN_REQUESTS_PER_SECOND);
        if !(token_requests_per_second.is_finite()
            && (0.1..=1000.0).contains(&token_requests_per_second))
        {
            self.err(
                "server.token_requests_per_second",
                "must be between 0.1 and 1000 (identity domains allow 10/s on the free tier)",
            );
        }
        let token_requests_per_minute = raw
            .token_requests_per_minute
            .unwrap_or(d::TOKEN_REQUESTS_PER_MINUTE);
        if !(1..=60_000).contains(&token_requests_per_minute) {
            self.err(
                "server.token_requests_per_minute",
                "must be between 1 and 60000 (identity domains allow 150/min on the free tier)",
            );
        }
        Some(ServerSettings {
            limits: self.limits(&raw),
            tls_listen,
            token_requests_per_second,
            token_requests_per_minute,
            listen,
            threads,
            max_connections,
            watch_files: raw.watch_files.unwrap_or(d::WATCH_FILES),
            work_stealing: raw.work_stealing.unwrap_or(d::WORK_STEALING),
            fast_path: raw.fast_path.unwrap_or(d::FAST_PATH),
            upstream_timeout: self.positive(
                "server.upstream_timeout",
                raw.upstream_timeout,
                d::UPSTREAM_TIMEOUT,
            ),
            upstream_connect_timeout: self.positive(
                "server.upstream_connect_timeout",
                raw.upstream_connect_timeout,
                d::UPSTREAM_CONNECT_TIMEOUT,
            ),
            shutdown_grace: raw.shutdown_grace.unwrap_or(d::SHUTDOWN_GRACE),
            startup_token_wait: raw.startup_token_wait.unwrap_or(d::STARTUP_TOKEN_WAIT),
        })
    }

    fn limits(&mut self, raw: &RawServer) -> Limits {
        let max_request_header_bytes = raw
            .max_request_header_bytes
            .unwrap_or(d::MAX_REQUEST_HEADER_BYTES);
        if !(1024..=1024 * 1024).contains(&max_request_header_bytes) {
            self.err(
                "server.max_request_header_bytes",
                "must be between 1024 and 1048576 (pingora's own ceiling)",
            );
        }
        let max_request_headers = raw.max_request_headers.unwrap_or(d::MAX_REQUEST_HEADERS);
        if !(8..=256).contains(&max_request_headers) {
            self.err(
                "server.max_request_headers",
                "must be between 8 and 256 (pingora's own ceiling)",
            );
        }
        let max_replay_body_bytes = raw
            .max_replay_body_bytes
            .unwrap_or(d::MAX_REPLAY_BODY_BYTES);
        if max_replay_body_bytes > 64 * 1024 * 1024 {
            self.err(
                "server.max_replay_body_bytes",
                "must be at most 67108864 (64 MiB): each request being replayed holds its body in memory",
            );
        }
        Limits {
            max_replay_body_bytes,
            max_request_header_bytes,
            max_request_headers,
            client_idle_timeout: self.positive(
                "server.client_idle_timeout",
                raw.client_idle_timeout,
                d::CLIENT_IDLE_TIMEOUT,
            ),
            client_read_timeout: self.positive(
                "server.client_read_timeout",
                raw.client_read_timeout,
                d::CLIENT_READ_TIMEOUT,
            ),
            upstream_401_cooldown: self.positive(
                "server.upstream_401_cooldown",
                raw.upstream_401_cooldown,
                d::UPSTREAM_401_COOLDOWN,
            ),
            // Its own errors are reported where upstream_timeout is read.
            caller_token_wait: raw.upstream_timeout.unwrap_or(d::UPSTREAM_TIMEOUT),
        }
    }

    fn tls_listener(&mut self, p: &str, t: &RawTlsListener) -> Option<TlsListener> {
        let listener = self.section(|v| {
            let address = match &t.address {
                Some(a) => v.socket_addr(&format!("{p}.address"), a),
                None => {
                    v.err(format!("{p}.address"), "is required");
                    None
                }
            };
            let cert_file = match &t.cert_file {
                Some(f) => {
                    v.certificates(&format!("{p}.cert_file"), f);
                    Some(v.resolve(f))
                }
                None => {
                    v.err(
                        format!("{p}.cert_file"),
                        "is required (PEM certificate chain)",
                    );
                    None
                }
            };
            let key_file = v.tls_key_file(p, t);
            let client_cas = t
                .client_ca_file
                .as_ref()
                .map(|f| v.certificates(&format!("{p}.client_ca_file"), f));
            Some(TlsListener {
                address: address?,
                cert_file: cert_file?,
                key_file: key_file?,
                client_cas,
            })
        })?;
        self.has_mtls_listener |= listener.client_cas.is_some();
        Some(listener)
    }

    fn tls_key_file(&mut self, p: &str, t: &RawTlsListener) -> Option<std::path::PathBuf> {
        let Some(file) = &t.key_file else {
            self.err(format!("{p}.key_file"), "is required (PEM private key)");
            return None;
        };
        let full = self.resolve(file);
        match read_limited(&full) {
            Ok(pem) if rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem).is_ok() => {}
            Ok(_) => self.err(
                format!("{p}.key_file"),
                "the file it names holds no PEM private key".to_string(),
            ),
            Err(e) => self.err(
                format!("{p}.key_file"),
                format!("cannot read the file it names: {e}"),
            ),
        }
        Some(full)
    }
}
