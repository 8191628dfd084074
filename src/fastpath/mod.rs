//! Our own reading of HTTP/1 requests, ahead of pingora's: the head and
//! the chunked body bytes that arrive in the connection's first read are
//! judged here (`head`, `chunk`) and a request whose framing two readers
//! could disagree on is answered with our own JSON `400 bad_request`
//! before pingora or the upstream sees a byte of it (`guard`).
//!
//! Plain requests (`serve`) are then proxied here, by our own transport
//! (`server.fast_path`, issue #29): the same admit pipeline as pingora's
//! path (`proxy::admit` over a `Downstream`), the upstream connection
//! from a pool of the worker thread's own (`pool`), heads built as
//! pingora builds them (`request`, `response`, `sanitize`), bodies
//! streamed by their framing (`body`, `chunk::Decoder`), and a 401
//! replayed once (`exchange`). Everything else goes to pingora's path,
//! with the bytes as the session's pipelined prefix.

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
