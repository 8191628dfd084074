//! The guard's verdicts against pingora's own reader on the same bytes:
//! every case the guard forwards, pingora reads as the same request and
//! body; every case the guard refuses is named with what pingora would
//! have done with it (read it, and so forwarded something, or refused it
//! too).

use std::time::Duration;

use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::corpus::{Expect, CASES};
use super::guard;

/// What pingora's reader made of the bytes.
#[derive(Debug, PartialEq, Eq)]
enum Pingora {
    /// A request and the body pingora would forward.
    Read {
        path: String,
        body: Vec<u8>,
    },
    Refused,
}

async fn pingora_reads(bytes: &'static [u8]) -> Pingora {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(bytes).await.unwrap();
        c.shutdown().await.unwrap();
        // Keep the socket until the server is done with it.
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
    let mut session = ServerSession::new_http1(stream);
    let read = tokio::time::timeout(Duration::from_secs(1), session.read_request()).await;
    let outcome = match read {
        Ok(Ok(true)) => {
            let path = session.req_header().uri.path().to_string();
            let mut body = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(1), session.read_request_body())
                    .await
                {
                    Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                    Ok(Ok(None)) => break Pingora::Read { path, body },
                    // A body pingora cannot finish reading is one it has
                    // begun to forward.
                    Ok(Err(_)) | Err(_) => break Pingora::Read { path, body },
                }
            }
        }
        _ => Pingora::Refused,
    };
    client.abort();
    outcome
}

#[tokio::test]
async fn the_guard_forwards_what_pingora_reads_alike_and_names_what_it_refuses() {
    let mut stricter = Vec::new();
    for (name, bytes, expect) in CASES {
        let ours = guard::judge(bytes);
        let theirs = pingora_reads(bytes).await;
        match expect {
            Expect::Forward => {
                assert!(ours.is_none(), "{name}: {ours:?}");
                let Pingora::Read { path, body } = &theirs else {
                    panic!("{name}: pingora refuses what the guard forwards");
                };
                assert_eq!(path, "/ic/a", "{name}");
                let expected: &[u8] = if bytes.starts_with(b"POST") {
                    b"hello"
                } else {
                    b""
                };
                assert_eq!(body, expected, "{name}");
            }
            Expect::Refuse => {
                assert!(ours.is_some(), "{name}");
                if theirs != Pingora::Refused {
                    stricter.push(*name);
                }
            }
        }
    }
    // The cases pingora alone would have read, and so forwarded: the
    // guard refuses each of them.
    assert_eq!(
        stricter, EXPECTED_STRICTER,
        "pingora alone would have forwarded these"
    );
}

/// Read by pingora 0.9.1's reader. CL.TE and TE.CL the proxy's hooks
/// refused too, but only after pingora had read the head (now the guard
/// answers first); duplicate equal lengths and a length list went on to
/// pingora's own reading of the length; the chunk faults pingora meets
/// only while streaming the body upstream, after the head has gone out;
/// bare LF and a NUL in the target it accepts; of a pipelined pair it
/// reads the plain first request.
const EXPECTED_STRICTER: &[&str] = &[
    "CL.TE",
    "TE.CL",
    "duplicate equal lengths",
    "length list",
    "negative chunk size",
    "0x chunk size",
    "overflowing chunk size",
    "chunk longer than its size",
    "bare LF in a chunk line",
    "framing trailer",
    "CL.TE pipelined behind a plain GET",
    "bare LF in the head",
    "bare LF head end",
    "NUL in the target",
];
