//! SessionKit's JSON: RFC 8259 text to and from serde types, for every document the core and
//! the driver read or write (token responses, ID tokens, discovery, JWKS, stored records).
//!
//! Why not `serde_json`: in the browser build it was 13.5% of the code, plus 17 KB of float
//! printing that only its error messages reach (`invalid type: floating point ...`). This layer
//! keeps serde's derives (the types are unchanged) and replaces the format: a parser that visits
//! values as `serde_json` does (so the same inputs are accepted and refused, which a differential
//! test checks), and a writer of compact JSON byte for byte like `serde_json::to_string`. Its
//! errors carry a kind, a byte offset and at most a field name from the schema: never text from
//! the input, so no token can reach a message, and no formatting machinery is linked.
//!
//! Limits: nesting deeper than [`MAX_DEPTH`] is refused; numbers are `u64`, `i64` or `f64` as in
//! `serde_json` (an integer too large for 64 bits is read as a float, an infinite float is
//! refused); floats are never written (no stored or sent document has one).

mod de;
mod ser;

pub use de::{from_slice, from_str};
pub use ser::to_string;

/// The deepest nesting of arrays and objects read (as `serde_json`'s recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Why a document was not read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    /// The byte offset in the input where it was found (reading only).
    offset: Option<usize>,
}

/// What went wrong, without any text of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not JSON here (an unexpected character, or the text ends too soon).
    Syntax,
    /// Not UTF-8.
    NotUtf8,
    /// A string with a raw control character, a bad escape or a lone surrogate.
    BadString,
    /// A number outside the grammar or the range of a float.
    BadNumber,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something follows the value.
    TrailingData,
    /// A value of another type than the field's.
    WrongType,
    /// A value the type refuses (a length, a variant, a value its own rules refuse).
    Invalid,
    /// A required field is absent.
    MissingField(&'static str),
    /// A field appears twice.
    DuplicateField(&'static str),
    /// Something this writer does not write (a float, a map key that is not a string).
    Unsupported,
}

impl Error {
    pub(crate) fn at(kind: ErrorKind, offset: usize) -> Self {
        Self { kind, offset: Some(offset) }
    }

    pub(crate) fn kind_only(kind: ErrorKind) -> Self {
        Self { kind, offset: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where in the input (a byte offset), when reading.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            ErrorKind::Syntax => "not valid JSON",
            ErrorKind::NotUtf8 => "not UTF-8 text",
            ErrorKind::BadString => "a malformed string",
            ErrorKind::BadNumber => "a malformed or out-of-range number",
            ErrorKind::TooDeep => "nested too deeply",
            ErrorKind::TrailingData => "data after the JSON value",
            ErrorKind::WrongType => "a value of the wrong type",
            ErrorKind::Invalid => "a value that is not allowed",
            ErrorKind::MissingField(field) => return write!(f, "the field {field} is missing"),
            ErrorKind::DuplicateField(field) => return write!(f, "the field {field} appears twice"),
            ErrorKind::Unsupported => "a value JSON here cannot hold",
        };
        f.write_str(what)?;
        match self.offset {
            Some(offset) => write!(f, " (at byte {offset})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

// serde's hooks: each keeps the kind (and a field name, a `&'static str` of the schema) and
// drops the message, so that no formatting code is reached and no input text is kept.
impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Self::kind_only(ErrorKind::Invalid)
    }

    fn invalid_type(_unexpected: serde::de::Unexpected<'_>, _expected: &dyn serde::de::Expected) -> Self {
        Self::kind_only(ErrorKind::WrongType)
    }

    fn invalid_value(_unexpected: serde::de::Unexpected<'_>, _expected: &dyn serde::de::Expected) -> Self {
        Self::kind_only(ErrorKind::Invalid)
    }

    fn invalid_length(_len: usize, _expected: &dyn serde::de::Expected) -> Self {
        Self::kind_only(ErrorKind::Invalid)
    }

    fn unknown_variant(_variant: &str, _expected: &'static [&'static str]) -> Self {
        Self::kind_only(ErrorKind::Invalid)
    }

    fn unknown_field(_field: &str, _expected: &'static [&'static str]) -> Self {
        Self::kind_only(ErrorKind::Invalid)
    }

    fn missing_field(field: &'static str) -> Self {
        Self::kind_only(ErrorKind::MissingField(field))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::kind_only(ErrorKind::DuplicateField(field))
    }
}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Self::kind_only(ErrorKind::Unsupported)
    }
}

#[cfg(test)]
mod tests;
