//! The commands that need the bundled emulator: `emulator` (the token
//! endpoint alone) and `demo` (the proxy with both stand-ins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::launch::{report, run};

/// The bundled demo configuration and its API-key file, so `demo` works
/// from any directory.
const DEMO_CONFIG: &str = include_str!("../../conf/demo.yaml");
const DEMO_API_KEYS: &str = include_str!("../../conf/demo-api-keys");
/// The key `conf/demo-api-keys` holds the hash of.
const DEMO_API_KEY: &str = "demo-key-change-me";
use crate::config::{self, Config};

/// `name:secret` pairs: `--client` values, or the lines of `--users`.
fn pairs<'a>(
    items: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<Vec<(String, String)>, ExitCode> {
    let mut out = Vec::new();
    for item in items.filter(|l| !l.trim().is_empty()) {
        match item.split_once(':') {
            Some((name, secret)) if !name.is_empty() => {
                out.push((name.to_string(), secret.to_string()))
            }
            _ => {
                eprintln!("error: {what}: expected name:secret, got {item:?}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(out)
}

/// `client_id:alias:cert.pem` values, with the certificate read.
fn read_certificates(values: &[String]) -> Result<Vec<(String, String, String)>, ExitCode> {
    let mut out = Vec::new();
    for value in values {
        let mut parts = value.splitn(3, ':');
        let (Some(client), Some(alias), Some(file)) = (parts.next(), parts.next(), parts.next())
        else {
            eprintln!("error: --client-certificate {value:?}: expected client_id:alias:cert.pem");
            return Err(ExitCode::from(2));
        };
        match std::fs::read_to_string(file) {
            Ok(pem) => out.push((client.to_string(), alias.to_string(), pem)),
            Err(e) => {
                eprintln!("error: --client-certificate {value:?}: {e}");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(out)
}

/// `bearer-proxy emulator`'s flags.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9400")]
    pub listen: SocketAddr,
    /// A confidential application to register, as `client_id:secret` (repeatable).
    #[arg(long = "client")]
    pub clients: Vec<String>,
    /// Lifetime of the tokens it issues.
    #[arg(long, default_value = "3600s", value_parser = humantime::parse_duration)]
    pub token_lifetime: std::time::Duration,
    /// Identity-domain users for the password and user-assertion
    /// grants: a file of `user:password` lines.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// A certificate uploaded to an application, for its client and
    /// user assertions: `client_id:alias:cert.pem` (repeatable).
    #[arg(long = "client-certificate")]
    pub certificates: Vec<String>,
    /// An Oracle Integration instance's application, with its roles
    /// (ServiceInvoker, …) and scopes: `NAME=AUDIENCE`, e.g.
    /// `OIC-orders=https://orders-abc.integration.ocp.oraclecloud.com:443`
    /// (repeatable).
    #[arg(long = "oic-app")]
    pub oic_apps: Vec<String>,
    /// A client holding the Identity Domain Administrator role, as
    /// `client_id:secret`: its tokens for `urn:opc:idm:__myscopes__` open
    /// the admin API (repeatable).
    #[arg(long = "admin-client")]
    pub admin_clients: Vec<String>,
    /// How long a newly activated application stays unknown to the token
    /// endpoint, as an identity domain takes a moment to propagate it.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub propagation_delay: std::time::Duration,
}

/// `NAME=AUDIENCE` values of `--oic-app`.
fn oic_apps(values: &[String]) -> Result<Vec<(String, String)>, ExitCode> {
    let mut out = Vec::new();
    for value in values {
        match value.split_once('=') {
            Some((name, audience)) if !name.is_empty() && audience.starts_with("https://") => {
                out.push((name.to_string(), audience.trim_end_matches('/').to_string()))
            }
            _ => {
                eprintln!("error: --oic-app {value:?}: expected NAME=https://host:443");
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok(out)
}

/// What the emulator is started with, read and checked.
struct Registrations {
    clients: Vec<(String, String)>,
    users: Vec<(String, String)>,
    certificates: Vec<(String, String, String)>,
    oic_apps: Vec<(String, String)>,
    admins: Vec<(String, String)>,
}

fn registrations(args: &EmulatorArgs) -> Result<Registrations, ExitCode> {
    let users_text = match args
        .users
        .as_deref()
        .map(std::fs::read_to_string)
        .transpose()
    {
        Ok(text) => text.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: --users: {e}");
            return Err(ExitCode::from(2));
        }
    };
    Ok(Registrations {
        clients: pairs(args.clients.iter().map(String::as_str), "--client")?,
        users: pairs(users_text.lines(), "--users")?,
        certificates: read_certificates(&args.certificates)?,
        oic_apps: oic_apps(&args.oic_apps)?,
        admins: pairs(
            args.admin_clients.iter().map(String::as_str),
            "--admin-client",
        )?,
    })
}

/// Registers everything on a started emulator.
fn register(state: &super::IdpState, r: &Registrations) -> Result<(), ExitCode> {
    for (id, secret) in &r.clients {
        state.register_client(id, secret);
    }
    for (id, secret) in &r.admins {
        state.register_admin_client(id, secret);
    }
    for (name, audience) in &r.oic_apps {
        let id = state.register_oic_app(name, audience);
        println!("Oracle Integration application {name:?} (id {id}), audience {audience}");
    }
    for (user, password) in &r.users {
        state.register_user(user, password);
    }
    for (client, alias, pem) in &r.certificates {
        if let Err(e) = state.register_client_certificate(client, alias, pem) {
            eprintln!("error: --client-certificate {client}:{alias}: {e}");
            return Err(ExitCode::from(2));
        }
    }
    Ok(())
}

pub fn emulator(args: &EmulatorArgs) -> ExitCode {
    let registered = match registrations(args) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let runtime = match crate::runtime::for_command() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let listen = args.listen;
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (state, _server) = super::start_idp(listener);
        state.set_token_lifetime(args.token_lifetime);
        state.directory.set_propagation_delay(args.propagation_delay);
        if let Err(code) = register(&state, &registered) {
            return code;
        }
        println!(
            "identity-service emulator on http://{listen}/oauth2/v1/token, admin API on http://{listen}/admin/v1/ (Ctrl-C stops it)"
        );
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}

/// The bundled config names its key file relatively: write both to a
/// directory of their own, so paths resolve and a reload has a file to
/// re-read. Returns (label for messages, file).
fn demo_source(path: Option<&Path>) -> Result<(String, PathBuf), ExitCode> {
    if let Some(p) = path {
        return Ok((p.display().to_string(), p.to_path_buf()));
    }
    let dir = std::env::temp_dir().join("bearer-proxy-demo");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(dir.join("demo-api-keys"), DEMO_API_KEYS))
        .and_then(|_| std::fs::write(dir.join("demo.yaml"), DEMO_CONFIG));
    if let Err(e) = written {
        eprintln!("error: cannot prepare {}: {e}", dir.display());
        return Err(ExitCode::FAILURE);
    }
    Ok(("bundled conf/demo.yaml".to_string(), dir.join("demo.yaml")))
}

/// Starts the emulator and echo upstream where the demo config's first
/// client and route expect them.
fn start_backends(config: &Config) -> Result<(SocketAddr, SocketAddr), ExitCode> {
    let (Some(client), Some(route)) = (config.clients.first(), config.routes.first()) else {
        eprintln!("error: the demo configuration needs a client and a route");
        return Err(ExitCode::from(2));
    };
    let socket = |host: Option<&str>, port: Option<u16>| -> Option<SocketAddr> {
        format!("{}:{}", host?, port?).parse().ok()
    };
    let idp = socket(
        client.token_url.host_str(),
        client.token_url.port_or_known_default(),
    );
    let upstream = socket(
        Some(route.upstream.host.as_str()),
        Some(route.upstream.port),
    );
    let (Some(idp), Some(upstream)) = (idp, upstream) else {
        eprintln!(
            "error: the demo needs IP-literal loopback addresses for its token_url and upstream"
        );
        return Err(ExitCode::from(2));
    };
    let clients = config
        .clients
        .iter()
        .filter_map(|c| match &c.auth {
            config::ClientAuth::SecretBasic { secret, .. }
            | config::ClientAuth::SecretPost { secret } => {
                Some((c.client_id.clone(), secret.expose().to_string()))
            }
            config::ClientAuth::PrivateKeyJwt { .. } | config::ClientAuth::TlsClientAuth { .. } => {
                None
            }
        })
        .collect();
    match super::spawn_demo_backends(idp, upstream, clients) {
        Ok(_) => Ok((idp, upstream)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `bearer-proxy demo`: the proxy against the bundled emulator and echo
/// upstream, with a how-to on stdout.
pub fn demo(path: Option<&Path>) -> ExitCode {
    let (label, source) = match demo_source(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let config = match config::load_file(&source) {
        Ok(c) => c,
        Err(errors) => {
            report(Path::new(&label), &errors);
            return ExitCode::from(2);
        }
    };
    let (idp, upstream) = match start_backends(&config) {
        Ok(addrs) => addrs,
        Err(code) => return code,
    };
    let (client, route) = (&config.clients[0], &config.routes[0]);
    let listen = config.server.listen[0];
    let path = format!(
        "{}integration/v1/flows/rest/HELLO/1.0/ping",
        route.path_prefix.trim_end_matches('/').to_string() + "/"
    );
    println!(
        "bearer-proxy demo ({label})\n\
         \n  identity-service emulator  http://{idp}/oauth2/v1/token\
         \n  echo upstream              http://{upstream}\
         \n  proxy                      http://{listen}\
         \n  admin                      http://{admin}/status  /metrics  /readyz\
         \n\nTry (the client sends only its API key; the proxy checks it, drops it and adds the token):\
         \n\n  curl -s -H 'X-API-Key: {key}' http://{listen}{path}\
         \n\nThe echo upstream answers with what it received: an \"authorization\" header\
         \nstarting \"Bearer eyJ\" and the token's decoded claims (sub \"{client_id}\", scope, exp),\
         \nand no x-api-key. Without the key: 401 {{\"error\":\"access_denied\"}}. A path outside\
         \n{prefix} answers 404 {{\"error\":\"no_route\"}}.\
         \n\nEach caller as itself (the identity service checks the caller's own password;\
         \nthe token's sub is the caller):\
         \n\n  curl -s -u demo-alice:alice-demo-password http://{listen}/as-user{path}\
         \n  curl -s -u demo-bob:bob-demo-password http://{listen}/as-user{path}\
         \n\nOnboard a new application in the emulated identity domain (admin client\
         \n{admin_id}, instance application {oic_app}); its client block goes into a\
         \nconfiguration of your own:\
         \n\n  printf %s {admin_secret} > admin.secret\
         \n  bearer-proxy onboard --domain-url http://{idp} --admin-client-id {admin_id} \\\
         \n      --admin-client-secret-file admin.secret --oic-app {oic_app} --name orders-proxy \\\
         \n      --secret-file orders-proxy.secret --config-out orders-proxy.yaml\
         \n\nStop with Ctrl-C.\n",
        key = DEMO_API_KEY,
        admin = config.admin.listen,
        prefix = route.path_prefix,
        client_id = client.client_id,
        admin_id = super::DEMO_ADMIN.0,
        admin_secret = super::DEMO_ADMIN.1,
        oic_app = super::DEMO_OIC_APP.0,
    );
    run(config, source)
}
