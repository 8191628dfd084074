//! Entry points for the fuzz targets (`fuzz/fuzz_targets/`): each feeds
//! bytes from the network, Redis or a file to one parser, as the proxy
//! does, and must return without panicking whatever the bytes. The unit
//! test below runs every entry over its seed corpus and a bounded number
//! of mutations of it, so `cargo test` runs them on every change; the
//! coverage-guided runs are `fuzz/run.sh`'s.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The path policy on a raw request target: the bytes pingora keeps for
/// the wire (`raw_path`), whatever they are.
pub fn path_policy(data: &[u8]) {
    let Ok(header) = pingora::http::RequestHeader::build_no_case("GET", data, None) else {
        return;
    };
    let _ = crate::proxy::path_policy::check_path(&header);
}

/// A caller's `Authorization: Basic …` header value.
pub fn basic_header(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let _ = crate::access::basic_credentials(&headers);
    let _ = crate::access::with_basic_credentials(&headers, |user, password| {
        user.len() + password.len()
    });
}

/// A shared-cache value read back from Redis. An even first byte XORs the
/// rest over a valid envelope (so the fuzzer works past the header and
/// the AEAD check's framing); an odd one opens the rest as it is.
pub fn sealed_entry(data: &[u8]) {
    use crate::oauth::shared::seal::{Entry, Keyring};
    let ring = Keyring::new(&[crate::config::EncryptionKey {
        id: [7; 8],
        bytes: [9; 32],
    }]);
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let value = if first % 2 == 0 {
        let entry = Entry {
            access_token: "eyJ.token".into(),
            expires_at: 2e9,
            fetched_at: 1e9,
            refresh_token: Some("refresh".into()),
        };
        let mut sealed = ring.seal(b"slot-key", &entry);
        for (i, b) in rest.iter().enumerate() {
            match sealed.get_mut(i) {
                Some(s) => *s ^= b,
                None => sealed.push(*b),
            }
        }
        sealed
    } else {
        rest.to_vec()
    };
    let _ = ring.open(b"slot-key", &value);
}

/// The API-key, htpasswd and caller-subjects files.
pub fn credential_files(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::access::ApiKeys::parse(&text, HeaderName::from_static("x-api-key"));
    let _ = crate::access::BasicUsers::parse(&text);
    let _ = crate::access::CallerSubjects::parse(&text);
}

/// `traceparent` and `tracestate` from a client, split at the first newline.
pub fn trace_context(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == b'\n');
    let mut headers = HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = parts.next().and_then(|p| HeaderValue::from_bytes(p).ok()) {
            headers.insert(name, v);
        }
    }
    use opentelemetry::propagation::TextMapPropagator as _;
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let _ = propagator.extract(&crate::telemetry::headers::Incoming(&headers));
}

/// A connection's first bytes through the smuggling guard: the head
/// judged, its chunks checked, and the chunk check alone on the bytes (a
/// body after any head). Invariants: a plain head's length is within the
/// bytes and ends with its blank line; a complete chunked body ends
/// within the bytes.
pub fn request_head(data: &[u8]) {
    use crate::fastpath::{chunk, guard, head, request, response};
    let _ = guard::judge(data);
    if let head::Verdict::Plain { len, .. } = head::judge(data) {
        assert!(len <= data.len() && data[..len].ends_with(b"\r\n\r\n"));
        // The fast path's own head, built from what the guard passed.
        let _ = request::build(&bytes::Bytes::copy_from_slice(&data[..len]));
    }
    let checked = chunk::check(data);
    if let Ok(chunk::Progress::Complete(len)) = checked {
        assert!(len <= data.len() && data[..len].ends_with(b"\r\n"));
    }
    // The streaming decoder, fed in pieces split where the data says,
    // agrees with the check on the same bytes: both refuse (the fault
    // named can differ with where the bytes were split: a size line cut
    // short is judged as a size before its bare LF arrives), both find the
    // end, or both wait for more.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    match (checked, decode_in_steps(data, step)) {
        (Err(_), Err(_)) => {}
        (Ok(chunk::Progress::Complete(_)), Ok(true))
        | (Ok(chunk::Progress::Partial), Ok(false)) => {}
        (a, b) => panic!("check {a:?} but decoder {b:?}"),
    }
    // An upstream's answer head, as the fast path reads it.
    let _ = response::parse_head(&mut bytes::BytesMut::from(data));
}

/// Whether `data`'s chunked body ends, decoded `step` bytes at a time.
fn decode_in_steps(data: &[u8], step: usize) -> Result<bool, crate::fastpath::chunk::Fault> {
    use crate::fastpath::chunk::{Decoder, Piece};
    let mut decoder = Decoder::default();
    let mut buf = bytes::BytesMut::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.next(&mut buf)? {
                Piece::Data(_) => {}
                Piece::End => return Ok(true),
                Piece::More => break,
            }
        }
    }
    Ok(false)
}

/// A fuzz entry: bytes in, nothing out.
pub type Entry = fn(&[u8]);

/// Every entry by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, Entry)] = &[
    ("path_policy", path_policy),
    ("basic_header", basic_header),
    ("sealed_entry", sealed_entry),
    ("credential_files", credential_files),
    ("trace_context", trace_context),
    ("request_head", request_head),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-level mutations of a seed: flips, inserts, deletions,
    /// truncations and splices of interesting bytes.
    fn mutate(seed: &[u8], rng: &mut impl rand::Rng) -> Vec<u8> {
        const SPICE: &[&[u8]] = &[
            b"%2e",
            b"%2f",
            b"%5c",
            b"%00",
            b"..",
            b";",
            b"\\",
            b"\r\n",
            b"\xff",
            b":",
            b"=",
            b"-",
            b"00",
            b"\t",
            b"%",
            b"/",
            b"\n",
            b"\r",
            b"0\r\n\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Content-Length: 5\r\n",
            b"\0",
            b" ",
        ];
        let mut out = seed.to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=out.len());
            match rng.random_range(0..5) {
                0 if !out.is_empty() => {
                    let i = rng.random_range(0..out.len());
                    out[i] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    let s = SPICE[rng.random_range(0..SPICE.len())];
                    out.splice(at..at, s.iter().copied());
                }
                2 if at < out.len() => {
                    out.remove(at);
                }
                3 => out.truncate(at),
                _ => out.insert(at, rng.random()),
            }
        }
        out
    }

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        seeds.push(Vec::new());
        seeds
    }

    #[test]
    fn every_fuzz_entry_survives_its_corpus_and_20000_mutations_of_it() {
        let mut rng = rand::rng();
        for (name, entry) in TARGETS {
            let seeds = corpus(name);
            assert!(
                seeds.len() > 3,
                "{name}: a seed corpus under fuzz/corpus/{name}"
            );
            for seed in &seeds {
                entry(seed);
            }
            for i in 0..20_000 {
                entry(&mutate(&seeds[i % seeds.len()], &mut rng));
            }
        }
    }
}
