//! Fault soak (not part of `cargo test`): steady load through the real proxy
//! while the identity-service emulator flaps between ok, down, slow and 429
//! and the upstream revokes tokens. Bounded in time, loopback only.
//!
//!   SOAK_SECONDS=180 cargo test --test soak -- --nocapture
//!
//! Prints a report and fails if a request failed while a valid token
//! existed, if token requests ever exceeded the rate ceiling, or if
//! resident memory grew beyond noise.

#[path = "../integration/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bearer_proxy::emulator::Mode;
use support::*;

const CEILING: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_under_identity_service_faults_and_token_revocation() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let idp = Idp::start().await;
    idp.state.set_token_lifetime(Duration::from_secs(40));
    let upstream = Arc::new(Upstream::start().await);
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().token_requests_per_second = Some(CEILING as f64);
    // The soak measures the per-second ceiling; the per-minute one stays out of its way.
    config.server().token_requests_per_minute = Some(CEILING as u32 * 60);
    let client = config.client();
    client.refresh_before = Some(Duration::from_secs(10));
    client.request_timeout = Some(Duration::from_secs(2));
    client.retry = RawRetry {
        initial: ms(200),
        max: Some(Duration::from_secs(2)),
    };
    let proxy = Proxy::start_with_args(&config, &["--log-level", "warn"]).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    let rss_start = rss(&proxy);

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // Flapper: a fixed cycle of identity-service states, and a revocation
    // of the upstream's current token every 15 s.
    let flapper = {
        let state = idp.state.clone();
        let upstream = upstream.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let cycle = [
                (Mode::Ok, 6),
                (Mode::Down, 4),
                (Mode::Ok, 4),
                (Mode::Slow(Duration::from_secs(3)), 4),
                (Mode::Ok, 4),
                (Mode::RateLimited, 4),
                (Mode::Ok, 4),
                (Mode::ServerError, 4),
            ];
            let mut since_revoke = 0;
            let mut transitions = 0u64;
            'outer: loop {
                for (mode, secs) in cycle {
                    state.set_mode(mode);
                    transitions += 1;
                    for _ in 0..secs {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        since_revoke += 1;
                        if since_revoke >= 15 {
                            since_revoke = 0;
                            if let Some(r) = upstream.state.last() {
                                if let Some(a) = r.header("authorization") {
                                    upstream.state.revoke(a);
                                }
                            }
                        }
                        if stop.load(Ordering::SeqCst) {
                            break 'outer;
                        }
                    }
                }
            }
            state.set_mode(Mode::Ok);
            transitions
        })
    };
    let outcomes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let client = client();
            let url = proxy.url(&format!("/ic/api/soak/{w}"));
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let label = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => "200".to_string(),
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let code = r
                                .json::<serde_json::Value>()
                                .await
                                .ok()
                                .and_then(|b| b["error"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| "upstream".into());
                            format!("{status} {code}")
                        }
                        Err(e) => format!("transport error: {e}"),
                    };
                    *outcomes.lock().unwrap().entry(label).or_default() += 1;
                }
            })
        })
        .collect();
    let mut rss_peak = rss_start;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(rss(&proxy));
    }
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let transitions = flapper.await.unwrap();
    let rss_end = rss(&proxy);

    let outcomes = outcomes.lock().unwrap().clone();
    let total: u64 = outcomes.values().sum();
    let mut times = idp.state.arrivals();
    times.sort();
    let max_per_second = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!("\n=== soak report ===");
    println!("duration: {seconds} s, 16 concurrent clients, identity-service state changes: {transitions}");
    println!("requests: {total} ({:.0}/s)", total as f64 / seconds as f64);
    for (label, n) in &outcomes {
        println!("  {label}: {n}");
    }
    println!(
        "identity-service requests: {} (max {max_per_second} in any second; ceiling {CEILING})",
        times.len()
    );
    println!(
        "upstream 401 replays: {}",
        proxy
            .metric("bearer_proxy_upstream_unauthorized_retries_total{route=\"main\"}")
            .await
    );
    println!(
        "resident memory: start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB",
        mib(rss_start),
        mib(rss_peak),
        mib(rss_end)
    );

    let failed_with_token: u64 = outcomes
        .iter()
        .filter(|(label, _)| *label != "200" && !label.ends_with("token_unavailable"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        failed_with_token, 0,
        "requests failed while a valid token existed: {outcomes:?}"
    );
    assert!(
        max_per_second <= CEILING,
        "{max_per_second} token requests in one second"
    );
    assert!(
        rss_end < rss_start + rss_start / 2 + 8 * 1024 * 1024,
        "memory grew: {rss_start} -> {rss_end}"
    );
}

fn rss(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
