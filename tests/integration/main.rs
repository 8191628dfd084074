//! Integration tests: one binary, one module per capability. Each test
//! starts its own emulator, echo upstream and proxy process on ephemeral
//! ports.

mod support;

mod access;
mod admin;
mod callers;
mod client_tls;
mod config_errors;
mod config_leaks;
mod connections;
mod deploy_kit;
mod differential;
mod doctor;
mod errors;
mod fast_path;
mod fleet;
mod idp_hardening;
mod keepalive;
mod limits;
mod observability;
mod onboard;
mod oracle_compat;
mod path_policy;
mod reload;
mod routing;
mod shutdown;
mod smuggling;
mod status_page;
mod streaming;
mod tls_listener;
mod tls_upstream;
mod token_command;
mod token_flows;
mod token_lifecycle;
mod traces;
mod traffic_limits;
mod upstream_401;
mod upstream_refuses;
mod watch;
