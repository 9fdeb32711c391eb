//! PKCE (RFC 7636) with the S256 method only: `plain` is never offered.
//!
//! [`Pkce::generate`] makes a fresh verifier from the CSPRNG for each login;
//! [`Pkce::challenge`] is what goes into the authorization URL, and the verifier goes to
//! the token endpoint with the code. [`Pkce::from_verifier`] exists for the RFC's test vector.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::Secret;
use crate::random::{RandomError, random_identifier};

/// The only challenge method SessionKit sends.
pub const CHALLENGE_METHOD: &str = "S256";

/// A PKCE pair: the secret verifier and its public S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    verifier: Secret,
    challenge: String,
}

/// A verifier outside RFC 7636's rules (43-128 unreserved characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a PKCE verifier must be 43 to 128 characters from [A-Za-z0-9-._~]")]
pub struct InvalidVerifier;

impl Pkce {
    /// A new pair with a 256-bit random verifier.
    pub fn generate() -> Result<Self, RandomError> {
        let verifier = random_identifier()?;
        let challenge = challenge_for(&verifier);
        Ok(Self { verifier, challenge })
    }

    /// A pair for a given verifier, checked against RFC 7636 section 4.1.
    pub fn from_verifier(verifier: Secret) -> Result<Self, InvalidVerifier> {
        let text = verifier.expose();
        let allowed = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        if !(43..=128).contains(&text.len()) || !text.bytes().all(allowed) {
            return Err(InvalidVerifier);
        }
        let challenge = challenge_for(&verifier);
        Ok(Self { verifier, challenge })
    }

    /// `BASE64URL(SHA256(verifier))`, sent in the authorization request.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// The verifier, sent only to the token endpoint with the code.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }
}

fn challenge_for(verifier: &Secret) -> String {
    // Exposed to hash it; the digest is public by design.
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let pkce =
            Pkce::from_verifier(Secret::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).expect("valid verifier");
        assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn generated_pairs_are_valid_and_distinct() {
        let a = Pkce::generate().expect("random");
        let b = Pkce::generate().expect("random");
        assert!(Pkce::from_verifier(a.verifier().clone()).is_ok());
        assert_ne!(a.challenge(), b.challenge());
        assert_eq!(a.challenge().len(), 43);
    }

    #[test]
    fn bad_verifiers_are_refused() {
        assert_eq!(Pkce::from_verifier(Secret::from("short")).err(), Some(InvalidVerifier));
        assert!(Pkce::from_verifier(Secret::from("a".repeat(129))).is_err());
        assert!(Pkce::from_verifier(Secret::from(format!("{}+", "a".repeat(43)))).is_err());
    }
}
