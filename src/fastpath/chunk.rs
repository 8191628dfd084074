//! The chunked body bytes that arrived with the head, checked against RFC
//! 9112 §7.1 before anything is forwarded: a size line of 1–16 hex digits
//! (no sign, no `0x`, no padding), an extension only after `;` and without
//! control bytes, every line ended by CRLF, each chunk's data followed by
//! exactly CRLF (a length that disagrees with the data is the TE.CL
//! trick), trailers as header lines without framing fields. Bytes after
//! the last chunk's blank line belong to the next request.

/// How far the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Valid so far; the body goes on beyond these bytes.
    Partial,
    /// The whole body, `len` bytes of it.
    Complete(usize),
}

/// What is wrong with a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A size that is not 1–16 hex digits.
    Size,
    /// A chunk extension with a control byte, or without its `;`.
    Extension,
    /// A line ended by LF alone, or a byte where CRLF belongs.
    LineEnd,
    /// Chunk data not followed by CRLF: the size disagrees with the data.
    DataLength,
    /// A trailer that is not a header line, or names a framing field.
    Trailer,
}

impl Fault {
    pub fn message(self) -> &'static str {
        match self {
            Fault::Size => "a chunk size that is not 1 to 16 hex digits",
            Fault::Extension => "a malformed chunk extension",
            Fault::LineEnd => "a chunk line not ended by CRLF",
            Fault::DataLength => "chunk data longer or shorter than its size",
            Fault::Trailer => "a malformed or framing trailer field",
        }
    }
}

/// The longest chunk size accepted: 16 hex digits fit a u64.
const MAX_SIZE_DIGITS: usize = 16;

/// Checks the chunked body at the start of `body`.
pub fn check(body: &[u8]) -> Result<Progress, Fault> {
    let mut at = 0;
    loop {
        let Some(line) = line(&body[at..])? else {
            if body.len() - at > MAX_LINE {
                return Err(Fault::Size);
            }
            return partial_size(&body[at..]);
        };
        let size = size_line(line)?;
        at += line.len() + 2;
        if size == 0 {
            return trailers(body, at);
        }
        let Some(end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)) else {
            return Ok(Progress::Partial);
        };
        match body.get(end..end + 2) {
            Some(b"\r\n") => at = end + 2,
            Some(_) => return Err(Fault::DataLength),
            None if body.len() > end && body[end] != b'\r' => return Err(Fault::DataLength),
            None => return Ok(Progress::Partial),
        }
    }
}

/// The next CRLF-ended line (without its CRLF), `None` when it has not
/// all arrived; a LF without CR is a fault.
fn line(bytes: &[u8]) -> Result<Option<&[u8]>, Fault> {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(0) => Err(Fault::LineEnd),
        Some(i) if bytes[i - 1] != b'\r' => Err(Fault::LineEnd),
        Some(i) => {
            let line = &bytes[..i - 1];
            if line.contains(&b'\r') {
                return Err(Fault::LineEnd);
            }
            Ok(Some(line))
        }
        None => Ok(None),
    }
}

/// A size line's size; its extension, if any, checked.
fn size_line(line: &[u8]) -> Result<u64, Fault> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_SIZE_DIGITS {
        return Err(Fault::Size);
    }
    let extension = &line[digits..];
    if !extension.is_empty() {
        let ok = extension.first() == Some(&b';')
            && extension
                .iter()
                .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f));
        if !ok {
            // A size like `1 0` or `5x` lands here too.
            return Err(if extension[0].is_ascii_alphanumeric() {
                Fault::Size
            } else {
                Fault::Extension
            });
        }
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| Fault::Size)?;
    u64::from_str_radix(hex, 16).map_err(|_| Fault::Size)
}

/// A size line not yet ended: whatever arrived must still be able to
/// become a valid one.
fn partial_size(rest: &[u8]) -> Result<Progress, Fault> {
    let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > MAX_SIZE_DIGITS {
        return Err(Fault::Size);
    }
    match rest.get(digits) {
        None | Some(b'\r' | b';') => Ok(Progress::Partial),
        Some(_) => Err(Fault::Size),
    }
}

/// The trailer section after the last chunk, through its blank line.
fn trailers(body: &[u8], mut at: usize) -> Result<Progress, Fault> {
    loop {
        let Some(line) = line(&body[at..])? else {
            if body.len() - at > MAX_LINE {
                return Err(Fault::Size);
            }
            return Ok(Progress::Partial);
        };
        at += line.len() + 2;
        if line.is_empty() {
            return Ok(Progress::Complete(at));
        }
        trailer_line(line)?;
    }
}

/// One trailer line: a header line that names no framing field.
fn trailer_line(line: &[u8]) -> Result<(), Fault> {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return Err(Fault::Trailer);
    };
    let name = &line[..colon];
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let framing = [
        &b"content-length"[..],
        b"transfer-encoding",
        b"host",
        b"trailer",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f));
    if name.is_empty() || !name.iter().all(token) || framing || line.contains(&0) {
        return Err(Fault::Trailer);
    }
    Ok(())
}

/// The longest unfinished size or trailer line waited for: a longer one
/// is refused rather than buffered (by the check and the decoder alike).
const MAX_LINE: usize = 4096;

/// A chunked body decoded as it streams, by the rules of [`check`]: the
/// fast path's reader of request and response bodies. Trailers are
/// checked and dropped (pingora's path drops them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decoder {
    #[default]
    Size,
    /// Data still to come of the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

/// What the decoder took from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Body data.
    Data(bytes::Bytes),
    /// The body ended (its last chunk and trailers consumed).
    End,
    /// More bytes are needed.
    More,
}

impl Decoder {
    /// Takes the next piece from the front of `buf`.
    pub fn next(&mut self, buf: &mut bytes::BytesMut) -> Result<Piece, Fault> {
        loop {
            match *self {
                Decoder::Done => return Ok(Piece::End),
                Decoder::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Piece::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Decoder::DataEnd
                    } else {
                        Decoder::Data(left)
                    };
                    return Ok(Piece::Data(buf.split_to(n).freeze()));
                }
                Decoder::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        let _ = buf.split_to(2);
                        *self = Decoder::Size;
                    }
                    Some(_) => return Err(Fault::DataLength),
                    None if buf.first().is_some_and(|b| *b != b'\r') => {
                        return Err(Fault::DataLength)
                    }
                    None => return Ok(Piece::More),
                },
                Decoder::Size | Decoder::Trailers => {
                    let Some(line) = line(buf)? else {
                        if buf.len() > MAX_LINE {
                            return Err(Fault::Size);
                        }
                        if *self == Decoder::Size {
                            partial_size(buf)?;
                        }
                        return Ok(Piece::More);
                    };
                    let len = line.len();
                    *self = self.after_line(line)?;
                    let _ = buf.split_to(len + 2);
                }
            }
        }
    }

    /// The state after a whole size or trailer line.
    fn after_line(self, line: &[u8]) -> Result<Decoder, Fault> {
        if self == Decoder::Trailers {
            if line.is_empty() {
                return Ok(Decoder::Done);
            }
            trailer_line(line)?;
            return Ok(Decoder::Trailers);
        }
        Ok(match size_line(line)? {
            0 => Decoder::Trailers,
            size => Decoder::Data(size),
        })
    }
}

/// `data` as one chunk on the wire (pingora's spelling: upper-case hex).
pub fn encode(data: &[u8], out: &mut bytes::BytesMut) {
    use std::fmt::Write;
    let _ = write!(out, "{:X}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` to a decoder `step` bytes at a time; the data and
    /// whether it ended, or the fault.
    fn decode(body: &[u8], step: usize) -> Result<(Vec<u8>, bool), Fault> {
        let mut decoder = Decoder::default();
        let mut buf = bytes::BytesMut::new();
        let mut data = Vec::new();
        for piece in body.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.next(&mut buf)? {
                    Piece::Data(d) => data.extend_from_slice(&d),
                    Piece::End => return Ok((data, true)),
                    Piece::More => break,
                }
            }
        }
        Ok((data, false))
    }

    #[test]
    fn the_decoder_agrees_with_the_check_on_every_split() {
        let valid: [&[u8]; 3] = [
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
            b"A\r\n0123456789\r\n000\r\n\r\n",
        ];
        for body in valid {
            for step in 1..body.len() {
                let (data, ended) = decode(body, step).unwrap();
                assert!(ended, "{step}");
                assert!(data.len() == 5 || data.len() == 11 || data.len() == 10);
            }
        }
        for (name, bytes, _) in crate::fastpath::corpus::CASES {
            let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let body = &bytes[at + 4..];
            if !bytes
                .to_ascii_lowercase()
                .windows(7)
                .any(|w| w == b"chunked")
            {
                continue;
            }
            let checked = check(body);
            for step in [1, 3, body.len().max(1)] {
                match (&checked, decode(body, step)) {
                    (Err(a), Err(b)) => assert_eq!(*a, b, "{name}"),
                    (Ok(Progress::Complete(_)), Ok((_, true))) => {}
                    (Ok(Progress::Partial), Ok((_, false))) => {}
                    (a, b) => panic!("{name}: check {a:?}, decoder {b:?}"),
                }
            }
        }
    }

    #[test]
    fn valid_bodies_end_where_the_next_request_begins() {
        assert_eq!(
            check(b"5\r\nhello\r\n0\r\n\r\nGET /"),
            Ok(Progress::Complete(15))
        );
        assert_eq!(
            check(b"5;name=value\r\nhello\r\n0\r\n\r\n"),
            Ok(Progress::Complete(26))
        );
        assert_eq!(check(b"0\r\nX-Sum: 1\r\n\r\n"), Ok(Progress::Complete(15)));
        assert_eq!(
            check(b"A\r\n0123456789\r\n000\r\n\r\n"),
            Ok(Progress::Complete(22))
        );
    }

    #[test]
    fn unfinished_bodies_are_partial() {
        for partial in [
            &b""[..],
            b"5",
            b"5\r",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"5\r\nhello\r\n0\r\n",
            b"ffffffffffffffff\r\n",
        ] {
            assert_eq!(
                check(partial),
                Ok(Progress::Partial),
                "{:?}",
                String::from_utf8_lossy(partial)
            );
        }
    }

    #[test]
    fn desync_material_is_refused() {
        let cases: [(&[u8], Fault); 12] = [
            (b"-5\r\nhello\r\n0\r\n\r\n", Fault::Size),
            (b"0x5\r\nhello\r\n0\r\n\r\n", Fault::Size),
            (b" 5\r\nhello\r\n0\r\n\r\n", Fault::Size),
            (b"1ffffffffffffffff\r\n", Fault::Size),
            (b"5 \r\nhello\r\n0\r\n\r\n", Fault::Extension),
            (b"5\nhello\r\n0\r\n\r\n", Fault::LineEnd),
            (b"5\r\nhello\n0\r\n\r\n", Fault::DataLength),
            (b"3\r\nhello\r\n0\r\n\r\n", Fault::DataLength),
            (b"5;a=\x01\r\nhello\r\n0\r\n\r\n", Fault::Extension),
            (b"0\r\nContent-Length: 5\r\n\r\n", Fault::Trailer),
            (b"0\r\nnot a header\r\n\r\n", Fault::Trailer),
            (b"0\r\n\n", Fault::LineEnd),
        ];
        for (body, fault) in cases {
            assert_eq!(
                check(body),
                Err(fault),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
