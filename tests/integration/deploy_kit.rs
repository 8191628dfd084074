//! The operators' kit against the real thing: every metric the Grafana
//! dashboard and the Prometheus alerts use is one a running proxy exports,
//! and every dashboard expression is valid PromQL to promtool.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/grafana/bearer-proxy.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap() >= 39,
        "a current Grafana schema"
    );
    let datasource = &dashboard["templating"]["list"][0];
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/prometheus/alerts.yaml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect()
}

/// `bearer_proxy_…` names in an expression, histogram suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("bearer_proxy_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        names.insert(base.to_string());
    }
    names
}

/// Families the proxy exports once each has been used: requests (an open
/// route, a refused API key, an upstream 401), token fetches, the shared
/// cache and one of its errors (a corrupted entry, then a renewal), a
/// client certificate's expiry.
async fn exported_families() -> BTreeSet<String> {
    let (idp, upstream, redis) = (
        Idp::start().await,
        Upstream::start().await,
        Redis::start().await,
    );
    let mut config = ProxyConfig::new(&idp, &upstream).shared(&redis, &cache_key(), None);
    config.raw.routes.push(
        RawRoute::open("keyed", "/keyed/", &upstream.url(), "oic")
            .with_access(RawAccess::api_keys("keys")),
    );
    config
        .files
        .push(("keys", bearer_proxy::api_key_line("k", "key")));
    // A client that authenticates by certificate (its expiry is a series).
    let ca = TestCa::new();
    let (cert, key) = ca.client("deploy-kit-client");
    config.raw.clients.insert(
        "mtls".into(),
        RawClient {
            token_url: Some("https://idcs-1.secure.identity.oraclecloud.com".into()),
            client_id: Some("mtls".into()),
            client_auth: ClientAuthMethod::TlsClientAuth,
            tls_client_cert_file: Some("client.crt".into()),
            tls_client_key_file: Some("client.key".into()),
            scopes: vec![SCOPE.into()],
            ..RawClient::default()
        },
    );
    config.files.push(("client.crt", cert));
    config.files.push(("client.key", key));
    // A limit that refuses the second request of a minute.
    config.raw.limits.insert(
        "once".into(),
        RawLimit {
            rate: Some("1/min".into()),
            ..RawLimit::default()
        },
    );
    let mut limited = RawRoute::open("limited", "/limited/", &upstream.url(), "oic");
    limited.limits = vec!["once".into()];
    config.raw.routes.push(limited);
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/limited/x")).await, 200);
    assert_eq!(get_status(proxy.url("/limited/x")).await, 429);
    assert_eq!(get_status(proxy.url("/__status/429")).await, 429);
    assert_eq!(get_status(proxy.url("/x")).await, 200);
    assert_eq!(get_status(proxy.url("/keyed/x")).await, 401);
    assert_eq!(get_status(proxy.url("/__status/401")).await, 401);
    let slot = redis.slot_key();
    let _: () = redis::cmd("SET")
        .arg(&slot)
        .arg("garbage")
        .query(&mut redis.connection())
        .unwrap();
    let renewed = client()
        .post(proxy.admin_url("/clients/oic/renew"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    proxy
        .metrics()
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_the_proxy_exports() {
    let exported = exported_families().await;
    let used: BTreeSet<String> = dashboard_exprs()
        .iter()
        .chain(alert_exprs().iter())
        .flat_map(|e| metric_names(e))
        .collect();
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<_> = used.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}; exported: {exported:?}"
    );
}

#[test]
fn every_dashboard_expression_is_valid_promql() {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs().iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool is installed (.ci/install-deps)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docs/metrics.md is the reference: every family a running proxy
/// exports is in its table, and every metric the table names is defined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_metrics_lists_every_exported_metric_and_only_defined_ones() {
    let doc = std::fs::read_to_string(repo("docs/metrics.md")).unwrap();
    let documented = metric_names(&doc);
    let exported = exported_families().await;
    let missing: Vec<_> = exported.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "exported but not in docs/metrics.md: {missing:?}"
    );
    let code = std::fs::read_to_string(repo("src/metrics.rs")).unwrap();
    let unknown: Vec<_> = documented
        .iter()
        .filter(|m| !code.contains(&format!("\"{m}\"")))
        .collect();
    assert!(
        unknown.is_empty(),
        "documented but not defined: {unknown:?}"
    );
}
