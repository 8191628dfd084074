//! bearer_proxy::fuzzing::request_head: a connection's first bytes
//! through the smuggling guard (head and chunk parsing), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bearer_proxy::fuzzing::request_head(data));
