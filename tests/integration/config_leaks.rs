//! A secret typed into the wrong key, or a mis-indented block, never comes
//! back out: configuration errors name the YAML path and what was
//! expected, never the value — in `check`, the log, the `POST /reload`
//! answer and `/status` (an HTTP endpoint).

use std::process::Command;

use crate::support::*;

/// Each case: its name and how it breaks the proxy's valid YAML with the
/// secret-looking value `s`.
type Breaker = fn(&str, &str) -> String;

/// Inserts `line` after the first line containing `anchor`, indented alike.
fn insert_after(yaml: &str, anchor: &str, line: &str) -> String {
    let mut out = Vec::new();
    let mut done = false;
    for l in yaml.lines() {
        out.push(l.to_string());
        if !done && l.contains(anchor) {
            let indent: String = l.chars().take_while(|c| *c == ' ' || *c == '-').collect();
            let indent = indent.replace('-', " ");
            out.push(format!("{indent}{line}"));
            done = true;
        }
    }
    assert!(done, "no line with {anchor:?} in:\n{yaml}");
    out.join("\n") + "\n"
}

fn replace(yaml: &str, from: &str, to: &str) -> String {
    assert!(yaml.contains(from), "no {from:?} in:\n{yaml}");
    yaml.replacen(from, to, 1)
}

const CASES: &[(&str, Breaker)] = &[
    ("a number where the client secret goes", |y, _| {
        replace(
            y,
            "client_secret: ${TEST_CLIENT_SECRET}",
            "client_secret: 98765432101234567",
        )
    }),
    ("a password in server.threads", |y, s| {
        replace(y, "threads: 2", &format!("threads: {s}"))
    }),
    ("a secret as client_auth", |y, s| {
        insert_after(y, "client_id:", &format!("client_auth: {s}"))
    }),
    ("a mis-indented secret becoming a key", |y, s| {
        insert_after(y, "client_id:", &format!("{s}: 1"))
    }),
    ("a secret as a duration", |y, s| {
        insert_after(y, "threads:", &format!("upstream_timeout: {s}"))
    }),
    ("a secret as an address", |y, s| {
        insert_after(y, "threads:", &format!("listen: [\"{s}\"]"))
    }),
    ("a secret as an upstream", |y, s| {
        replace(y, "upstream: http", &format!("upstream: {s}x"))
    }),
    ("a secret as a token URL", |y, s| {
        replace(y, "token_url: http", &format!("token_url: {s}x"))
    }),
    ("a secret as the route's client", |y, s| {
        replace(y, "client: oic", &format!("client: {s}"))
    }),
    ("a secret as a path prefix", |y, s| {
        replace(y, "path_prefix: /", &format!("path_prefix: {s}"))
    }),
    ("a secret in ${…}", |y, s| {
        replace(y, "${TEST_CLIENT_SECRET}", &format!("\"${{{s} x}}\""))
    }),
    ("a secret as a scope", |y, s| {
        insert_after(y, "client: oic", &format!("scopes: [\"{s} x\"]"))
    }),
    ("a secret as a method", |y, s| {
        insert_after(y, "client: oic", &format!("methods: [\"{s}\"]"))
    }),
    ("a secret as a CIDR", |y, s| {
        insert_after(
            y,
            "client: oic",
            &format!("access: {{ allow_cidrs: [\"{s}\"] }}"),
        )
    }),
    ("a secret as a cache backend", |y, s| {
        format!("{y}cache: {{ backend: {s} }}\n")
    }),
    ("a secret as a rate", |y, s| {
        insert_after(y, "client: oic", "limits: [l]")
            + &format!("limits: {{ l: {{ rate: {s} }} }}\n")
    }),
    ("a secret as a boolean", |y, s| {
        insert_after(y, "threads:", &format!("watch_files: {s}"))
    }),
    ("a secret as a file name", |y, s| {
        replace(
            y,
            "client_secret: ${TEST_CLIENT_SECRET}",
            &format!("client_secret_file: {s}"),
        )
    }),
];

/// A value no message could contain by chance.
fn secret(i: usize) -> String {
    format!("Zq9Secret{i}x7Vw2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configuration_error_quotes_a_value_in_check_reload_status_or_the_log() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let good = std::fs::read_to_string(proxy.config_path()).unwrap();
    for (i, (name, breaker)) in CASES.iter().enumerate() {
        let s = secret(i);
        let bad = breaker(&good, &s);
        let bad = if name.contains("number") {
            bad.replace("98765432101234567", &format!("9876543210{i}"))
        } else {
            bad
        };
        let s = if name.contains("number") {
            format!("9876543210{i}")
        } else {
            s
        };
        std::fs::write(proxy.config_path(), &bad).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(["check", "-c"])
            .arg(proxy.config_path())
            .env("TEST_CLIENT_SECRET", "x")
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {printed}");
        assert!(
            !printed.contains(&s),
            "{name}: check printed the value: {printed}"
        );
        assert!(
            printed.contains(": "),
            "{name}: a path and a reason: {printed}"
        );
        let (status, answer) = proxy.admin_reload().await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(
            !answer.to_string().contains(&s),
            "{name}: POST /reload: {answer}"
        );
        let shown = proxy.status_json().await.to_string();
        assert!(shown.contains("config_refused"), "{name}");
        assert!(!shown.contains(&s), "{name}: /status: {shown}");
    }
    let log = proxy.output();
    for (i, (name, _)) in CASES.iter().enumerate() {
        assert!(!log.contains(&secret(i)), "the log quotes case {i}: {name}");
        assert!(
            !log.contains(&format!("9876543210{i}")),
            "the log quotes case {i}"
        );
    }
}
