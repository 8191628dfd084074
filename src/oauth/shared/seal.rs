//! Shared-cache entries sealed with XChaCha20-Poly1305: nothing in Redis
//! is readable, or can be altered or moved to another slot's key, without
//! the fleet's key. Envelope: version (1 byte), key id (8), nonce (24),
//! ciphertext with tag. The Redis key is the associated data.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::EncryptionKey;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 24;

/// A slot's token as the fleet shares it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Entry {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: f64,
    pub fetched_at: f64,
    /// The newest refresh token; used only by the replica holding the lock.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("fetched_at", &self.fetched_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Why an entry could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not an envelope, or not an entry inside.
    Malformed,
    /// Sealed with a key this replica does not have, or altered.
    Decrypt,
}

/// The current key (sealing) and every key accepted for opening.
pub struct Keyring {
    keys: Vec<([u8; 8], XChaCha20Poly1305)>,
    /// The sealing key, for keys derived from it (never used directly).
    current: [u8; 32],
}

impl Keyring {
    /// `keys[0]` seals; all open. Validation guarantees at least one.
    pub fn new(keys: &[EncryptionKey]) -> Self {
        Keyring {
            keys: keys
                .iter()
                .map(|k| (k.id, XChaCha20Poly1305::new((&k.bytes).into())))
                .collect(),
            current: keys[0].bytes,
        }
    }

    /// A key for another purpose (`info`), derived from the sealing key
    /// with HKDF-SHA-256: every replica with the same key derives the same
    /// one, and it reveals nothing of the sealing key.
    pub fn derive(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &self.current)
            .expand(info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        out
    }

    pub fn seal(&self, aad: &[u8], entry: &Entry) -> Vec<u8> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(entry).expect("an entry always serializes");
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad })
            .expect("XChaCha20-Poly1305 encrypts any length Redis can hold");
        let mut out = Vec::with_capacity(HEADER + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Entry, OpenError> {
        if sealed.len() < HEADER + 16 || sealed[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = sealed[1..].split_at(8);
        let (nonce, ciphertext) = rest.split_at(24);
        let nonce = XNonce::from(<[u8; 24]>::try_from(nonce).map_err(|_| OpenError::Malformed)?);
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or(OpenError::Decrypt)?;
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Decrypt)?;
        serde_json::from_slice(&plain).map_err(|_| OpenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey {
            id: [byte; 8],
            bytes: [byte; 32],
        }
    }

    fn entry() -> Entry {
        Entry {
            access_token: "eyJ.secret-token".into(),
            expires_at: 2.0e9,
            fetched_at: 1.9e9,
            refresh_token: Some("rt-secret".into()),
        }
    }

    #[test]
    fn sealed_entries_open_with_the_key_only_for_their_own_redis_key() {
        let ring = Keyring::new(&[key(1)]);
        let sealed = ring.seal(b"slot:a", &entry());
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("secret"), "nothing readable");
        assert_eq!(
            ring.open(b"slot:a", &sealed).unwrap().access_token,
            "eyJ.secret-token"
        );
        assert_eq!(
            ring.open(b"slot:b", &sealed).unwrap_err(),
            OpenError::Decrypt,
            "moved to another key"
        );
        assert_eq!(
            Keyring::new(&[key(2)])
                .open(b"slot:a", &sealed)
                .unwrap_err(),
            OpenError::Decrypt
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            ring.open(b"slot:a", &altered).unwrap_err(),
            OpenError::Decrypt
        );
        assert_eq!(
            ring.open(b"slot:a", b"garbage").unwrap_err(),
            OpenError::Malformed
        );
        assert_ne!(
            ring.seal(b"slot:a", &entry()),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_rotated_key_still_opens_entries_of_the_previous_one() {
        let old = Keyring::new(&[key(1)]);
        let sealed = old.seal(b"k", &entry());
        let rotated = Keyring::new(&[key(2), key(1)]);
        assert!(rotated.open(b"k", &sealed).is_ok());
        let resealed = rotated.seal(b"k", &entry());
        assert_eq!(
            resealed[1..9],
            [2u8; 8],
            "new entries carry the new key's id"
        );
        assert!(format!("{:?}", entry()).contains("[redacted]"));
    }

    #[test]
    fn derived_keys_follow_the_sealing_key_and_differ_from_it() {
        let a = Keyring::new(&[key(1), key(2)]).derive(b"x");
        assert_eq!(a, Keyring::new(&[key(1)]).derive(b"x"));
        assert_ne!(a, Keyring::new(&[key(2), key(1)]).derive(b"x"));
        assert_ne!(a, Keyring::new(&[key(1)]).derive(b"y"));
        assert_ne!(a, [1u8; 32]);
    }
}
