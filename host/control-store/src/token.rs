//! API token hashing: the store only ever sees a token's SHA-256.

use sha2::{Digest, Sha256};

/// The SHA-256 of an API token, the only form in which tokens reach a store.
///
/// Tokens are long random strings (the CLI makes them), so a plain, unsalted hash is enough: there
/// is nothing to guess, and an unsalted hash lets the store look a presented token up directly.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a presented or newly created token.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenHash {
    // Short and harmless in logs: the first bytes of a hash identify it without helping anyone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_token_same_hash_different_token_different_hash() {
        assert_eq!(TokenHash::of("secret"), TokenHash::of("secret"));
        assert_ne!(TokenHash::of("secret"), TokenHash::of("secret2"));
        // Known SHA-256 of "abc", so the hash is the standard one other backends can reproduce.
        assert_eq!(TokenHash::of("abc").0[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
