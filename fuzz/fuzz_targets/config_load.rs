//! Any text as a configuration file: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Environment lookups see a small fixed environment, so `${...}`
        // paths are exercised without depending on the fuzzer's.
        let env = |name: &str| match name {
            "A" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let _ =
            bearer_proxy::config::load_str(text, std::path::Path::new("/nonexistent-fuzz"), &env);
    }
});
