//! What is kept of a request for a replay after an upstream 401: whether
//! it is replayed and by whom, and its body as it streams past. Below both
//! the request context that holds them and `replay`, which uses them.

use bytes::{Bytes, BytesMut};

/// How a 401 from the upstream is followed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// No 401 seen (or the request cannot be replayed).
    No,
    /// pingora resends the request from its retry buffer.
    ByPingora,
    /// `replay::resend` sends it again from the proxy's own copy.
    ByProxy,
}

/// The request body as it streams past, kept while it stays within the
/// replay limit. Chunks are reference-counted, so keeping them copies
/// nothing.
#[derive(Default)]
pub struct BodyCopy {
    chunks: Vec<Bytes>,
    len: u64,
    over_limit: bool,
}

impl BodyCopy {
    pub fn keep(&mut self, chunk: &Bytes, limit: u64) {
        if self.over_limit {
            return;
        }
        self.len += chunk.len() as u64;
        if self.len > limit {
            self.over_limit = true;
            self.chunks = Vec::new();
        } else if !chunk.is_empty() {
            self.chunks.push(chunk.clone());
        }
    }

    /// Bytes seen so far, if every one of them was kept.
    pub fn kept_len(&self) -> Option<u64> {
        (!self.over_limit).then_some(self.len)
    }

    /// The whole body kept, as one buffer.
    pub fn concat(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut all = BytesMut::with_capacity(self.len as usize);
                for c in many {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        }
    }
}

/// A copy that saw chunks of `sizes` under `limit` (tests here and in `replay`).
#[cfg(test)]
pub(super) fn copy_of(sizes: &[usize], limit: u64) -> BodyCopy {
    let mut c = BodyCopy::default();
    for &n in sizes {
        c.keep(&Bytes::from(vec![1u8; n]), limit);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_kept_up_to_the_limit_and_dropped_beyond_it() {
        let c = copy_of(&[400, 600], 1000);
        assert_eq!(c.kept_len(), Some(1000));
        assert_eq!(c.concat().len(), 1000);
        let c = copy_of(&[400, 601], 1000);
        assert_eq!(c.kept_len(), None);
        assert!(c.chunks.is_empty(), "memory released");
    }
}
