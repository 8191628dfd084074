//! bearer_proxy::fuzzing::basic_header: any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bearer_proxy::fuzzing::basic_header(data));
