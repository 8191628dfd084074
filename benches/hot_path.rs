//! Hot-path micro-benchmarks: route lookup by table size, token cache hit,
//! upstream header rewrite, access check per method. Run:
//! `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bearer_proxy::config::raw::{RawClient, RawConfig, RawRoute};
use bearer_proxy::config::{self, HostPattern};
use bearer_proxy::RouteTable;
use bearer_proxy::TokenCache;
use bearer_proxy::{rewrite_upstream_headers, UpstreamHeaders};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::HeaderValue;
use pingora::http::RequestHeader;

/// `n` routes spread over exact hosts, wildcards and host-less prefixes,
/// like a large multi-instance deployment.
fn patterns(n: usize) -> Vec<(Option<HostPattern>, String)> {
    (0..n)
        .map(|i| match i % 3 {
            0 => (
                Some(HostPattern::Exact(format!("oic{i}.example.com"))),
                format!("/ic/api/{i}/"),
            ),
            1 => (
                Some(HostPattern::Suffix(format!(".tenant{i}.example.com"))),
                "/".to_string(),
            ),
            _ => (None, format!("/ic/api/integration/v1/flows/rest/FLOW{i}/")),
        })
        .collect()
}

fn route_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [1usize, 100, 10_000] {
        let p = patterns(n);
        let table = RouteTable::build(p.iter().map(|(h, s)| (h.as_ref(), s.as_str()))).unwrap();
        // A request that matches the last host-less route (or the only one).
        let (host, path) = match n {
            1 => (
                "oic0.example.com",
                "/ic/api/0/integration/v1/flows".to_string(),
            ),
            _ => {
                let last = (n - 1) / 3 * 3 + 2;
                let last = if last >= n { last - 3 } else { last };
                (
                    "unknown.example.org",
                    format!("/ic/api/integration/v1/flows/rest/FLOW{last}/1.0/run"),
                )
            }
        };
        assert!(table.find(Some(host), &path).is_some());
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| table.find(black_box(Some(host)), black_box(&path)))
        });
    }
    group.finish();
}

fn cache_hit(c: &mut Criterion) {
    bearer_proxy::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (slot, _idp) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (idp, server) = bearer_proxy::emulator::start_idp(listener);
        idp.register_client("bench", "bench-secret");
        let yaml = RawConfig::default()
            .with_client(
                "c",
                RawClient::with_secret(
                    &format!("http://{}/oauth2/v1/token", server.addr),
                    "bench",
                    "bench-secret",
                    "https://oic.bench:443urn:opc:resource:consumer::all",
                ),
            )
            .with_route(RawRoute::open("r", "/", "http://127.0.0.1:1", "c"))
            .to_yaml();
        let config = config::load_str(&yaml, Path::new("."), &|_| None).unwrap();
        let cache = TokenCache::new(&config).unwrap();
        assert!(cache.warm_up(Duration::from_secs(10)).await);
        let slot = cache.slots().next().unwrap().clone();
        (slot, server)
    });
    c.bench_function("token_cache_hit", |b| {
        b.iter(|| black_box(slot.cached_authorization().unwrap()))
    });
}

fn header_rewrite(c: &mut Criterion) {
    let host = HeaderValue::from_static("oic.example.com");
    let mut auth = HeaderValue::try_from(format!("Bearer {}", "e".repeat(900))).unwrap();
    auth.set_sensitive(true);
    let request_id = HeaderValue::from_static("0b0f1c2e-4d5a-4b6c-8d7e-9f0a1b2c3d4e");
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    let mut template =
        RequestHeader::build("POST", b"/ic/api/integration/v1/flows/rest/X/1.0/run", None).unwrap();
    template.insert_header("host", "oic.internal:8080").unwrap();
    template
        .insert_header("authorization", "Basic dXNlcjpwYXNz")
        .unwrap();
    template
        .insert_header("content-type", "application/json")
        .unwrap();
    template
        .insert_header("user-agent", "legacy-erp/1.0")
        .unwrap();
    c.bench_function("upstream_header_rewrite", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |req| {
                rewrite_upstream_headers(
                    req,
                    &UpstreamHeaders {
                        host: &host,
                        authorization: Some(&auth),
                        original_host: Some(HeaderValue::from_static("oic.internal:8080")),
                        client_ip: Some(ip),
                        request_id: &request_id,
                        downstream_tls: false,
                        strip: None,
                    },
                )
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// One accepted request per access method. The check is async (a bcrypt
/// miss runs off the worker), so each iteration includes polling it on a
/// current-thread runtime; a Basic-auth user is verified once beforehand,
/// so the figure is the cached path every later request takes.
fn access_check(c: &mut Criterion) {
    use bearer_proxy::{api_key_line, AccessPolicy, ApiKeys, BasicUsers, Caller, Decision};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("k-0123456789abcdef"));
    // "alice:secret-password"
    headers.insert(
        "authorization",
        HeaderValue::from_static("Basic YWxpY2U6c2VjcmV0LXBhc3N3b3Jk"),
    );
    let keys: String = (0..10)
        .map(|i| api_key_line(&format!("key{i}"), &format!("k-{i}123456789abcdef")))
        .collect::<Vec<_>>()
        .join("\n");
    let hash = bcrypt::hash("secret-password", 10).unwrap();
    let policies: Vec<(&str, AccessPolicy)> = vec![
        (
            "api_key_of_10",
            AccessPolicy {
                api_keys: Some(
                    ApiKeys::parse(&keys, http::HeaderName::from_static("x-api-key")).unwrap(),
                ),
                ..AccessPolicy::default()
            },
        ),
        (
            "basic_cached",
            AccessPolicy {
                basic_users: Some(BasicUsers::parse(&format!("alice:{hash}")).unwrap()),
                ..AccessPolicy::default()
            },
        ),
        (
            "cidr_only",
            AccessPolicy {
                allow_cidrs: vec![
                    "10.0.0.0/8".parse().unwrap(),
                    "127.0.0.0/8".parse().unwrap(),
                ],
                ..AccessPolicy::default()
            },
        ),
        (
            "client_cert_subject",
            AccessPolicy {
                client_cert_subjects: vec!["CN=legacy-erp".into()],
                ..AccessPolicy::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("access_check");
    for (name, policy) in &policies {
        let caller = Caller {
            headers: &headers,
            address: Some("127.0.0.1".parse().unwrap()),
            cert_subject: Some("CN=legacy-erp,O=Example"),
        };
        let allowed = rt.block_on(policy.check(&caller));
        assert!(matches!(allowed, Decision::Allow { .. }), "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(rt.block_on(policy.check(black_box(&caller)))))
        });
    }
    group.finish();
}

/// The smuggling guard on the heads a legacy client sends: what our own
/// reading of every request's first bytes costs before pingora's.
fn smuggling_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("smuggling_guard");
    let get = b"GET /ic/api/integration/v1/flows/rest/HELLO/1.0/ping HTTP/1.1\r\nHost: oic.example.com\r\nUser-Agent: legacy-client/1.0\r\nAccept: application/json\r\nX-API-Key: bench-key\r\n\r\n";
    let post = b"POST /ic/api/integration/v1/flows/rest/ORDERS/1.0/order HTTP/1.1\r\nHost: oic.example.com\r\nUser-Agent: legacy-client/1.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-API-Key: bench-key\r\n\r\n1a\r\n{\"order\":1,\"item\":\"abc-123\"}\r\n0\r\n\r\n";
    for (name, head) in [("get", &get[..]), ("chunked_post", &post[..])] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(bearer_proxy::fastpath::guard::judge(black_box(head)).is_some()))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    route_lookup,
    cache_hit,
    header_rewrite,
    access_check,
    smuggling_guard
);
criterion_main!(benches);
