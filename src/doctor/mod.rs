//! `bearer-proxy doctor`: what an operator runs when onboarding an
//! application. For each client it fetches a token and shows what the
//! token says and how far the clocks disagree; for each route it connects
//! to the upstream (TLS verification, certificate subject and expiry),
//! sends one `GET` of the route's probe path with the token and explains
//! the answer — above all a 401, whose usual causes (a missing role, a
//! scope of the wrong audience) look like an expired token. Exit 0 when
//! every check passes, 1 otherwise, 2 for usage errors.
//!
//! An `on_behalf_of: caller` client has no token of its own: `--caller
//! USER` checks it as one caller (its password read from the terminal or
//! stdin, never from an argument); without it the client and its routes
//! are listed as not probed.

mod caller;
pub(crate) mod client_check;
pub mod oic_rules;
#[cfg(test)]
mod oic_rules_tests;
mod report;
mod route_check;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{ClientConfig, Config, RouteConfig};
use crate::oauth::callers::CallerCredential;
pub use client_check::ClientReport;
pub use route_check::RouteReport;

pub struct Request {
    pub client: Option<String>,
    pub route: Option<String>,
    /// Check the selected `on_behalf_of: caller` client as this caller.
    pub caller: Option<String>,
    pub json: bool,
}

/// Everything `doctor` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub clients: Vec<ClientReport>,
    pub routes: Vec<RouteReport>,
    /// Oracle Integration's rules the configuration breaks.
    pub findings: Vec<oic_rules::Finding>,
}

pub fn run(config: &Config, req: &Request) -> ExitCode {
    crate::tls::install_crypto_provider();
    let (clients, routes) = match select(config, req) {
        Ok(selection) => selection,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let caller = match caller::credential(&clients, req.caller.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::runtime::for_command() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = runtime.block_on(examine(&clients, &routes, caller.as_ref()));
    if req.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serializes")
        );
    } else {
        print!("{}", report::human(&report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type Selection<'a> = (Vec<&'a Arc<ClientConfig>>, Vec<&'a RouteConfig>);

/// The clients and routes to check: all, or those named (a named route
/// brings its client; a named client its routes).
fn select<'a>(config: &'a Config, req: &Request) -> Result<Selection<'a>, String> {
    let known = |names: Vec<&str>| names.join(", ");
    let mut clients: Vec<&Arc<ClientConfig>> = config.clients.iter().collect();
    let mut routes: Vec<&RouteConfig> = config.routes.iter().collect();
    if let Some(name) = &req.client {
        clients.retain(|c| &c.name == name);
        if clients.is_empty() {
            let names = config.clients.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "--client: unknown client {name:?} (known: {})",
                known(names)
            ));
        }
        routes.retain(|r| &r.client.name == name);
    }
    if let Some(name) = &req.route {
        routes.retain(|r| &r.name == name);
        let Some(route) = routes.first() else {
            let names = config.routes.iter().map(|r| r.name.as_str()).collect();
            return Err(format!(
                "--route: unknown route {name:?} for the selected client (known: {})",
                known(names)
            ));
        };
        clients.retain(|c| c.name == route.client.name);
    }
    Ok((clients, routes))
}

async fn examine(
    clients: &[&Arc<ClientConfig>],
    routes: &[&RouteConfig],
    caller: Option<&CallerCredential>,
) -> Report {
    let mut tokens = HashMap::new();
    let mut client_reports = Vec::new();
    let mut findings = oic_rules::static_findings(clients, routes);
    for client in clients {
        let (report, token) = client_check::check(client, &client.scopes, caller).await;
        if let Some(granted) = report.expires_in_s {
            findings.extend(oic_rules::refresh_before_lifetime(client, granted));
        }
        tokens.insert((client.name.clone(), client.scopes.clone()), token);
        client_reports.push(report);
    }
    let mut route_reports = Vec::new();
    for route in routes {
        if route.client.callers.is_some() && caller.is_none() {
            route_reports.push(route_check::not_probed_without_caller(route));
            continue;
        }
        let key = (route.client.name.clone(), route.scopes.clone());
        if !tokens.contains_key(&key) {
            let (_, token) = client_check::check(&route.client, &route.scopes, caller).await;
            tokens.insert(key.clone(), token);
        }
        route_reports.push(route_check::check(route, tokens[&key].as_ref()).await);
    }
    Report {
        ok: client_reports.iter().all(|c| c.ok)
            && route_reports.iter().all(|r| r.ok)
            && findings.iter().all(|f| f.severity != "error"),
        clients: client_reports,
        routes: route_reports,
        findings,
    }
}
