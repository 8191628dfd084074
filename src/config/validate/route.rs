//! `routes:` — which requests go where, with whose token; and the route
//! table built over them.

use std::collections::HashMap;
use std::sync::Arc;

use super::limits::Limits;
use super::{valid_name, Clients, Validator};
use crate::config::defaults as d;
use crate::config::raw::RawRoute;
use crate::config::{ClientConfig, HostPattern, RouteConfig, UpstreamTarget};
use crate::route_table::{DuplicateRoute, RouteTable};
use rustls::pki_types::CertificateDer;

impl Validator<'_> {
    pub(super) fn routes(
        &mut self,
        raw: Vec<RawRoute>,
        clients: &Clients,
        limits: &Limits,
    ) -> (Vec<RouteConfig>, Option<RouteTable>) {
        if raw.is_empty() {
            self.err("routes", "at least one route is required");
        }
        let mut routes = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, raw_route) in raw.into_iter().enumerate() {
            let Some(route) = self.section(|v| v.route(i, raw_route, clients, limits)) else {
                continue;
            };
            if let Some(first) = names.insert(route.name.clone(), i) {
                self.err(
                    format!("routes[{i}].name"),
                    format!("duplicate route name (also routes[{first}])"),
                );
            }
            routes.push(route);
        }
        let table = self.errors.is_empty().then(|| self.route_table(&routes));
        (routes, table.flatten())
    }

    /// Called only when every route validated, so indices are file indices.
    fn route_table(&mut self, routes: &[RouteConfig]) -> Option<RouteTable> {
        let keys = routes
            .iter()
            .map(|r| (r.host.as_ref(), r.path_prefix.as_str()));
        match RouteTable::build(keys) {
            Ok(t) => Some(t),
            Err(DuplicateRoute { first, second }) => {
                self.err(
                    format!("routes[{second}].match"),
                    format!("same host and path_prefix as routes[{first}]: one of them could never match"),
                );
                None
            }
        }
    }

    fn route(
        &mut self,
        i: usize,
        raw: RawRoute,
        clients: &Clients,
        limits: &Limits,
    ) -> Option<RouteConfig> {
        let p = format!("routes[{i}]");
        let (upstream, upstream_ca) = self.route_upstream(&p, &raw);
        let name = match raw.name {
            Some(n) if valid_name(&n) => Some(n),
            Some(_) => {
                self.err(
                    format!("{p}.name"),
                    "route names may use only letters, digits, '-', '_' and '.'",
                );
                None
            }
            None => {
                self.err(format!("{p}.name"), "is required");
                None
            }
        };
        let host = raw
            .matcher
            .host
            .as_deref()
            .and_then(|h| self.host_pattern(&format!("{p}.match.host"), h));
        let path_prefix = raw
            .matcher
            .path_prefix
            .unwrap_or_else(|| d::PATH_PREFIX.to_string());
        if !path_prefix.starts_with('/') {
            self.err(format!("{p}.match.path_prefix"), "must start with '/'");
        }
        let client = self.route_client(&p, raw.client.as_deref(), clients);
        let scopes = self.route_scopes(&p, raw.scopes, client.as_deref());
        let access = self.access(&format!("{p}.access"), raw.access);
        let methods = self.methods(&p, raw.methods.as_deref());
        let probe_path = raw.probe_path.unwrap_or_else(|| path_prefix.clone());
        if !probe_path.starts_with('/') {
            self.err(format!("{p}.probe_path"), "must start with '/'");
        }
        if raw.max_body_bytes == Some(0) {
            self.err(
                format!("{p}.max_body_bytes"),
                "must be greater than zero (leave it out for no limit)",
            );
        }
        if let (Some(client), Some(access)) = (&client, &access) {
            self.route_callers(&p, client, access);
        }
        let limits = self.route_limits(&p, &raw.limits, limits, access.as_ref());
        Some(RouteConfig {
            max_body_bytes: raw.max_body_bytes,
            methods,
            probe_path,
            access: Arc::new(access?),
            name: name?,
            host,
            path_prefix,
            upstream: upstream?,
            upstream_ca,
            client: client?,
            scopes,
            limits,
        })
    }

    /// Where the route's traffic goes, and the extra CAs it is checked with.
    fn route_upstream(
        &mut self,
        p: &str,
        raw: &RawRoute,
    ) -> (Option<UpstreamTarget>, Vec<CertificateDer<'static>>) {
        let upstream = match raw.upstream.as_deref() {
            None => {
                self.err(format!("{p}.upstream"), "is required");
                None
            }
            Some(u) => self.upstream(&format!("{p}.upstream"), u),
        };
        let upstream_ca = match &raw.upstream_ca_file {
            Some(f) => {
                if upstream.as_ref().is_some_and(|u| !u.tls) {
                    self.err(
                        format!("{p}.upstream_ca_file"),
                        "only applies to https upstreams",
                    );
                }
                self.certificates(&format!("{p}.upstream_ca_file"), f)
            }
            None => Vec::new(),
        };
        (upstream, upstream_ca)
    }

    fn route_client(
        &mut self,
        p: &str,
        name: Option<&str>,
        clients: &Clients,
    ) -> Option<Arc<ClientConfig>> {
        let Some(name) = name else {
            self.err(
                format!("{p}.client"),
                format!("is required ({})", clients.known()),
            );
            return None;
        };
        if let Some(client) = clients.valid.get(name) {
            return Some(client.clone());
        }
        // An invalid client's own errors are reported under clients.<name>.
        if !clients.invalid.iter().any(|n| n == name) {
            self.err(
                format!("{p}.client"),
                format!("unknown client ({})", clients.known()),
            );
        }
        None
    }

    /// The route's own scopes, or its client's; there must be some.
    fn route_scopes(
        &mut self,
        p: &str,
        own: Vec<String>,
        client: Option<&ClientConfig>,
    ) -> Vec<String> {
        let path = format!("{p}.scopes");
        self.scopes(&path, &own);
        if !own.is_empty() {
            self.scope_rules(&path, &own);
        }
        let Some(client) = client else {
            return own;
        };
        let scopes = if own.is_empty() {
            client.scopes.clone()
        } else {
            own
        };
        if scopes.is_empty() {
            self.err(
                path,
                format!(
                    "no scope to request: set clients.{}.scopes or this route's scopes (identity domains require a scope, e.g. \"https://<oic-host>:443urn:opc:resource:consumer::all\")",
                    client.name
                ),
            );
        }
        scopes
    }

    /// The methods a route forwards; TRACE and CONNECT never.
    fn methods(&mut self, p: &str, raw: Option<&[String]>) -> Vec<http::Method> {
        let names: Vec<&str> = match raw {
            None => d::METHODS.to_vec(),
            Some([]) => {
                self.err(
                    format!("{p}.methods"),
                    "must name at least one method (leave it out for every method but TRACE and CONNECT)",
                );
                return Vec::new();
            }
            Some(list) => list.iter().map(String::as_str).collect(),
        };
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = format!("{p}.methods[{i}]");
            match http::Method::from_bytes(name.as_bytes()) {
                Ok(m) if m == http::Method::TRACE || m == http::Method::CONNECT => self.err(
                    path,
                    format!("{name} is never forwarded: TRACE would reflect the injected token, CONNECT opens a tunnel"),
                ),
                Ok(m) if name.bytes().all(|b| b.is_ascii_uppercase()) => {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
                _ => self.err(path, "is not an HTTP method (e.g. GET, POST)"),
            }
        }
        out
    }

    fn host_pattern(&mut self, path: &str, raw: &str) -> Option<HostPattern> {
        match parse_host_pattern(raw) {
            Ok(h) => Some(h),
            Err(why) => {
                self.err(
                    path,
                    format!("{why} (use \"api.example.com\" or \"*.example.com\")"),
                );
                None
            }
        }
    }
}

fn parse_host_pattern(raw: &str) -> Result<HostPattern, &'static str> {
    let h = raw.trim().to_ascii_lowercase();
    if h.is_empty() {
        return Err("empty host");
    }
    if h.contains(':') && !h.starts_with('[') {
        return Err("must not include a port (the port is ignored when matching)");
    }
    if let Some(suffix) = h.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err("invalid wildcard");
        }
        return Ok(HostPattern::Suffix(format!(".{suffix}")));
    }
    if h.contains('*') || h.contains('/') {
        return Err("'*' is only allowed as a leading \"*.\"");
    }
    Ok(HostPattern::Exact(h))
}
