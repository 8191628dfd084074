//! API keys from an `api_keys_file` (`name:sha256hex` per line), and the
//! per-thread memo of the last key that matched.
//!
//! Keep-alive clients send the same key on every request, and a worker
//! thread serves a connection for its whole life, so each thread remembers
//! the last key it accepted and the set it was accepted by; a request that
//! presents it again skips the SHA-256 and the lookup.
//! A reload builds a new set with a new id, so nothing a reload revoked is
//! ever accepted from the memo.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Tells key sets apart for the memo; never reused within a process.
static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

pub struct ApiKeys {
    pub header: HeaderName,
    /// The caller's name for logs (`api_key:<name>`) and the key's hash.
    keys: Vec<(Arc<str>, [u8; 32])>,
    /// Index into `keys` by hash.
    by_hash: HashMap<[u8; 32], usize>,
    id: u64,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The last key this thread accepted: which set, the key, its index.
struct LastMatch {
    set: u64,
    presented: Vec<u8>,
    index: usize,
}

thread_local! {
    static LAST_MATCH: RefCell<Option<LastMatch>> = const { RefCell::new(None) };
}

impl ApiKeys {
    /// Parses the file's text; errors name the line.
    pub fn parse(text: &str, header: HeaderName) -> Result<Self, String> {
        let mut keys = Vec::new();
        for entry in super::colon_lines(text, "name:sha256hex") {
            let (n, name, hex) = entry?;
            let hash = decode_sha256_hex(hex.trim()).ok_or_else(|| {
                format!("line {n}: the value after the name is not 64 hex digits (the SHA-256 of the key, never the key itself)")
            })?;
            keys.push((Arc::from(format!("api_key:{}", name.trim())), hash));
        }
        if keys.is_empty() {
            return Err("no keys in the file".into());
        }
        let by_hash = keys.iter().enumerate().map(|(i, (_, h))| (*h, i)).collect();
        Ok(ApiKeys {
            header,
            keys,
            by_hash,
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The caller name of the key `presented` is, if any.
    pub(super) fn find(&self, presented: &[u8]) -> Option<Arc<str>> {
        let index = match self.remembered(presented) {
            Some(index) => index,
            None => {
                let index = self.search(presented)?;
                self.remember(presented, index);
                index
            }
        };
        Some(self.keys[index].0.clone())
    }

    /// The index of the key `presented` hashes to, looked up by its
    /// SHA-256. The lookup's timing depends on the digest only, which a
    /// guesser cannot steer towards a stored one without a preimage, so it
    /// tells nothing about how close a guess came; a walk over every
    /// stored hash cost ~85 ns a key (850 µs a request with 10,000 keys).
    fn search(&self, presented: &[u8]) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.by_hash.get(&digest).copied()
    }

    /// The memo's index when it holds this set and exactly this key
    /// (compared in constant time for keys of its length).
    fn remembered(&self, presented: &[u8]) -> Option<usize> {
        LAST_MATCH.with(|last| {
            let last = last.borrow();
            let last = last.as_ref()?;
            (last.set == self.id && bool::from(last.presented.as_slice().ct_eq(presented)))
                .then_some(last.index)
        })
    }

    fn remember(&self, presented: &[u8], index: usize) {
        LAST_MATCH.with(|last| {
            let mut last = last.borrow_mut();
            let entry = last.get_or_insert_with(|| LastMatch {
                set: 0,
                presented: Vec::new(),
                index: 0,
            });
            entry.set = self.id;
            // No tail of a longer key left behind in the buffer.
            entry.presented.fill(0);
            entry.presented.clear();
            entry.presented.extend_from_slice(presented);
            entry.index = index;
        })
    }
}

fn decode_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// The hash line for an API key, as `api_keys_file` wants it.
pub fn api_key_line(name: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[(&str, &str)]) -> ApiKeys {
        let text: Vec<String> = lines.iter().map(|(n, k)| api_key_line(n, k)).collect();
        ApiKeys::parse(&text.join("\n"), HeaderName::from_static("x-api-key")).unwrap()
    }

    #[test]
    fn the_memo_answers_only_for_its_own_set_and_key() {
        let old = keys(&[("erp", "k-1"), ("crm", "k-2")]);
        assert_eq!(old.find(b"k-2").as_deref(), Some("api_key:crm"));
        assert_eq!(old.remembered(b"k-2"), Some(1));
        // Same thread, the key presented again: from the memo.
        assert_eq!(old.find(b"k-2").as_deref(), Some("api_key:crm"));
        // Another key, or a prefix of the remembered one: searched.
        assert_eq!(old.remembered(b"k-"), None);
        assert_eq!(old.find(b"k-1").as_deref(), Some("api_key:erp"));
        // A reload that drops crm: the new set never answers from the old memo.
        let reloaded = keys(&[("erp", "k-1")]);
        old.find(b"k-2");
        assert_eq!(reloaded.remembered(b"k-2"), None);
        assert_eq!(reloaded.find(b"k-2"), None);
    }

    #[test]
    fn errors_name_the_line_counting_comments_and_blanks() {
        let header = HeaderName::from_static("x-api-key");
        let text = format!("# keys\n\n{}\nno-colon-here\n", api_key_line("erp", "k-1"));
        assert_eq!(
            ApiKeys::parse(&text, header.clone()).unwrap_err(),
            "line 4: expected name:sha256hex"
        );
        assert_eq!(
            ApiKeys::parse("# only a comment\n", header).unwrap_err(),
            "no keys in the file"
        );
    }

    #[test]
    fn debug_output_holds_no_hash() {
        let shown = format!("{:?}", keys(&[("erp", "k-1")]));
        assert!(!shown.contains(&api_key_line("erp", "k-1")[4..]), "{shown}");
    }
}
