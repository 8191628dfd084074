use crate::support::*;

const TWENTY_MB: usize = 20 * 1024 * 1024;

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mb_bodies_stream_through_intact_both_ways_without_buffering() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let client = client();
    // Warm up connections and allocator before taking the baseline.
    client.get(proxy.url("/warm")).send().await.unwrap();
    let baseline = proxy.peak_rss();

    let body: Vec<u8> = (0..TWENTY_MB).map(|i| (i % 251) as u8).collect();
    let expected = bearer_proxy::emulator::echo::sha256_hex(&body);
    let r = client
        .post(proxy.url("/ic/api/upload"))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload: {e:?}\n{}", proxy.output()));
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["body_bytes"], TWENTY_MB as u64);
    assert_eq!(echo["body_sha256"], expected);

    let r = client
        .get(proxy.url(&format!("/__bytes/{TWENTY_MB}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("download: {e:?}\n{}", proxy.output()));
    assert_eq!(r.status(), 200);
    let downloaded = r.bytes().await.unwrap();
    assert_eq!(downloaded.len(), TWENTY_MB);
    assert!(downloaded.iter().all(|b| *b == b'x'));

    let growth = proxy.peak_rss().saturating_sub(baseline);
    assert!(
        growth < 12 * 1024 * 1024,
        "peak RSS grew by {} MiB for 20 MiB bodies: they were buffered",
        growth / (1024 * 1024)
    );
}
}
