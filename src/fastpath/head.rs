//! A request head as it arrived, judged before any of it is forwarded:
//! framing that one reader could take for another's (the raw material of
//! request smuggling: CL.TE, TE.CL, TE.TE, duplicate lengths, obs-fold,
//! bare LF, NUL) is refused here, from the bytes themselves, rather than
//! from what a lenient parser made of them. RFC 9112 §6 allows a server
//! to refuse each of these; we refuse them all, and more strictly than
//! the RFC where the RFC merely tolerates (identical duplicate
//! `Content-Length`s, transfer codings other than a lone `chunked`).

/// How many headers a head may have (pingora's parser takes as many).
pub const MAX_HEADERS: usize = 256;

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No `Content-Length`, no `Transfer-Encoding`: no body.
    None,
    Length(u64),
    Chunked,
}

/// Why a head is refused (each a `400 bad_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// httparse could not read it (the kind of error).
    Malformed(&'static str),
    /// A line ends in LF without CR.
    BareLf,
    /// A NUL byte in the head.
    Nul,
    /// A header line continued on the next (obs-fold).
    ObsFold,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// More than one `Content-Length` (equal or not).
    DuplicateLength,
    /// A `Content-Length` that is not 1*DIGIT, or overflows.
    BadLength,
    /// `Transfer-Encoding` other than one lone `chunked`, or on HTTP/1.0.
    BadTransferEncoding,
    /// More than one `Host`.
    DuplicateHost,
    /// An absolute-form target whose authority is not the `Host`.
    AuthorityNotHost,
    /// More header lines than [`MAX_HEADERS`] (a `431`).
    TooManyHeaders,
}

impl Refused {
    /// The message of the `400 bad_request` answer.
    pub fn message(self) -> &'static str {
        match self {
            Refused::Malformed(_) => "malformed request head",
            Refused::BareLf => "a line of the request head ends without CR",
            Refused::Nul => "a NUL byte in the request head",
            Refused::ObsFold => "a header line folded onto the next (obs-fold)",
            Refused::LengthAndChunked => {
                "both Content-Length and Transfer-Encoding: the body's framing is ambiguous"
            }
            Refused::DuplicateLength => "more than one Content-Length header",
            Refused::BadLength => "a Content-Length that is not a decimal number",
            Refused::BadTransferEncoding => {
                "a Transfer-Encoding other than a single \"chunked\" (or on HTTP/1.0)"
            }
            Refused::DuplicateHost => "more than one Host header",
            Refused::AuthorityNotHost => "the request target names another host than Host",
            Refused::TooManyHeaders => "more than 256 request headers",
        }
    }
}

/// What to do with the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The head is not all there yet: the proxy's own reader takes over.
    Incomplete,
    /// A head for the proxy's own reader as it is: HTTP/2's preface, an
    /// upgrade, `Expect: 100-continue`.
    Pass,
    /// A plain HTTP/1 head of `len` bytes with unambiguous framing.
    Plain {
        len: usize,
        framing: Framing,
    },
    Refuse(Refused),
}

/// HTTP/2's connection preface: pingora's to read.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Whether [`judge`] would answer `Incomplete`, without parsing anything:
/// what the read of a head's rest asks after each read, before the one
/// `judge` of the whole head.
pub fn incomplete(bytes: &[u8]) -> bool {
    !bytes.starts_with(H2_PREFACE) && head_len(bytes).is_none() && line_faults(bytes).is_none()
}

/// Judges the head at the start of `bytes`.
pub fn judge(bytes: &[u8]) -> Verdict {
    if bytes.starts_with(H2_PREFACE) {
        return Verdict::Pass;
    }
    let Some(len) = head_len(bytes) else {
        // A bare LF or NUL may already show before the head is complete.
        return match line_faults(bytes) {
            Some(refused) => Verdict::Refuse(refused),
            None => Verdict::Incomplete,
        };
    };
    let head = &bytes[..len];
    if let Some(refused) = line_faults(head) {
        return Verdict::Refuse(refused);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Verdict::Refuse(Refused::Malformed("partial")),
        Err(httparse::Error::TooManyHeaders) => return Verdict::Refuse(Refused::TooManyHeaders),
        Err(e) => return Verdict::Refuse(Refused::Malformed(error_kind(e))),
    }
    match framing(&request) {
        Ok(Some(framing)) => Verdict::Plain { len, framing },
        Ok(None) => Verdict::Pass,
        Err(refused) => Verdict::Refuse(refused),
    }
}

/// The length of the head through its blank line, when it is all there.
fn head_len(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\r\n\r\n").map(|i| i + 4)
}

/// Faults of the lines themselves, which a parser may paper over: NUL,
/// a LF without its CR, a continuation line. (memchr: this runs on every
/// request, and a byte-by-byte loop was half the guard's time.)
fn line_faults(head: &[u8]) -> Option<Refused> {
    if memchr::memchr(0, head).is_some() {
        return Some(Refused::Nul);
    }
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Some(Refused::BareLf);
        }
        if matches!(head.get(i + 1), Some(b' ' | b'\t')) {
            return Some(Refused::ObsFold);
        }
    }
    None
}

fn error_kind(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "new line",
        httparse::Error::Status => "status",
        httparse::Error::Token => "token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "version",
    }
}

/// The body's framing, or `None` when the head is one for the proxy's own
/// reader (an upgrade, `Expect: 100-continue`).
fn framing(request: &httparse::Request<'_, '_>) -> Result<Option<Framing>, Refused> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut hosts = 0;
    let mut pass = false;
    for h in request.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(Refused::DuplicateLength);
            }
            length = Some(decimal(h.value).ok_or(Refused::BadLength)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // One header, exactly `chunked`: no lists, no other codings,
            // no padding a second reader might not trim.
            if chunked || !h.value.eq_ignore_ascii_case(b"chunked") || request.version == Some(0) {
                return Err(Refused::BadTransferEncoding);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("upgrade")
            || (name.eq_ignore_ascii_case("expect")
                && h.value.eq_ignore_ascii_case(b"100-continue"))
        {
            pass = true;
        }
    }
    if hosts > 1 {
        return Err(Refused::DuplicateHost);
    }
    if let Some(authority) = absolute_authority(request.path.unwrap_or_default()) {
        let host = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"));
        if host.is_none_or(|h| !h.value.eq_ignore_ascii_case(authority.as_bytes())) {
            return Err(Refused::AuthorityNotHost);
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(Refused::LengthAndChunked),
        _ if pass => Ok(None),
        (Some(n), false) => Ok(Some(Framing::Length(n))),
        (None, true) => Ok(Some(Framing::Chunked)),
        (None, false) => Ok(Some(Framing::None)),
    }
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn absolute_authority(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    Some(rest.split(['/', '?']).next().unwrap_or_default())
}

/// `1*DIGIT` as a u64: no sign, no space, no list, no overflow.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
