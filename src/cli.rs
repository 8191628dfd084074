//! Command line: `run`, `check`, `reload`, `token`, `doctor`, `keygen`, and with the
//! `emulator` feature `demo` and `emulator` (in `emulator::commands`).
//! Starting the proxy and reporting a configuration's errors are
//! `launch`'s, which both use.
//! Exit status 2 means the configuration is invalid; 1 means the proxy
//! could not start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::launch::{report, run};
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
    /// Check each client and route against the real services: fetch a token
    /// (claims, clock skew), connect to each upstream (TLS certificate) and
    /// send one GET of the route's probe path with the token, explaining the
    /// answer. Exit 0 when every check passes, 1 otherwise.
    Doctor {
        #[arg(short, long)]
        config: PathBuf,
        /// Only this client (and its routes).
        #[arg(long)]
        client: Option<String>,
        /// Only this route (and its client).
        #[arg(long)]
        route: Option<String>,
        /// Check an on_behalf_of: caller client as this caller (a password
        /// is prompted for on the terminal, or read from stdin).
        #[arg(long)]
        caller: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write a new key for sealing shared-cache entries (32 random bytes,
    /// base64) to FILE (mode 0600, never overwriting) or to stdout.
    Keygen {
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Create (or converge) the confidential application that calls an
    /// Oracle Integration instance: its scopes, the instance's
    /// ServiceInvoker role, activation; write its secret (mode 0600) and a
    /// client block. Exit 0 done, 1 refused or failed (nothing left
    /// half-made), 2 bad arguments.
    Onboard(crate::onboard::OnboardArgs),
    /// Ask the running proxy to reload its configuration file (through its
    /// admin listener, named in FILE). FILE is checked first.
    Reload {
        #[arg(short, long)]
        config: PathBuf,
    },
    #[cfg(feature = "emulator")]
    /// Run only the bundled identity-service emulator (for benchmarks and
    /// local development): an identity-domain and OAM token endpoint, and
    /// the identity domain's admin API for `onboard`.
    Emulator(crate::emulator::commands::EmulatorArgs),
    #[cfg(feature = "emulator")]
    /// Run the proxy against a bundled local identity-service emulator and
    /// echo upstream: no Oracle tenant needed.
    Demo {
        /// Demo configuration (default: the bundled conf/demo.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

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
        #[cfg(feature = "emulator")]
        Command::Demo { config } => crate::emulator::commands::demo(config.as_deref()),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => crate::emulator::commands::emulator(&args),
        Command::Doctor {
            config,
            client,
            route,
            caller,
            json,
        } => match load(&config) {
            Ok(c) => crate::doctor::run(
                &c,
                &crate::doctor::Request {
                    client,
                    route,
                    caller,
                    json,
                },
            ),
            Err(code) => code,
        },
        Command::Onboard(args) => crate::onboard::run(&args),
        Command::Keygen { out } => crate::keygen::run(out.as_deref()),
        Command::Reload { config } => match load(&config) {
            Ok(c) => crate::admin::request_reload(&c.admin),
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
    match &c.cache {
        config::CacheSettings::Memory => {
            let _ = writeln!(out, "cache: memory (each replica fetches its own tokens)");
        }
        config::CacheSettings::Redis(r) => {
            let _ = writeln!(
                out,
                "cache: redis {} prefix={} keys={} lock_ttl={} operation_timeout={}",
                r.target,
                r.key_prefix,
                r.keys.len(),
                humantime::format_duration(r.lock_ttl),
                humantime::format_duration(r.operation_timeout)
            );
        }
    }
    if let Some(t) = &c.telemetry {
        let headers: Vec<&str> = t.headers.iter().map(|(n, _)| n.as_str()).collect();
        let _ = writeln!(
            out,
            "telemetry: {}v1/traces sample_ratio={} service_name={} headers=[{}]",
            t.otlp_endpoint,
            t.sample_ratio,
            t.service_name,
            headers.join(" ")
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
        for l in &r.limits {
            let _ = writeln!(out, "    limit {l}");
        }
    }
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
