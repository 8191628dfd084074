//! The bundled stand-ins for Oracle: an identity-domain token endpoint
//! ([`idp`]) and an echo upstream ([`echo`]). One implementation serves
//! the demo, the integration tests and the benchmarks.

pub mod admin_api;
pub(crate) mod commands;
pub mod directory;
pub mod echo;
pub mod idp;
pub mod mtls;
pub mod serve;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use echo::EchoState;
pub use idp::{IdpState, Mode};
pub use serve::ServerHandle;

/// The identity domain's endpoints: tokens, keys and the admin API.
fn identity_domain(state: &Arc<IdpState>) -> axum::Router {
    idp::router(state.clone()).merge(admin_api::router(state.clone()))
}

/// Starts the token endpoint and admin API on `listener`.
pub fn start_idp(listener: TcpListener) -> (Arc<IdpState>, ServerHandle) {
    let state = IdpState::new();
    let handle = serve::serve(listener, identity_domain(&state), None, state.down.clone());
    (state, handle)
}

/// Serves `state`'s token endpoint over mutual TLS on `listener`: the
/// identity domain's secure token endpoint (`tls_client_auth`).
pub fn start_secure_idp(
    listener: TcpListener,
    state: Arc<IdpState>,
    acceptor: TlsAcceptor,
) -> ServerHandle {
    serve::serve(
        listener,
        identity_domain(&state),
        Some(acceptor),
        state.down.clone(),
    )
}

/// Starts the echo upstream on `listener`, over TLS when `tls` is given.
pub fn start_echo(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
) -> (Arc<EchoState>, ServerHandle) {
    let state = EchoState::new();
    let handle = serve::serve(
        listener,
        echo::router(state.clone()),
        tls,
        Arc::new(AtomicBool::new(false)),
    );
    (state, handle)
}

/// Why the demo's backends did not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, #[source] std::io::Error),
    #[error("cannot start demo thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("demo backends stopped unexpectedly")]
    Stopped,
}

/// The demo's backends, running on their own thread until the process ends.
pub struct DemoBackends {
    pub idp: SocketAddr,
    pub upstream: SocketAddr,
}

/// Starts the token endpoint on `idp` with `clients` (id, secret)
/// registered, and the echo upstream on `upstream`, on a thread of their
/// own. Returns once both listen.
/// The identity-domain users of the demo's per-caller route.
pub const DEMO_USERS: [(&str, &str); 2] = [
    ("demo-alice", "alice-demo-password"),
    ("demo-bob", "bob-demo-password"),
];

/// The demo domain's administrator (for `onboard`) and its Oracle
/// Integration instance's application: demo values that protect nothing.
pub const DEMO_ADMIN: (&str, &str) = ("demo-admin", "demo-admin-secret-not-for-production");
pub const DEMO_OIC_APP: (&str, &str) = ("oic-demo", "https://oic.demo.invalid:443");

pub fn spawn_demo_backends(
    idp: SocketAddr,
    upstream: SocketAddr,
    clients: Vec<(String, String)>,
) -> Result<DemoBackends, DemoError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let runtime = match crate::runtime::one_worker() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(DemoError::Runtime(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let bind = |addr: SocketAddr| async move {
                    TcpListener::bind(addr)
                        .await
                        .map_err(|e| DemoError::Listen(addr, e))
                };
                let (idp_listener, echo_listener) = match (bind(idp).await, bind(upstream).await) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (state, _idp) = start_idp(idp_listener);
                for (id, secret) in &clients {
                    state.register_client(id, secret);
                }
                for (user, password) in DEMO_USERS {
                    state.register_user(user, password);
                }
                state.register_admin_client(DEMO_ADMIN.0, DEMO_ADMIN.1);
                state.register_oic_app(DEMO_OIC_APP.0, DEMO_OIC_APP.1);
                let (_echo_state, _echo) = start_echo(echo_listener, None);
                let _ = ready_tx.send(Ok(()));
                std::future::pending::<()>().await;
            });
        })
        .map_err(DemoError::Thread)?;
    ready_rx.recv().map_err(|_| DemoError::Stopped)??;
    Ok(DemoBackends { idp, upstream })
}
