//! Bodies as the fast path streams them: the request's from the client
//! (by its `Content-Length` or chunks) and the response's from the
//! upstream (length, chunks, or until the upstream closes). Each piece is
//! passed on before the next is read, so a slow reader slows the writer
//! (backpressure) and nothing is buffered beyond one read.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

use super::chunk::{self, Decoder, Piece};

/// The most read in one go.
const READ: usize = 16 * 1024;

/// How a body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    Close,
}

impl Framing {
    /// A request's framing as the guard judged its head.
    pub fn of_request(framing: super::head::Framing) -> Self {
        match framing {
            super::head::Framing::None => Framing::Empty,
            super::head::Framing::Length(n) => Framing::Length(n),
            super::head::Framing::Chunked => Framing::Chunked,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFault {
    /// The sender closed (or reset) before the body's end.
    Closed,
    TimedOut,
    /// Chunk framing the chunk rules refuse.
    Bad(chunk::Fault),
}

/// A body being read, piece by piece.
pub struct BodyReader {
    framing: Framing,
    /// Bytes still to come of a `Length` body.
    left: u64,
    decoder: Decoder,
    done: bool,
}

impl BodyReader {
    pub fn new(framing: Framing) -> Self {
        BodyReader {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            decoder: Decoder::default(),
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// The body has been read to its end.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The next piece of body data, or `None` at its end. `buf` holds
    /// bytes already read from `stream` (what is past the body stays
    /// there: the next request, on a client connection).
    pub async fn next(
        &mut self,
        stream: &mut Stream,
        buf: &mut BytesMut,
        timeout: Duration,
    ) -> Result<Option<Bytes>, ReadFault> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(piece) = self.take(buf)? {
                return Ok(Some(piece));
            }
            if self.done {
                return Ok(None);
            }
            buf.reserve(READ);
            match tokio::time::timeout(timeout, stream.read_buf(buf)).await {
                Err(_) => return Err(ReadFault::TimedOut),
                Ok(Ok(0)) if self.framing == Framing::Close => {
                    self.done = true;
                    return Ok(None);
                }
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadFault::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Everything the bytes at hand still hold of the body, without
    /// reading: pingora's path passes on a response's chunks as one per
    /// read, and so does the fast path.
    pub fn take_more(&mut self, buf: &mut BytesMut, into: &mut BytesMut) -> Result<(), ReadFault> {
        while !self.done {
            match self.take(buf)? {
                Some(piece) => into.extend_from_slice(&piece),
                None => break,
            }
        }
        Ok(())
    }

    /// A piece from the bytes at hand, if they hold one.
    fn take(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ReadFault> {
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(None)
            }
            Framing::Length(_) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.left -= n as u64;
                self.done = self.left == 0;
                // What follows the body stays in the buffer.
                Ok(Some(buf.split_to(n).freeze()))
            }
            Framing::Chunked => match self.decoder.next(buf).map_err(ReadFault::Bad)? {
                Piece::Data(data) => Ok(Some(data)),
                Piece::End => {
                    self.done = true;
                    Ok(None)
                }
                Piece::More => Ok(None),
            },
            Framing::Close => Ok((!buf.is_empty()).then(|| buf.split().freeze())),
        }
    }
}

/// `piece` as it goes on the wire in `framing` (a chunk re-framed).
pub fn frame(framing: Framing, piece: &[u8], out: &mut BytesMut) {
    match framing {
        Framing::Chunked => chunk::encode(piece, out),
        _ => out.extend_from_slice(piece),
    }
}
