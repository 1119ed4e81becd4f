//! API token minting and checking.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::Role;

/// A stored API token: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub created_at_unix_ns: i64,
    pub revoked: bool,
}

/// A freshly minted token: the record to store and the text to show once.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub record: ApiToken,
    /// `ID.SECRET`.
    pub token: String,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_text(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares the hash of `secret` with `stored_sha256` in constant time.
pub fn secret_matches(stored_sha256: &str, secret: &str) -> bool {
    let presented = hash_secret(secret);
    let (a, b) = (stored_sha256.as_bytes(), presented.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl MintedToken {
    /// A new token with a 6-character id and a 32-character secret.
    pub fn mint(name: &str, role: Role) -> Self {
        let id = random_text(6);
        let secret = random_text(32);
        MintedToken {
            token: format!("{id}.{secret}"),
            record: ApiToken {
                id,
                name: name.to_owned(),
                role,
                secret_sha256: hash_secret(&secret),
                created_at_unix_ns: crate::time::now_unix_ns(),
                revoked: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_matches_only_its_secret() {
        let minted = MintedToken::mint("ops", Role::Admin);
        let (id, secret) = minted.token.split_once('.').unwrap();
        assert_eq!(id, minted.record.id);
        assert!(secret_matches(&minted.record.secret_sha256, secret));
        assert!(!secret_matches(&minted.record.secret_sha256, "nope"));
        assert!(!minted.record.secret_sha256.contains(secret));
    }
}
