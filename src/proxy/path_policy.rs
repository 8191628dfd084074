//! What a request's path and method must look like before anything else
//! reads them. A route prefix is an authorisation boundary (a route hands
//! out an Oracle application's roles), and upstreams normalise paths:
//! WebLogic resolves `..`, decodes `%2e`, and treats `;` as the start of
//! path parameters. So a path that an upstream could read as another path
//! is refused, never rewritten: route matching and forwarding then work on
//! exactly the path the upstream sees.

use http::{HeaderValue, Method};
use pingora::http::RequestHeader;

use super::refusal::Refusal;

/// Refuses (400 `bad_path`) a request target that is not origin-form, or
/// whose path has a `.` or `..` segment (raw, percent-encoded, or followed
/// by `;parameters`), an encoded `/` or `\`, a raw `\`, a control byte
/// (raw or encoded) or a raw non-ASCII byte. It reads the target exactly
/// as pingora will forward it (`raw_path`: pingora keeps non-UTF-8 and
/// absolute-form targets verbatim for the wire, and its `uri` shows only a
/// rendering of them). Percent-decoding happens only for this check.
pub fn check_path(req: &RequestHeader) -> Result<(), Refusal> {
    let target = req.raw_path();
    if target.first() != Some(&b'/') {
        return Err(Refusal::BadPath(
            "the request target must be a path (origin-form)",
        ));
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    if path
        .iter()
        .any(|b| *b == b'\\' || b.is_ascii_control() || !b.is_ascii())
    {
        return Err(Refusal::BadPath(
            "a backslash, control character or raw non-ASCII byte in the path",
        ));
    }
    for segment in path.split(|b| *b == b'/') {
        let decoded;
        let segment = if segment.contains(&b'%') {
            decoded = percent_decode(segment)?;
            &decoded[..]
        } else {
            segment
        };
        // WebLogic strips `;parameters` before resolving a segment.
        let name = segment.split(|b| *b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Err(Refusal::BadPath("a '.' or '..' segment in the path"));
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes, refusing those that would change the path's
/// structure or smuggle a control byte; an invalid escape stays as it is.
fn percent_decode(bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(b'/' | b'\\') => {
                return Err(Refusal::BadPath("an encoded '/' or '\\' in the path"));
            }
            Some(b) if b.is_ascii_control() => {
                return Err(Refusal::BadPath("an encoded control character in the path"));
            }
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The `Allow` value for `methods`.
pub fn allow_header(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::try_from(list.join(", ")).expect("method names are header-safe")
}

/// TRACE and CONNECT are never forwarded, whatever the route: an answering
/// intermediary would reflect the injected token, and a tunnel is not a
/// request. 405 with the default `Allow`.
pub fn check_never_forwarded(method: &Method, default_allow: &HeaderValue) -> Result<(), Refusal> {
    if method == Method::TRACE || method == Method::CONNECT {
        return Err(Refusal::MethodNotAllowed(default_allow.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(target: &str) -> Result<(), &'static str> {
        let req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        check_path(&req).map_err(|r| match r {
            Refusal::BadPath(why) => why,
            _ => "other",
        })
    }

    #[test]
    fn paths_an_upstream_could_read_as_another_path_are_refused() {
        for target in [
            "/ic/api/../../admin/secret",
            "/ic/api/./x",
            "/ic/api/%2e%2e/%2e%2e/admin",
            "/ic/api/%2E%2E/admin",
            "/ic/api/.%2e/admin",
            "/ic/api/%2e/admin",
            "/ic/api/..;/..;/admin",
            "/ic/api/..;jsessionid=1/admin",
            "/ic/api/%2e%2e;x=1/admin",
            "/ic/api/..",
            "/ic/api/a%2fb",
            "/ic/api/a%2Fb",
            "/ic/api/a%5cb",
            "/ic/api/a%5Cb",
            "/ic/api/a%00b",
            "/ic/api/a%0ab",
            "/ic/api/a%7fb",
            "http://evil.example/ic/api/x",
            "*",
            "?x=1",
            "/ic/api/é/x",
        ] {
            assert!(verdict(target).is_err(), "{target} was let through");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for target in [
            "/",
            "/ic/api/integration/v1/flows/rest/HELLO/1.0/ping?x=../y",
            "/ic/api/a%20b/c%41",
            "/ic/api/...",
            "/ic/api/..x/.y",
            "/ic/api/a;b=c",
            "/ic/api/%zz",
            "/ic/api/%2",
        ] {
            assert_eq!(verdict(target), Ok(()), "{target}");
        }
    }
}
