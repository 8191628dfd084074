//! `clients.<name>.on_behalf_of: caller` and its bounds, and the route
//! checks that such a client gets a named caller (and, for the password
//! flavour, the caller's own Basic credentials).

use std::time::Duration;

use super::Validator;
use crate::access::{AccessPolicy, CallerSubjects};
use crate::config::defaults as d;
use crate::config::raw::RawClient;
use crate::config::{CallerPolicy, ClientConfig, Grant, GrantKind, OnBehalfOf};

const ONLY_WITH_CALLER: &str = "only applies with on_behalf_of: caller";

impl Validator<'_> {
    /// The caller policy of a client: `None` without `on_behalf_of`, where
    /// every caller setting is an error.
    pub(super) fn caller_policy(&mut self, p: &str, raw: &RawClient) -> Option<CallerPolicy> {
        let password = raw.grant == GrantKind::Password;
        let jwt = raw.grant == GrantKind::JwtBearer;
        let per_caller = raw.on_behalf_of == Some(OnBehalfOf::Caller);
        let set = [
            ("max_callers", raw.max_callers.is_some(), per_caller),
            (
                "caller_idle_timeout",
                raw.caller_idle_timeout.is_some(),
                per_caller,
            ),
            (
                "refused_password_memory",
                raw.refused_password_memory.is_some(),
                per_caller && password,
            ),
            (
                "password_attempts_per_minute",
                raw.password_attempts_per_minute.is_some(),
                per_caller && password,
            ),
            (
                "caller_subjects_file",
                raw.caller_subjects_file.is_some(),
                per_caller && jwt,
            ),
        ];
        for (key, is_set, allowed) in set {
            if is_set && !allowed {
                let why = match key {
                    "refused_password_memory" | "password_attempts_per_minute" if per_caller => {
                        "only applies to grant password with on_behalf_of: caller"
                    }
                    "caller_subjects_file" if per_caller => {
                        "only applies to grant jwt_bearer with on_behalf_of: caller"
                    }
                    _ => ONLY_WITH_CALLER,
                };
                self.err(format!("{p}.{key}"), why);
            }
        }
        if !per_caller {
            return None;
        }
        if raw.grant == GrantKind::ClientCredentials {
            self.err(
                format!("{p}.on_behalf_of"),
                "only applies to grant password or jwt_bearer (client_credentials tokens are the application's own)",
            );
            return None;
        }
        self.caller_bounds(p, raw)
    }

    fn caller_bounds(&mut self, p: &str, raw: &RawClient) -> Option<CallerPolicy> {
        let max_callers = raw.max_callers.unwrap_or(d::MAX_CALLERS);
        if !(1..=d::MAX_CALLERS_LIMIT).contains(&max_callers) {
            self.err(
                format!("{p}.max_callers"),
                format!("must be between 1 and {}", d::MAX_CALLERS_LIMIT),
            );
        }
        let idle_timeout = self.within(
            &format!("{p}.caller_idle_timeout"),
            raw.caller_idle_timeout.unwrap_or(d::CALLER_IDLE_TIMEOUT),
            d::CALLER_IDLE_TIMEOUT_MIN,
            d::CALLER_IDLE_TIMEOUT_MAX,
        );
        let refused_password_memory = self.within(
            &format!("{p}.refused_password_memory"),
            raw.refused_password_memory
                .unwrap_or(d::REFUSED_PASSWORD_MEMORY),
            Duration::from_secs(1),
            d::REFUSED_PASSWORD_MEMORY_MAX,
        );
        let attempts = raw
            .password_attempts_per_minute
            .unwrap_or(d::PASSWORD_ATTEMPTS_PER_MINUTE);
        if !(1..=d::PASSWORD_ATTEMPTS_LIMIT).contains(&attempts) {
            self.err(
                format!("{p}.password_attempts_per_minute"),
                format!(
                    "must be between 1 and {} (an identity domain usually locks a user after 5 failed sign-ins in a row)",
                    d::PASSWORD_ATTEMPTS_LIMIT
                ),
            );
        }
        let subjects = raw.caller_subjects_file.as_ref().and_then(|file| {
            let path = format!("{p}.caller_subjects_file");
            let text = self.read_text(&path, file)?;
            CallerSubjects::parse(&text)
                .map_err(|e| self.err(&path, e))
                .ok()
        });
        Some(CallerPolicy {
            max_callers,
            idle_timeout,
            refused_password_memory,
            password_attempts_per_minute: attempts,
            subjects: subjects.map(std::sync::Arc::new),
        })
    }

    fn within(&mut self, path: &str, value: Duration, min: Duration, max: Duration) -> Duration {
        if value < min || value > max {
            self.err(
                path,
                format!(
                    "must be between {} and {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
        }
        value
    }

    /// A per-caller client needs a named caller on every route that uses
    /// it; `identity_service_basic` needs the password flavour, and the
    /// password flavour needs it.
    pub(super) fn route_callers(&mut self, p: &str, client: &ClientConfig, access: &AccessPolicy) {
        let name = &client.name;
        if client.callers.is_some() && !access.names_callers() {
            self.err(
                format!("{p}.access"),
                format!("client {name:?} acts on behalf of each caller, but this access admits callers without a name (allow_any, or allow_cidrs alone): add api_keys_file, basic_users_file, client_cert_subjects or identity_service_basic"),
            );
        }
        let password = matches!(client.grant, Grant::CallerPassword);
        if access.identity_service_basic && !password {
            self.err(
                format!("{p}.access.identity_service_basic"),
                format!("needs a client with grant password and on_behalf_of: caller (client {name:?} is not one)"),
            );
        }
        if password && !access.identity_service_basic {
            self.err(
                format!("{p}.access"),
                format!("client {name:?} sends each caller's own password to the identity service: set identity_service_basic: true"),
            );
        }
    }
}
