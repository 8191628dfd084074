//! A load generator at a fixed request rate, for the latency a user with
//! ordinary traffic feels (`benches/load/compare.sh`, fixed-rate table).
//! `wrk` sends as fast as answers come back, so it measures saturation;
//! this one keeps a schedule: `--rate` requests per second spread over
//! `--connections` keep-alive connections, one request in flight on each.
//!
//! A request whose connection is still busy at its scheduled time is sent
//! late, and its latency counts from the schedule (no coordinated
//! omission: a stall shows up in every request it delays). A request sent
//! on time counts from its send, so tokio's 1 ms timer does not add to it.
//!
//!   paced_load --url http://127.0.0.1:18403/ic/api/x --rate 5000 \
//!              --duration 10 --connections 50 --header "X-API-Key: k" \
//!              [--ca ca.pem]   (https: the CA; the name is the URL's host)
//!
//! The first `--warmup` seconds (default 1) run the same schedule and are
//! not counted: the proxy's upstream connections are opened then, not in
//! the measured window.
//!
//! Prints one line: `sent ok errors rate p50_us p99_us p999_us max_us`.
//! `--times FILE` also writes every counted request as `start_us latency_us`
//! (its start from the measured window's beginning): whether the slow ones
//! come together (a stall of the process or the machine) or alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "bench_client.rs"]
mod bench_client;
use bench_client::{arg, connector, Stream};

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
    })
}

/// Where to send and how: parsed once from the command line.
struct Target {
    addr: String,
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
    request: Vec<u8>,
}

impl Target {
    fn from_args() -> Target {
        let url = url::Url::parse(&arg("--url").expect("--url")).expect("--url: a URL");
        let host = url.host_str().expect("--url: a host").to_owned();
        let port = url.port_or_known_default().expect("--url: a port");
        let header = arg("--header").map_or(String::new(), |h| format!("{h}\r\n"));
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\n{header}\r\n",
            &url[url::Position::BeforePath..]
        );
        let tls = (url.scheme() == "https").then(|| connector(&arg("--ca").expect("--ca")));
        Target {
            addr: format!("{host}:{port}"),
            host,
            tls,
            request: request.into_bytes(),
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        bench_client::wrap(tcp, self.tls.as_ref(), &self.host).await
    }
}

async fn exchange(
    stream: &mut dyn Stream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    stream.write_all(request).await?;
    stream.flush().await?;
    answer(stream, buf).await
}

/// Reads one answer; true when it was a 2xx. Handles Content-Length and
/// chunked bodies (what the proxies under test send).
async fn answer(stream: &mut dyn Stream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 2");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => {
            while buf.len() < head_end + n {
                fill(stream, buf).await?;
            }
        }
        None if head.contains("transfer-encoding: chunked") => {
            while !buf[head_end..].ends_with(b"0\r\n\r\n") {
                fill(stream, buf).await?;
            }
        }
        None => {}
    }
    Ok(ok)
}

async fn fill(stream: &mut dyn Stream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::Error::other("closed mid-answer"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// What one connection saw: latencies in microseconds with their start
/// (microseconds into the measured window), and failures.
#[derive(Default)]
struct Seen {
    micros: Vec<u32>,
    starts: Vec<u64>,
    errors: u64,
}

/// When a connection sends: every `interval` from `first` until `end`;
/// answers to requests due before `counted` are not recorded.
#[derive(Clone, Copy)]
struct Schedule {
    first: Instant,
    interval: Duration,
    counted: Instant,
    end: Instant,
}

/// One connection's share of the schedule. A broken connection is
/// replaced and counted as an error.
async fn connection(target: Arc<Target>, plan: Schedule) -> Seen {
    let mut seen = Seen::default();
    let mut stream = target.connect().await.ok();
    let mut buf = Vec::with_capacity(8192);
    let mut due = plan.first;
    let mut done = Instant::now();
    while due < plan.end {
        // Late because the previous answer was late: count from the schedule.
        let from = if done > due {
            due
        } else {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        };
        let outcome = match stream.as_mut() {
            Some(s) => exchange(s.as_mut(), &target.request, &mut buf).await,
            None => Err(std::io::Error::other("not connected")),
        };
        done = Instant::now();
        let ok = matches!(outcome, Ok(true));
        if outcome.is_err() {
            stream = target.connect().await.ok();
        }
        if due >= plan.counted {
            if ok {
                let micros = done.duration_since(from).as_micros();
                seen.micros.push(micros.min(u128::from(u32::MAX)) as u32);
                seen.starts
                    .push(from.saturating_duration_since(plan.counted).as_micros() as u64);
            } else {
                seen.errors += 1;
            }
        }
        due += plan.interval;
    }
    seen
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let target = Arc::new(Target::from_args());
    let rate: f64 = number("--rate", 5000.0);
    let seconds: f64 = number("--duration", 10.0);
    let warmup: f64 = number("--warmup", 1.0);
    let conns: u32 = number("--connections", 50);
    let interval = Duration::from_secs_f64(f64::from(conns) / rate);
    let start = Instant::now() + Duration::from_millis(200);
    let counted = start + Duration::from_secs_f64(warmup);
    let end = counted + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let plan = Schedule {
                first: start + interval.mul_f64(f64::from(i) / f64::from(conns)),
                interval,
                counted,
                end,
            };
            tokio::spawn(connection(target.clone(), plan))
        })
        .collect();
    let mut all = Vec::new();
    let mut timed = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let seen = task.await.expect("connection task");
        timed.extend(seen.starts.iter().copied().zip(seen.micros.iter().copied()));
        all.extend(seen.micros);
        errors += seen.errors;
    }
    if let Some(path) = arg("--times") {
        timed.sort_unstable();
        let lines: String = timed
            .iter()
            .map(|(at, us)| format!("{at} {us}\n"))
            .collect();
        std::fs::write(&path, lines).unwrap_or_else(|e| panic!("--times {path}: {e}"));
    }
    all.sort_unstable();
    let ok = all.len() as u64;
    println!(
        "sent {} ok {ok} errors {errors} rate {:.0} p50_us {} p99_us {} p999_us {} max_us {}",
        ok + errors,
        (ok + errors) as f64 / seconds,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(0)
    );
}
