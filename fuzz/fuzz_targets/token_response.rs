//! Any bytes as a token endpoint's answer, under any status: a token or a
//! classified error, never a panic.
#![no_main]

use bearer_proxy::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((first, rest)) => (200 + u16::from(*first) * 2 % 400, rest),
        None => (200, data),
    };
    let Ok(status) = http::StatusCode::from_u16(status) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Some(v) = body
        .get(..4)
        .and_then(|b| http::HeaderValue::from_bytes(b).ok())
    {
        headers.insert(http::header::RETRY_AFTER, v);
    }
    let _ = classify(status, &headers, body);
});
