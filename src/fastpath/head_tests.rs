use super::*;

#[test]
fn plain_heads_and_their_framing() {
    let get = b"GET /ic/a HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
    assert_eq!(
        judge(get),
        Verdict::Plain {
            len: 31,
            framing: Framing::None
        }
    );
    let post = b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length:  12 \r\n\r\n";
    assert!(matches!(
        judge(post),
        Verdict::Plain {
            framing: Framing::Length(12),
            ..
        }
    ));
    let chunked = b"POST /ic/a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: CHUNKED\r\n\r\n";
    assert!(matches!(
        judge(chunked),
        Verdict::Plain {
            framing: Framing::Chunked,
            ..
        }
    ));
}

#[test]
fn pingora_keeps_what_it_handles_itself() {
    assert_eq!(judge(b"GET /ic/a HTTP/1.1\r\nHost: x"), Verdict::Incomplete);
    assert_eq!(judge(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Verdict::Pass);
    let upgrade =
        b"GET /ic/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    assert_eq!(judge(upgrade), Verdict::Pass);
    let expect =
        b"PUT /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    assert_eq!(judge(expect), Verdict::Pass);
    let mut many = b"GET /ic/a HTTP/1.1\r\n".to_vec();
    for i in 0..300 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(judge(&many), Verdict::Refuse(Refused::TooManyHeaders));
}

#[test]
fn faults_show_before_the_head_is_complete() {
    assert_eq!(
        judge(b"GET /ic/a HTTP/1.1\nHost"),
        Verdict::Refuse(Refused::BareLf)
    );
    assert_eq!(judge(b"GET /ic/\0"), Verdict::Refuse(Refused::Nul));
}

#[test]
fn an_expect_head_with_ambiguous_framing_is_still_refused() {
    let head = b"PUT /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
    assert_eq!(judge(head), Verdict::Refuse(Refused::LengthAndChunked));
}

#[test]
fn lengths_are_plain_decimals() {
    assert_eq!(decimal(b"0"), Some(0));
    assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
    for bad in [
        &b""[..],
        b"18446744073709551616",
        b"+1",
        b"-1",
        b"1 2",
        b"0x1",
        b"1,1",
    ] {
        assert_eq!(decimal(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn an_absolute_target_must_name_the_host() {
    let same = b"GET http://x/ic/a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(matches!(judge(same), Verdict::Plain { .. }));
    let other = b"GET http://other/ic/a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(judge(other), Verdict::Refuse(Refused::AuthorityNotHost));
}

#[test]
fn incomplete_agrees_with_judge_on_every_prefix_of_the_corpus() {
    for (name, bytes, _) in crate::fastpath::corpus::CASES {
        for end in 0..=bytes.len() {
            let prefix = &bytes[..end];
            assert_eq!(
                incomplete(prefix),
                judge(prefix) == Verdict::Incomplete,
                "{name}, first {end} bytes"
            );
        }
    }
}
