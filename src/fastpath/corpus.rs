//! The request-smuggling corpus: each case a name and the bytes a client
//! sends, with what the head guard must do. One list for the parser's
//! unit and differential tests, the integration test through the real
//! binary, and the fuzz target's seeds.

/// What the guard must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Forwarded as today.
    Forward,
    /// Refused with `400 bad_request`, nothing forwarded.
    Refuse,
}

/// (name, bytes, expectation). Every request names `/ic/` so it would
/// match a route if it were forwarded.
pub const CASES: &[(&str, &[u8], Expect)] = &[
    ("plain GET", b"GET /ic/a HTTP/1.1\r\nHost: x\r\n\r\n", Expect::Forward),
    ("HTTP/1.0 GET", b"GET /ic/a HTTP/1.0\r\nHost: x\r\n\r\n", Expect::Forward),
    ("POST with a length", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", Expect::Forward),
    ("POST chunked", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Expect::Forward),
    ("chunk extension", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", Expect::Forward),
    ("trailer", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n", Expect::Forward),
    ("CL.TE", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", Expect::Refuse),
    ("TE.CL", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", Expect::Refuse),
    ("TE.TE xchunked", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("TE.TE chunked, identity", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("TE.TE duplicate headers", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("TE.TE space before colon", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("TE.TE tab before colon", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("TE on HTTP/1.0", b"POST /ic/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("conflicting lengths", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", Expect::Refuse),
    ("duplicate equal lengths", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", Expect::Refuse),
    ("length list", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", Expect::Refuse),
    ("signed length", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", Expect::Refuse),
    ("overflowing length", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", Expect::Refuse),
    ("negative chunk size", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", Expect::Refuse),
    ("0x chunk size", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", Expect::Refuse),
    ("overflowing chunk size", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", Expect::Refuse),
    ("chunk longer than its size", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", Expect::Refuse),
    ("bare LF in a chunk line", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", Expect::Refuse),
    ("framing trailer", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", Expect::Refuse),
    ("CL.TE pipelined behind a plain GET", b"GET /ic/a HTTP/1.1\r\nHost: x\r\n\r\nPOST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", Expect::Refuse),
    ("bare LF in the head", b"GET /ic/a HTTP/1.1\nHost: x\r\n\r\n", Expect::Refuse),
    ("bare LF head end", b"GET /ic/a HTTP/1.1\r\nHost: x\n\n", Expect::Refuse),
    ("obs-fold", b"GET /ic/a HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", Expect::Refuse),
    ("obs-fold of Transfer-Encoding", b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", Expect::Refuse),
    ("NUL in a header", b"GET /ic/a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", Expect::Refuse),
    ("NUL in the target", b"GET /ic/a\0 HTTP/1.1\r\nHost: x\r\n\r\n", Expect::Refuse),
    ("two Hosts", b"GET /ic/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", Expect::Refuse),
    ("absolute target of another host", b"GET http://other/ic/a HTTP/1.1\r\nHost: x\r\n\r\n", Expect::Refuse),
    ("HTTP/1.2", b"GET /ic/a HTTP/1.2\r\nHost: x\r\n\r\n", Expect::Refuse),
    ("garbage request line", b"GET/ic/a HTTP/1.1\r\nHost: x\r\n\r\n", Expect::Refuse),
];
