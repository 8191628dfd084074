//! One corpus through both transports (`server.fast_path: true` and
//! `false`): every request shape of the keep-alive tests, pipelined
//! requests, answers of every framing (length, chunks, until close, both
//! length and chunks, a 1xx first, HEAD with a length, 204 with a body,
//! an upstream closing without an answer), and the request-smuggling
//! corpus. The upstream and the client must receive the same bytes from
//! both, apart from what differs by nature: `X-Request-Id` (and the
//! request id in a JSON refusal), `Date`, and the token (each process
//! fetched its own; both are `Bearer` tokens of the same client). Where
//! they differ, the case is named in `DIFFERENT` with the reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_proxy::fastpath::chunk;
use bearer_proxy::fastpath::corpus::CASES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// Cases whose bytes differ between the transports, and why.
const DIFFERENT: &[(&str, &str)] = &[
    (
        "keep-alive then close",
        "two requests in one write: pingora's path answers the first with \
         `Connection: keep-alive` and then closes (it does not serve pipelined \
         requests); the fast path does not serve them either, and says `close`",
    ),
    (
        "pipelined POST then GET",
        "the same, with the second request behind a body",
    ),
];

/// An upstream that records each request's bytes as they arrived and
/// answers by the request's path with fixed bytes.
#[derive(Clone, Default)]
struct RawUpstream {
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The answer for a path, and whether the connection closes after it.
fn answer_for(path: &str) -> (&'static [u8], bool) {
    match path {
        "/ic/chunked" => (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false),
        "/ic/close" => (b"HTTP/1.1 200 OK\r\nX-Up: 1\r\n\r\nthe body runs until close", true),
        "/ic/both" => (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true),
        "/ic/1xx" => (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        "/ic/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nX-Up: 1\r\n\r\n", false),
        "/ic/204" => (b"HTTP/1.1 204 No Content\r\nX-Up: 1\r\n\r\nstray body", true),
        "/ic/early" => (b"", true),
        "/ic/reason" => (b"HTTP/1.1 299 Quite Fine\r\nContent-Length: 0\r\nX-Mixed-Case: 1\r\n\r\n", false),
        _ => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello", false),
    }
}

/// The length of the request at the start of `buf`, once it is all there.
fn request_len(buf: &[u8]) -> Option<(usize, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let path = req.path.unwrap_or("").to_string();
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_string())
    };
    let body = if header("transfer-encoding").is_some() {
        match chunk::check(&buf[head..]) {
            Ok(chunk::Progress::Complete(n)) => n,
            _ => return None,
        }
    } else {
        header("content-length").map_or(0, |v| v.trim().parse().unwrap())
    };
    (buf.len() >= head + body).then_some((head + body, path))
}

impl RawUpstream {
    async fn start() -> (RawUpstream, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = RawUpstream::default();
        let serving = upstream.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(conn));
            }
        });
        (upstream, url)
    }

    async fn serve(self, mut conn: TcpStream) {
        let mut buf = Vec::new();
        let mut read = [0u8; 8192];
        loop {
            while let Some((len, path)) = request_len(&buf) {
                self.seen.lock().unwrap().push(buf.drain(..len).collect());
                let (answer, close) = answer_for(&path);
                if conn.write_all(answer).await.is_err() || close {
                    return;
                }
            }
            match conn.read(&mut read).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&read[..n]),
            }
        }
    }

    fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Sends `bytes` on a new connection and reads until the proxy closes.
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "no close within 10 s: {:?}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// `bytes` with what differs by nature blanked: the values of the named
/// headers (case-insensitive) and a JSON `request_id`.
fn normalized(bytes: &[u8], headers: &[&str]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if headers.contains(&name.as_str()) {
            out.push_str(&name);
            out.push_str(": ~\r\n");
        } else {
            out.push_str(line);
        }
    }
    match out.find("\"request_id\":\"") {
        Some(at) => {
            let start = at + "\"request_id\":\"".len();
            let end = start + out[start..].find('"').unwrap_or(0);
            out.replace_range(start..end, "~");
            out
        }
        None => out,
    }
}

/// The corpus: (name, bytes). Each ends its connection: its last request
/// says `Connection: close`, or is HTTP/1.0, or is refused.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let close = "Connection: close\r\n";
    let mut add = |name: &str, bytes: String| cases.push((name.to_string(), bytes.into_bytes()));
    for path in [
        "/ic/a",
        "/ic/chunked",
        "/ic/close",
        "/ic/both",
        "/ic/1xx",
        "/ic/204",
        "/ic/reason",
    ] {
        add(
            &format!("GET {path}"),
            format!("GET {path} HTTP/1.1\r\nHost: p\r\nAccept: */*\r\n{close}\r\n"),
        );
    }
    add(
        "HEAD with a length",
        format!("HEAD /ic/head HTTP/1.1\r\nHost: p\r\n{close}\r\n"),
    );
    add(
        "HTTP/1.0 GET",
        "GET /ic/a HTTP/1.0\r\nHost: p\r\n\r\n".into(),
    );
    add(
        "HTTP/1.0 GET, close-delimited answer",
        "GET /ic/close HTTP/1.0\r\n\r\n".into(),
    );
    add(
        "POST with a length",
        format!(
            "POST /ic/upload HTTP/1.1\r\nHost: p\r\nContent-Length: 11\r\n{close}\r\nhello world"
        ),
    );
    add(
        "POST of 300 KiB",
        format!(
            "POST /ic/upload HTTP/1.1\r\nHost: p\r\nContent-Length: {}\r\n{close}\r\n{}",
            300 * 1024,
            "z".repeat(300 * 1024)
        ),
    );
    add("POST chunked", format!("POST /ic/chunked HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n{close}\r\nc\r\nfirst chunk;\r\n4\r\nlast\r\n0\r\n\r\n"));
    add(
        "empty POST",
        format!("POST /ic/a HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n{close}\r\n"),
    );
    add(
        "large head",
        format!(
            "GET /ic/a HTTP/1.1\r\nHost: p\r\nX-Pad: {}\r\n{close}\r\n",
            "p".repeat(6000)
        ),
    );
    add("query, mixed-case names, hop-by-hop", "GET /ic/a?x=1&y=%20 HTTP/1.1\r\nHOST: p\r\nX-Mixed-Case: v\r\nConnection: x-drop, close\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n".to_string());
    add("keep-alive then close", format!("GET /ic/a HTTP/1.1\r\nHost: p\r\n\r\nGET /ic/chunked HTTP/1.1\r\nHost: p\r\n{close}\r\n"));
    add("pipelined POST then GET", format!("POST /ic/a HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\nabcGET /ic/a HTTP/1.1\r\nHost: p\r\n{close}\r\n"));
    add("Expect: 100-continue", format!("POST /ic/a HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\nExpect: 100-continue\r\n{close}\r\nabc"));
    // Not a GET: a GET on a reused connection that the upstream closes
    // unanswered is sent once more on a new one by either transport, and
    // whether a connection is reused depends on the pools' timing.
    add(
        "upstream closes without an answer",
        format!("POST /ic/early HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n{close}\r\nhi"),
    );
    add(
        "TRACE",
        format!("TRACE /ic/a HTTP/1.1\r\nHost: p\r\n{close}\r\n"),
    );
    add(
        "no route",
        format!("GET /elsewhere HTTP/1.1\r\nHost: p\r\n{close}\r\n"),
    );
    add(
        "a path that climbs",
        format!("GET /ic/../admin HTTP/1.1\r\nHost: p\r\n{close}\r\n"),
    );
    add(
        "oversized head",
        format!(
            "GET /ic/a HTTP/1.1\r\nHost: p\r\nX-Pad: {}\r\n{close}\r\n",
            "p".repeat(70 * 1024)
        ),
    );
    for (name, bytes, _) in CASES {
        let text = String::from_utf8_lossy(bytes);
        // Connection: close on the last request's first line.
        let at = text
            .rfind(" HTTP/1.")
            .and_then(|i| text[i..].find("\r\n").map(|j| i + j + 2));
        let bytes = match at {
            Some(at) if text.is_char_boundary(at) => {
                format!("{}{close}{}", &text[..at], &text[at..])
            }
            _ => text.to_string(),
        };
        add(&format!("smuggling: {name}"), bytes);
    }
    cases
}

/// What the client and the upstream received for one case.
async fn run(port: u16, upstream: &RawUpstream, bytes: &[u8]) -> (String, Vec<String>) {
    upstream.take();
    let client = normalized(&exchange(port, bytes).await, &["x-request-id", "date"]);
    // The upstream has everything the proxy sent once the client has its
    // answer (the proxy answers only after sending).
    let seen = upstream
        .take()
        .iter()
        .map(|r| normalized(r, &["x-request-id", "traceparent", "authorization"]))
        .collect();
    (client, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_transports_send_the_same_bytes_both_ways_or_the_difference_is_named() {
    let idp = Idp::start().await;
    let upstream_for_token = Upstream::start().await;
    let (upstream, url) = RawUpstream::start().await;
    let start = |fast: bool| {
        let mut config = ProxyConfig::new(&idp, &upstream_for_token);
        config.raw.routes[0] = RawRoute::open("main", "/ic/", &url, "oic");
        config.server().fast_path = Some(fast);
        // One worker thread: the fast path's per-thread pool then holds
        // what pingora's global pool holds between cases.
        config.server().threads = Some(1);
        config
    };
    let (fast, pingora) = (start(true), start(false));
    let fast = Proxy::start(&fast).await;
    let pingora = Proxy::start(&pingora).await;
    let mut differ = Vec::new();
    for (name, bytes) in corpus() {
        let on_fast = run(fast.port, &upstream, &bytes).await;
        let on_pingora = run(pingora.port, &upstream, &bytes).await;
        if on_fast != on_pingora {
            eprintln!("== {name}\n-- fast: {on_fast:#?}\n-- pingora: {on_pingora:#?}");
            differ.push(name);
        }
    }
    let named: Vec<&str> = DIFFERENT.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        differ, named,
        "cases whose bytes differ between the transports"
    );
}
