//! API keys: made once, shown once, stored only as a SHA-256 hash.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

/// How many characters of a key are kept in clear to tell keys apart.
pub const PREFIX_LEN: usize = 12;

/// A key in clear. It exists only between its creation and printing, and
/// between a request's header and the hash lookup.
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key: `ap_` and 40 alphanumerics (about 238 bits).
    pub fn generate() -> Self {
        let secret = Alphanumeric.sample_string(&mut rand::rng(), 40);
        Self(format!("ap_{secret}"))
    }

    /// Wraps a key as the client sent it (or a demo key).
    pub fn from_clear(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key in clear, to print once.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256, hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The first characters, kept to list and revoke keys by.
    pub fn prefix(&self) -> String {
        self.0.chars().take(PREFIX_LEN).collect()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_to_hex_sha256() {
        let (one, two) = (ApiKey::generate(), ApiKey::generate());
        assert_ne!(one.reveal(), two.reveal());
        assert_eq!(one.hash().len(), 64);
        assert_eq!(
            ApiKey::from_clear("tenant_a").hash(),
            hex::encode(Sha256::digest(b"tenant_a"))
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(key.reveal()));
    }
}
