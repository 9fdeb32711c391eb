//! Secrets: tokens, codes, verifiers and anything else that must never leak.
//!
//! [`Secret`] wraps a string that is a credential. Its `Debug` and `Display` print
//! `[redacted]`, it is zeroized when dropped, and the only way to read it is
//! [`Secret::expose`], which every caller documents with a comment saying why.
//! It serializes as a plain JSON string because the persisted session record and the
//! token endpoint's responses carry tokens; the bytes produced that way are themselves
//! secret and are kept in a [`Secret`] too.
//!
//! What can go wrong: a copy made with `expose().to_owned()` is not zeroized; don't.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A credential held as text: redacted in `Debug`/`Display`, zeroized on drop.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Takes ownership of `value`; the string's buffer is zeroized when the secret drops.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret's text. Call sites say why they need it (sending it, storing it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret: used for size limits).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares two secrets in time that does not depend on where they differ.
    pub fn constant_time_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// Equality in constant time (see [`Secret::constant_time_eq`]): `==` on secrets never leaks
/// where they differ.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.constant_time_eq(other.expose())
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Only the session record and request bodies serialize secrets, and both are
        // kept inside a `Secret` themselves.
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let secret = Secret::from("eyJhbGciOiJSUzI1NiJ9.top-secret");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{secret:#?}").contains("top-secret"));
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        let secret = Secret::from("abc");
        assert!(secret.constant_time_eq("abc"));
        assert!(!secret.constant_time_eq("abd"));
        assert!(!secret.constant_time_eq("ab"));
        assert!(!secret.constant_time_eq("abcd"));
    }

    #[test]
    fn zeroize_clears_the_text() {
        let mut secret = Secret::from("refresh-token");
        secret.zeroize();
        assert!(secret.is_empty());
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let secret = Secret::from("tok");
        let json = serde_json::to_string(&secret).expect("serialize");
        assert_eq!(json, "\"tok\"");
        let back: Secret = serde_json::from_str(&json).expect("deserialize");
        assert!(back.constant_time_eq("tok"));
    }
}
