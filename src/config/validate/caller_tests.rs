//! `on_behalf_of: caller` errors: the client's own settings and the
//! routes that use such a client (helpers from `tests.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::tests::*;
use crate::config::raw::{GrantKind, OnBehalfOf, RawAccess, RawClient, RawConfig};
use crate::config::Grant;

/// A temp dir with an API-key file, a subjects file and a bad one.
struct Files {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    subjects: PathBuf,
    bad_subjects: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, crate::access::api_key_line("erp", "k")).unwrap();
    let subjects = dir.path().join("subjects");
    std::fs::write(&subjects, "erp: alice\n").unwrap();
    let bad_subjects = dir.path().join("bad-subjects");
    std::fs::write(&bad_subjects, "erp alice\n").unwrap();
    Files {
        _dir: dir,
        keys,
        subjects,
        bad_subjects,
    }
}

/// A password client acting as each caller, on a route passing the
/// callers' Basic credentials; then `change`.
fn password_callers(change: impl FnOnce(&mut RawConfig)) -> RawConfig {
    with(|raw| {
        let c = raw.clients.get_mut("oic-prod").unwrap();
        c.grant = GrantKind::Password;
        c.on_behalf_of = Some(OnBehalfOf::Caller);
        raw.routes[0].access = Some(RawAccess::identity_service_basic());
        change(raw);
    })
}

/// A user-assertion client acting as each API-key caller; then `change`.
fn jwt_callers(keys: &std::path::Path, change: impl FnOnce(&mut RawConfig)) -> RawConfig {
    with(|raw| {
        let c = raw.clients.get_mut("oic-prod").unwrap();
        c.grant = GrantKind::JwtBearer;
        c.signing_key = Some(key(|_| {}));
        c.on_behalf_of = Some(OnBehalfOf::Caller);
        raw.routes[0].access = Some(RawAccess::api_keys(keys.to_str().unwrap()));
        change(raw);
    })
}

fn oic(raw: &mut RawConfig) -> &mut RawClient {
    raw.clients.get_mut("oic-prod").unwrap()
}

#[test]
fn caller_clients_and_routes_load() {
    let f = files();
    let config = load(&password_callers(|_| {}).to_yaml(), true).unwrap();
    let policy = config.clients[0].callers.as_ref().unwrap();
    assert_eq!(policy.max_callers, 10_000);
    assert_eq!(policy.idle_timeout, Duration::from_secs(3600));
    assert_eq!(policy.refused_password_memory, Duration::from_secs(300));
    assert_eq!(policy.password_attempts_per_minute, 3);
    assert!(matches!(config.clients[0].grant, Grant::CallerPassword));
    let jwt = jwt_callers(&f.keys, |r| {
        oic(r).caller_subjects_file = Some(f.subjects.clone())
    });
    let config = load(&jwt.to_yaml(), true).unwrap();
    let subjects = config.clients[0].callers.as_ref().unwrap().subjects.clone();
    assert_eq!(subjects.unwrap().subject("erp"), Some("alice"));
    assert!(matches!(
        config.clients[0].grant,
        Grant::CallerAssertion { .. }
    ));
}

#[test]
#[rustfmt::skip]
fn caller_errors() {
    let f = files();
    let keys = &f.keys;
    let bad = f.bad_subjects.clone();
    assert_errors(vec![
        ("on_behalf_of with a fixed username", password_callers(|r| oic(r).username = Some("u".into())), "clients.oic-prod.username: must not be set with on_behalf_of: caller"),
        ("on_behalf_of with a fixed password", password_callers(|r| oic(r).password = Some("p".into())), "clients.oic-prod.password: must not be set with on_behalf_of: caller"),
        ("on_behalf_of with a password file", password_callers(|r| oic(r).password_file = Some("pw".into())), "clients.oic-prod.password_file: must not be set with on_behalf_of: caller"),
        ("on_behalf_of with a fixed subject", jwt_callers(keys, |r| oic(r).subject = Some("alice".into())), "clients.oic-prod.subject: must not be set with on_behalf_of: caller"),
        ("on_behalf_of with client_credentials", client(|c| c.on_behalf_of = Some(OnBehalfOf::Caller)), "clients.oic-prod.on_behalf_of: only applies to grant password or jwt_bearer"),
        ("a plain password client without credentials", client(|c| c.grant = GrantKind::Password), "clients.oic-prod.username: is required when grant is password, unless on_behalf_of: caller"),
        ("max_callers without on_behalf_of", client(|c| c.max_callers = Some(5)), "clients.oic-prod.max_callers: only applies with on_behalf_of: caller"),
        ("caller_idle_timeout without on_behalf_of", client(|c| c.caller_idle_timeout = Some(Duration::from_secs(5))), "clients.oic-prod.caller_idle_timeout: only applies with on_behalf_of: caller"),
        ("attempts on an assertion client", jwt_callers(keys, |r| oic(r).password_attempts_per_minute = Some(2)), "clients.oic-prod.password_attempts_per_minute: only applies to grant password with on_behalf_of: caller"),
        ("refused memory on an assertion client", jwt_callers(keys, |r| oic(r).refused_password_memory = Some(Duration::from_secs(60))), "clients.oic-prod.refused_password_memory: only applies to grant password"),
        ("subjects file on a password client", password_callers(|r| oic(r).caller_subjects_file = Some("s".into())), "clients.oic-prod.caller_subjects_file: only applies to grant jwt_bearer with on_behalf_of: caller"),
        ("max_callers zero", password_callers(|r| oic(r).max_callers = Some(0)), "clients.oic-prod.max_callers: must be between 1 and 1000000"),
        ("max_callers too many", password_callers(|r| oic(r).max_callers = Some(2_000_000)), "clients.oic-prod.max_callers: must be between 1 and 1000000"),
        ("idle timeout too short", password_callers(|r| oic(r).caller_idle_timeout = Some(Duration::from_millis(10))), "clients.oic-prod.caller_idle_timeout: must be between 1s and 7days"),
        ("refused memory zero", password_callers(|r| oic(r).refused_password_memory = Some(Duration::ZERO)), "clients.oic-prod.refused_password_memory: must be between 1s and 7days"),
        ("attempts zero", password_callers(|r| oic(r).password_attempts_per_minute = Some(0)), "clients.oic-prod.password_attempts_per_minute: must be between 1 and 60"),
        ("attempts too many", password_callers(|r| oic(r).password_attempts_per_minute = Some(61)), "clients.oic-prod.password_attempts_per_minute: must be between 1 and 60"),
        ("unreadable subjects file", jwt_callers(keys, |r| oic(r).caller_subjects_file = Some("/nonexistent/subjects".into())), "clients.oic-prod.caller_subjects_file: cannot read the file it names"),
        ("bad subjects line", jwt_callers(keys, |r| oic(r).caller_subjects_file = Some(bad)), "clients.oic-prod.caller_subjects_file: line 1: expected caller-name: identity-domain-user"),
        ("per-caller client on an open route", jwt_callers(keys, |r| r.routes[0].access = Some(RawAccess::allow_any())), "routes[0].access: client \"oic-prod\" acts on behalf of each caller, but this access admits callers without a name"),
        ("per-caller client behind CIDRs alone", jwt_callers(keys, |r| r.routes[0].access = Some(RawAccess { allow_cidrs: vec!["10.0.0.0/8".into()], ..RawAccess::default() })), "routes[0].access: client \"oic-prod\" acts on behalf of each caller, but this access admits callers without a name"),
        ("identity_service_basic with a client_credentials client", access(RawAccess::identity_service_basic()), "routes[0].access.identity_service_basic: needs a client with grant password and on_behalf_of: caller"),
        ("identity_service_basic with an assertion client", jwt_callers(keys, |r| r.routes[0].access = Some(RawAccess::identity_service_basic())), "routes[0].access.identity_service_basic: needs a client with grant password and on_behalf_of: caller"),
        ("per-caller password client without identity_service_basic", password_callers(|r| r.routes[0].access = Some(RawAccess::api_keys(keys.to_str().unwrap()))), "routes[0].access: client \"oic-prod\" sends each caller's own password to the identity service: set identity_service_basic: true"),
        ("identity_service_basic beside basic_users_file", password_callers(|r| r.routes[0].access.as_mut().unwrap().basic_users_file = Some("users".into())), "routes[0].access.basic_users_file: cannot be combined with identity_service_basic"),
        ("identity_service_basic beside api_keys_file", password_callers(|r| r.routes[0].access.as_mut().unwrap().api_keys_file = Some(keys.clone())), "routes[0].access.api_keys_file: cannot be combined with identity_service_basic"),
    ]);
}
