//! Join tokens, kubeadm style: `ID.SECRET` with a 6-character id and a
//! 16-character secret of `[a-z0-9]`. Only the SHA-256 of the secret is
//! stored; the secret is shown once, when the token is created.

use rand::Rng;

use crate::access::hash_secret;
use crate::store::registry::JoinTokenRecord;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Length of a token id.
pub const ID_LEN: usize = 6;
/// Length of a token secret.
pub const SECRET_LEN: usize = 16;

fn random_text(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A new join token: the record to store and the text to show once.
#[derive(Debug, Clone)]
pub struct MintedJoinToken {
    pub record: JoinTokenRecord,
    /// `ID.SECRET`.
    pub token: String,
}

impl MintedJoinToken {
    /// A token for `site`, valid from `now_unix_ns` for `ttl_ns`.
    pub fn mint(
        site: &str,
        now_unix_ns: i64,
        ttl_ns: i64,
        created_by: &str,
        reenroll: bool,
    ) -> Self {
        let id = random_text(ID_LEN);
        let secret = random_text(SECRET_LEN);
        MintedJoinToken {
            token: format!("{id}.{secret}"),
            record: JoinTokenRecord {
                id,
                secret_sha256: hash_secret(&secret),
                site: site.to_owned(),
                created_at_unix_ns: now_unix_ns,
                expires_at_unix_ns: now_unix_ns.saturating_add(ttl_ns),
                used_at_unix_ns: None,
                created_by: created_by.to_owned(),
                reenroll,
            },
        }
    }
}

/// Splits `ID.SECRET` into its parts, if it has that shape.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.trim().split_once('.')?;
    let valid = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, ID_LEN) && valid(secret, SECRET_LEN)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::secret_matches;

    #[test]
    fn a_minted_token_splits_and_only_its_hash_is_kept() {
        let minted = MintedJoinToken::mint("nrt", 10, 5, "ops", false);
        let (id, secret) = split(&minted.token).expect("ID.SECRET");
        assert_eq!(id, minted.record.id);
        assert!(secret_matches(&minted.record.secret_sha256, secret));
        assert!(!minted.record.secret_sha256.contains(secret));
        assert_eq!(minted.record.expires_at_unix_ns, 15);
        for bad in [
            "",
            "abc",
            "abcdef.short",
            "ABCDEF.0123456789abcdef",
            "abcdef-0123456789abcdef",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }
}
