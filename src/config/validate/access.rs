//! `routes[i].access:` — who may use a route. Required: a route hands out
//! an Oracle application's roles, so "open to anyone" must be said.

use std::net::IpAddr;
use std::path::Path;

use super::Validator;
use crate::access::{AccessPolicy, ApiKeys, BasicUsers};
use crate::config::defaults as d;
use crate::config::raw::RawAccess;

impl Validator<'_> {
    pub(super) fn access(&mut self, p: &str, raw: Option<RawAccess>) -> Option<AccessPolicy> {
        let Some(raw) = raw else {
            self.err(
                p,
                "is required: say who may use this route, e.g. \"access: { api_keys_file: conf/api-keys }\", or \"access: { allow_any: true }\" to open it to anyone who can reach the listener",
            );
            return None;
        };
        self.section(|v| {
            v.access_mode(p, &raw);
            let api_keys = v.api_keys(p, &raw);
            let basic_users = raw.basic_users_file.as_ref().and_then(|file| {
                v.parsed_file(&format!("{p}.basic_users_file"), file, BasicUsers::parse)
            });
            let allow_cidrs = v.cidrs(p, &raw.allow_cidrs);
            v.cert_subjects(p, &raw.client_cert_subjects);
            Some(AccessPolicy {
                allow_any: raw.allow_any,
                allow_cidrs,
                api_keys,
                basic_users,
                identity_service_basic: raw.identity_service_basic,
                client_cert_subjects: raw.client_cert_subjects,
            })
        })
    }

    /// Either `allow_any: true` alone, or at least one rule.
    fn access_mode(&mut self, p: &str, raw: &RawAccess) {
        let anything_else = raw.api_keys_file.is_some()
            || raw.basic_users_file.is_some()
            || raw.identity_service_basic
            || !raw.allow_cidrs.is_empty()
            || !raw.client_cert_subjects.is_empty();
        if raw.allow_any && anything_else {
            self.err(
                format!("{p}.allow_any"),
                "allow_any: true lets everyone through; remove the other access settings or set allow_any: false",
            );
        }
        if !raw.allow_any && !anything_else {
            self.err(
                p,
                "lets no one through: set api_keys_file, basic_users_file, allow_cidrs or client_cert_subjects, or allow_any: true",
            );
        }
        if raw.identity_service_basic {
            let beside = [
                ("basic_users_file", raw.basic_users_file.is_some()),
                ("api_keys_file", raw.api_keys_file.is_some()),
                ("client_cert_subjects", !raw.client_cert_subjects.is_empty()),
            ];
            for (key, set) in beside {
                if set {
                    self.err(
                        format!("{p}.{key}"),
                        "cannot be combined with identity_service_basic: the caller's Basic credentials are the route's only credential check (allow_cidrs may narrow it)",
                    );
                }
            }
        }
    }

    fn api_keys(&mut self, p: &str, raw: &RawAccess) -> Option<ApiKeys> {
        let header = match raw.api_key_header.as_deref() {
            None => Some(http::HeaderName::from_static(d::API_KEY_HEADER)),
            Some(h) => match http::HeaderName::try_from(h) {
                Ok(name) if name != http::header::AUTHORIZATION && name != http::header::HOST => {
                    Some(name)
                }
                _ => {
                    self.err(
                        format!("{p}.api_key_header"),
                        "is not usable as the API key header (a header name such as x-api-key; not Authorization or Host)",
                    );
                    None
                }
            },
        };
        if raw.api_key_header.is_some() && raw.api_keys_file.is_none() {
            self.err(
                format!("{p}.api_key_header"),
                "only applies with api_keys_file",
            );
        }
        let (file, header) = (raw.api_keys_file.as_ref()?, header?);
        self.parsed_file(&format!("{p}.api_keys_file"), file, |text| {
            ApiKeys::parse(text, header)
        })
    }

    /// A file read and parsed; either failure is an error at `path`.
    fn parsed_file<T>(
        &mut self,
        path: &str,
        file: &Path,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.read_text(path, file)?;
        parse(&text).map_err(|e| self.err(path, e)).ok()
    }

    fn cidrs(&mut self, p: &str, raw: &[String]) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for (i, c) in raw.iter().enumerate() {
            let parsed = c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => out.push(net),
                Err(_) => self.err(
                    format!("{p}.allow_cidrs[{i}]"),
                    "is not an address or CIDR range (e.g. \"10.0.0.0/8\", \"::1/128\")",
                ),
            }
        }
        out
    }

    fn cert_subjects(&mut self, p: &str, subjects: &[String]) {
        for (i, subject) in subjects.iter().enumerate() {
            if subject.trim().is_empty() || !subject.contains('=') {
                self.err(
                    format!("{p}.client_cert_subjects[{i}]"),
                    "is not a subject like \"CN=legacy-erp\"",
                );
            }
        }
        if !subjects.is_empty() && !self.has_mtls_listener {
            self.err(
                format!("{p}.client_cert_subjects"),
                "requires a TLS listener that verifies client certificates (server.tls_listen with client_ca_file)",
            );
        }
    }
}
