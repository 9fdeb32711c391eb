//! Unpredictable values from the operating system's CSPRNG (`getrandom`; WebCrypto on the web).
//!
//! Every identifier that protects a login (PKCE verifier, `state`, `nonce`) and the
//! session's own id come from here: 32 random bytes, base64url without padding.
//! What can go wrong: the OS refuses randomness (very early boot, a sandbox); that is a
//! typed [`RandomError`], never a weaker fallback.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Secret;

/// Bytes of entropy in each generated identifier (256 bits, 43 characters encoded).
pub(crate) const IDENTIFIER_BYTES: usize = 32;

/// The OS random source failed; nothing was generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator is unavailable")]
pub struct RandomError;

/// Fills `bytes` from the CSPRNG (the driver's key material: a DPoP key natively).
pub fn fill_random(bytes: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(bytes).map_err(|_| RandomError)
}

/// 32 CSPRNG bytes, base64url-encoded: 43 characters from the unreserved set.
pub(crate) fn random_identifier() -> Result<Secret, RandomError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; IDENTIFIER_BYTES]);
    getrandom::fill(bytes.as_mut()).map_err(|_| RandomError)?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_43_unreserved_chars_and_differ() {
        let a = random_identifier().expect("random");
        let b = random_identifier().expect("random");
        assert_eq!(a.len(), 43);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.expose(), b.expose());
    }
}
