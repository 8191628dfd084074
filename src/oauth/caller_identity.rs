//! Who a caller is at the identity service, and the keyed hash that finds
//! its token. The hash covers the password, so a cached token answers only
//! the same user with the same password; it is keyed (HMAC-SHA-256), so a
//! hash seen in memory or in Redis cannot be tested against guesses
//! without the key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The credential a caller's token requests carry.
pub enum CallerCredential {
    /// The caller's own Basic user and password (password grant).
    Password { username: String, password: Secret },
    /// The identity-domain user a user assertion names.
    Subject(String),
}

impl CallerCredential {
    /// The identity-domain user name (never the password).
    pub fn user(&self) -> &str {
        match self {
            CallerCredential::Password { username, .. } => username,
            CallerCredential::Subject(subject) => subject,
        }
    }
}

impl std::fmt::Debug for CallerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerCredential::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            CallerCredential::Subject(s) => f.debug_tuple("Subject").field(s).finish(),
        }
    }
}

/// A caller as the request names it, borrowed: enough to find its slot
/// without allocating; made into a [`CallerCredential`] only for a new slot.
pub enum CallerRef<'a> {
    Password {
        username: &'a str,
        password: &'a str,
    },
    Subject(&'a str),
}

impl CallerRef<'_> {
    pub fn to_credential(&self) -> CallerCredential {
        match self {
            CallerRef::Password { username, password } => CallerCredential::Password {
                username: username.to_string(),
                password: Secret::new(*password),
            },
            CallerRef::Subject(s) => CallerCredential::Subject(s.to_string()),
        }
    }
}

/// A caller's keyed hash: the key of its slot.
pub type CallerKey = [u8; 32];

/// Computes callers' keyed hashes. The key is random per process, or, with
/// the Redis backend, derived from the cache key so that every replica
/// computes the same hash for the same caller.
pub struct CallerHasher {
    /// HMAC with the key already absorbed: cloned per hash.
    keyed: Hmac<Sha256>,
}

impl CallerHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        CallerHasher {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC takes a key of any length"),
        }
    }

    /// A key that lives and dies with this process.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// The slot key of `credential`: user and password together, or the
    /// subject; each field length-prefixed so no two pairs collide.
    pub fn key(&self, caller: &CallerRef<'_>) -> CallerKey {
        match caller {
            CallerRef::Password { username, password } => {
                self.hash(b"password", &[username.as_bytes(), password.as_bytes()])
            }
            CallerRef::Subject(subject) => self.hash(b"subject", &[subject.as_bytes()]),
        }
    }

    /// The key of a user name alone: what the attempt ceiling counts by.
    pub fn user_key(&self, username: &str) -> CallerKey {
        self.hash(b"user", &[username.as_bytes()])
    }

    fn hash(&self, kind: &[u8], fields: &[&[u8]]) -> CallerKey {
        let mut mac = self.keyed.clone();
        mac.update(kind);
        for f in fields {
            mac.update(&(f.len() as u64).to_le_bytes());
            mac.update(f);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw<'a>(username: &'a str, password: &'a str) -> CallerRef<'a> {
        CallerRef::Password { username, password }
    }

    #[test]
    fn keys_separate_passwords_users_and_hash_keys() {
        let h = CallerHasher::new(&[7; 32]);
        let right = h.key(&pw("alice", "right"));
        assert_eq!(right, h.key(&pw("alice", "right")));
        assert_ne!(right, h.key(&pw("alice", "wrong")));
        assert_ne!(h.key(&pw("ab", "c")), h.key(&pw("a", "bc")));
        assert_ne!(h.key(&CallerRef::Subject("alice")), h.user_key("alice"));
        assert_ne!(
            right,
            CallerHasher::new(&[8; 32]).key(&pw("alice", "right"))
        );
        let debug = format!("{:?}", pw("alice", "hunter2").to_credential());
        assert!(debug.contains("alice") && !debug.contains("hunter2"));
    }
}
