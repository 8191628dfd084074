//! Command line: `run`, `check`, `reload`, `token`, `demo`, `emulator`. Exit status 2 means the
//! configuration is invalid; 1 means the proxy could not start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "bearer-proxy",
    version,
    about = "Adds Oracle identity-domain access tokens to requests bound for Oracle Integration"
)]
pub struct Cli {
    /// Log output format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `bearer_proxy=debug`, …); RUST_LOG overrides it.
    #[arg(long, default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a configuration file, print its routes and clients.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Fetch one token with a configured client and save the response as
    /// `tokens<n>.tok`, like the identity console's "Generate access token".
    Token {
        #[arg(short, long)]
        config: PathBuf,
        /// The client (a key under `clients:`).
        #[arg(long)]
        client: String,
        /// Scope to request instead of the client's (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Ask for a refresh token too (password and jwt_bearer grants only).
        #[arg(long)]
        include_refresh_token: bool,
        /// Directory for the tokens<n>.tok file (default: current directory).
        #[arg(long, conflicts_with = "print")]
        out: Option<PathBuf>,
        /// Print the token response to stdout instead of writing a file.
        #[arg(long)]
        print: bool,
    },
    /// Ask the running proxy to reload its configuration file (through its
    /// admin listener, named in FILE). FILE is checked first.
    Reload {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run only the bundled identity-service emulator (for benchmarks and
    /// local development): an identity-domain and OAM token endpoint.
    Emulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9400")]
        listen: std::net::SocketAddr,
        /// A confidential application to register, as `client_id:secret` (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
        /// Lifetime of the tokens it issues.
        #[arg(long, default_value = "3600s", value_parser = humantime::parse_duration)]
        token_lifetime: std::time::Duration,
    },
    /// Run the proxy against a bundled local identity-service emulator and
    /// echo upstream: no Oracle tenant needed.
    Demo {
        /// Demo configuration (default: the bundled conf/demo.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

/// The bundled demo configuration and its API-key file, so `demo` works
/// from any directory.
pub const DEMO_CONFIG: &str = include_str!("../conf/demo.yaml");
pub const DEMO_API_KEYS: &str = include_str!("../conf/demo-api-keys");
/// The key `conf/demo-api-keys` holds the hash of.
pub const DEMO_API_KEY: &str = "demo-key-change-me";

pub fn main(cli: Cli) -> ExitCode {
    logging::init(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(c) => {
                print!("{}", describe(&config, &c));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => match load(&config) {
            Ok(c) => run(c, config),
            Err(code) => code,
        },
        Command::Demo { config } => demo(config.as_deref()),
        Command::Emulator {
            listen,
            clients,
            token_lifetime,
        } => emulator(listen, &clients, token_lifetime),
        Command::Reload { config } => match load(&config) {
            Ok(c) => crate::admin::request_reload(c.admin.listen),
            Err(code) => code,
        },
        Command::Token {
            config,
            client,
            scopes,
            include_refresh_token,
            out,
            print,
        } => match load(&config) {
            Ok(c) => crate::token_cmd::run(
                &c,
                &crate::token_cmd::Request {
                    client,
                    scopes,
                    include_refresh_token,
                    out,
                    print,
                },
            ),
            Err(code) => code,
        },
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load_file(path).map_err(|errors| {
        report(path, &errors);
        ExitCode::from(2)
    })
}

fn report(path: &Path, errors: &config::ConfigErrors) {
    eprintln!(
        "error: {} is invalid ({} problem{}):",
        path.display(),
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
    }
}

fn run(config: Config, source: PathBuf) -> ExitCode {
    match crate::server::run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `check` prints: a table a person can compare against intent.
pub fn describe(path: &Path, c: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", path.display());
    let listen: Vec<String> = c.server.listen.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(
        out,
        "listen: {}  admin: {}  threads: {}",
        listen.join(", "),
        c.admin.listen,
        c.server.threads
    );
    let _ = writeln!(out, "clients:");
    for cl in &c.clients {
        let _ = writeln!(
            out,
            "  {}: {:?} grant={:?} auth={:?} token_url={} client_id={} scopes=[{}]{}",
            cl.name,
            cl.issuer,
            cl.grant.kind(),
            cl.auth.method(),
            cl.token_url,
            cl.client_id,
            cl.scopes.join(" "),
            if cl.refresh_token {
                " refresh_token=true"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "routes:");
    for r in &c.routes {
        let host = r.host.as_ref().map_or("*".to_string(), |h| h.to_string());
        let _ = writeln!(
            out,
            "  {}: host={} path_prefix={} -> {} client={} scopes=[{}]",
            r.name,
            host,
            r.path_prefix,
            r.upstream.url(),
            r.client.name,
            r.scopes.join(" ")
        );
    }
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn emulator(
    listen: std::net::SocketAddr,
    clients: &[String],
    lifetime: std::time::Duration,
) -> ExitCode {
    let mut registered = Vec::new();
    for c in clients {
        match c.split_once(':') {
            Some((id, secret)) if !id.is_empty() => {
                registered.push((id.to_string(), secret.to_string()))
            }
            _ => {
                eprintln!("error: --client {c:?}: expected client_id:secret");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match crate::runtime::one_worker() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (state, _server) = crate::emulator::start_idp(listener);
        state.set_token_lifetime(lifetime);
        for (id, secret) in &registered {
            state.register_client(id, secret);
        }
        println!("identity-service emulator on http://{listen}/oauth2/v1/token (Ctrl-C stops it)");
        let _ = tokio::signal::ctrl_c().await;
        ExitCode::SUCCESS
    })
}

fn demo(path: Option<&Path>) -> ExitCode {
    let (label, source) = match path {
        Some(p) => (p.display().to_string(), p.to_path_buf()),
        None => {
            // The bundled config names its key file relatively: materialise
            // both, so paths resolve and a reload has a file to re-read.
            let dir = std::env::temp_dir().join("bearer-proxy-demo");
            let written = std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(dir.join("demo-api-keys"), DEMO_API_KEYS))
                .and_then(|_| std::fs::write(dir.join("demo.yaml"), DEMO_CONFIG));
            if let Err(e) = written {
                eprintln!("error: cannot prepare {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            ("bundled conf/demo.yaml".to_string(), dir.join("demo.yaml"))
        }
    };
    let loaded = config::load_file(&source);
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            report(Path::new(&label), &errors);
            return ExitCode::from(2);
        }
    };
    let (Some(client), Some(route)) = (config.clients.first(), config.routes.first()) else {
        eprintln!("error: the demo configuration needs a client and a route");
        return ExitCode::from(2);
    };
    let socket = |host: Option<&str>, port: Option<u16>| -> Option<std::net::SocketAddr> {
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
        return ExitCode::from(2);
    };
    let clients = config
        .clients
        .iter()
        .filter_map(|c| match &c.auth {
            config::ClientAuth::SecretBasic { secret }
            | config::ClientAuth::SecretPost { secret } => {
                Some((c.client_id.clone(), secret.expose().to_string()))
            }
            config::ClientAuth::PrivateKeyJwt { .. } => None,
        })
        .collect();
    if let Err(e) = crate::emulator::spawn_demo_backends(idp, upstream, clients) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
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
         \n{prefix} answers 404 {{\"error\":\"no_route\"}}. Stop with Ctrl-C.\n",
        key = DEMO_API_KEY,
        admin = config.admin.listen,
        prefix = route.path_prefix,
        client_id = client.client_id,
    );
    run(config, source)
}
