//! Our own reading of HTTP/1 requests, ahead of pingora's: the head and
//! the chunked body bytes that arrive in the connection's first read are
//! judged here (`head`, `chunk`) and a request whose framing two readers
//! could disagree on is answered with our own JSON `400 bad_request`
//! before pingora or the upstream sees a byte of it (`guard`). Plain
//! requests go on to pingora's path with the bytes as the session's
//! pipelined prefix, as before.
//!
//! This is the first part of the fast path (issue #29): the parsers it
//! will proxy with. The transport itself — proxying plain requests here,
//! with a per-thread upstream pool — is not built yet.

pub mod body;
pub mod chunk;
#[doc(hidden)]
pub mod corpus;
pub mod exchange;
pub mod guard;
pub mod head;
pub mod pool;
pub mod request;
pub mod response;
pub mod sanitize;
pub mod serve;
pub mod upstream;

#[cfg(test)]
mod differential_tests;
