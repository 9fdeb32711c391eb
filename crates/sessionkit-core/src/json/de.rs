//! Reading: a recursive-descent parser over UTF-8 text that visits serde values as `serde_json`
//! does (objects as maps, arrays as sequences, integers as `u64`/`i64`, other numbers as `f64`,
//! strings borrowed from the input when they have no escape).

use serde::de::{self, DeserializeSeed, IntoDeserializer as _, Visitor};

use super::{Error, ErrorKind, MAX_DEPTH};

/// Reads a `T` from JSON bytes: the whole input, UTF-8, one value with optional whitespace.
pub fn from_slice<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    let text = std::str::from_utf8(input).map_err(|e| Error::at(ErrorKind::NotUtf8, e.valid_up_to()))?;
    from_str(text)
}

/// Reads a `T` from JSON text (see [`from_slice`]).
pub fn from_str<'de, T: de::Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    let mut parser = Parser { text, pos: 0, depth: 0, scratch: String::new() };
    let value = T::deserialize(&mut parser).map_err(|e| parser.locate(e))?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(parser.error(ErrorKind::TrailingData));
    }
    Ok(value)
}

struct Parser<'de> {
    text: &'de str,
    pos: usize,
    depth: usize,
    /// A string with escapes, unescaped (the last one read).
    scratch: String,
}

/// A string as read: borrowed from the input, or unescaped into the scratch buffer.
enum Text<'de, 's> {
    Borrowed(&'de str),
    Copied(&'s str),
}

/// One value's start, read by [`Parser::token`]: a scalar, or an array or object entered.
enum Token<'de, 's> {
    Null,
    Bool(bool),
    Text(Text<'de, 's>),
    Number(Number),
    Array,
    Object,
}

enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'de> Parser<'de> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn error(&self, kind: ErrorKind) -> Error {
        Error::at(kind, self.pos)
    }

    /// A serde hook's error gets the position the parser reached.
    fn locate(&self, error: Error) -> Error {
        match error.offset() {
            Some(_) => error,
            None => Error::at(error.kind(), self.pos),
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace (not consumed); the end of the input is an error.
    #[inline(never)]
    fn next_non_ws(&mut self) -> Result<u8, Error> {
        self.skip_whitespace();
        self.peek().ok_or_else(|| self.error(ErrorKind::Syntax))
    }

    #[inline(never)]
    fn expect(&mut self, byte: u8) -> Result<(), Error> {
        if self.next_non_ws()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(ErrorKind::Syntax))
        }
    }

    #[inline(never)]
    fn literal(&mut self, word: &str) -> Result<(), Error> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error(ErrorKind::Syntax))
        }
    }

    /// Into an array or object (at its opening bracket, which is consumed).
    #[inline(never)]
    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep));
        }
        self.pos += 1;
        Ok(())
    }

    /// Out of an array or object: its closing bracket.
    #[inline(never)]
    fn leave(&mut self, closing: u8) -> Result<(), Error> {
        self.expect(closing)?;
        self.depth -= 1;
        Ok(())
    }

    /// A string, at its opening quote.
    #[inline(never)]
    fn string(&mut self) -> Result<Text<'de, '_>, Error> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(ErrorKind::Syntax)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Borrowed(&self.text[start..self.pos - 1]));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return Err(self.error(ErrorKind::BadString)),
                Some(_) => self.pos += 1,
            }
        }
        // Positions only ever stop on ASCII bytes here, so every slice is on a char boundary.
        self.scratch.clear();
        self.scratch.push_str(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.error(ErrorKind::Syntax)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Copied(&self.scratch));
                }
                Some(b'\\') => {
                    let unescaped = self.escape()?;
                    self.scratch.push(unescaped);
                }
                Some(0..=0x1f) => return Err(self.error(ErrorKind::BadString)),
                Some(_) => {
                    let run = self.pos;
                    while matches!(self.peek(), Some(byte) if byte != b'"' && byte != b'\\' && byte >= 0x20) {
                        self.pos += 1;
                    }
                    self.scratch.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    /// One escape, at its backslash.
    fn escape(&mut self) -> Result<char, Error> {
        self.pos += 1;
        let Some(kind) = self.peek() else { return Err(self.error(ErrorKind::Syntax)) };
        self.pos += 1;
        Ok(match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => return Err(self.error(ErrorKind::BadString)),
        })
    }

    /// `\uXXXX`, after the `u`: a surrogate pair makes one char; a lone surrogate is refused.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with("\\u") {
                    return Err(self.error(ErrorKind::BadString));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error(ErrorKind::BadString));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error(ErrorKind::BadString)),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error(ErrorKind::BadString))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self.text.as_bytes().get(self.pos..self.pos + 4).ok_or_else(|| self.error(ErrorKind::Syntax))?;
        let mut value = 0;
        for &digit in digits {
            let nibble = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return Err(self.error(ErrorKind::BadString)),
            };
            value = value * 16 + u32::from(nibble);
        }
        self.pos += 4;
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, at its first character. As `serde_json`: an integer is a `u64`, or an `i64`
    /// when negative; `-0`, a negative beyond `i64`, a fraction or an exponent make an `f64`,
    /// and so does an integer beyond `u64`; an infinite value is refused.
    #[inline(never)]
    fn number(&mut self) -> Result<Number, Error> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error(ErrorKind::BadNumber)),
        }
        let integer_end = self.pos;
        let mut whole = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(ErrorKind::BadNumber));
            }
            whole = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(ErrorKind::BadNumber));
            }
            whole = false;
        }
        if whole {
            let magnitude = &self.text[start + usize::from(negative)..integer_end];
            if let Ok(magnitude) = magnitude.parse::<u64>() {
                if !negative {
                    return Ok(Number::U64(magnitude));
                }
                #[allow(clippy::cast_possible_wrap)] // wraps on purpose: i64::MIN's magnitude
                let value = (magnitude as i64).wrapping_neg();
                if value < 0 {
                    return Ok(Number::I64(value));
                }
            }
        }
        match self.text[start..self.pos].parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Number::F64(value)),
            _ => Err(Error::at(ErrorKind::BadNumber, start)),
        }
    }

    /// The next value's start: scalars whole, arrays and objects entered (their `[` or `{`
    /// consumed). Not generic, so that each type's `deserialize_any` is a small dispatch.
    #[inline(never)]
    fn token(&mut self) -> Result<Token<'de, '_>, Error> {
        Ok(match self.next_non_ws()? {
            b'n' => {
                self.literal("null")?;
                Token::Null
            }
            b't' => {
                self.literal("true")?;
                Token::Bool(true)
            }
            b'f' => {
                self.literal("false")?;
                Token::Bool(false)
            }
            b'"' => Token::Text(self.string()?),
            b'-' | b'0'..=b'9' => Token::Number(self.number()?),
            b'[' => {
                self.enter()?;
                Token::Array
            }
            b'{' => {
                self.enter()?;
                Token::Object
            }
            _ => return Err(self.error(ErrorKind::Syntax)),
        })
    }

    /// Reads past one value, keeping nothing (an unknown field's).
    #[inline(never)]
    fn skip_value(&mut self) -> Result<(), Error> {
        match self.next_non_ws()? {
            b'n' => self.literal("null"),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            open @ (b'[' | b'{') => {
                self.enter()?;
                let closing = if open == b'[' { b']' } else { b'}' };
                let mut first = true;
                while self.next_non_ws()? != closing {
                    if !first {
                        self.expect(b',')?;
                    }
                    first = false;
                    if open == b'{' {
                        if self.next_non_ws()? != b'"' {
                            return Err(self.error(ErrorKind::Syntax));
                        }
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip_value()?;
                }
                self.leave(closing)
            }
            _ => Err(self.error(ErrorKind::Syntax)),
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Parser<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.token()? {
            Token::Null => visitor.visit_unit(),
            Token::Bool(value) => visitor.visit_bool(value),
            Token::Text(Text::Borrowed(text)) => visitor.visit_borrowed_str(text),
            Token::Text(Text::Copied(text)) => visitor.visit_str(text),
            Token::Number(Number::U64(value)) => visitor.visit_u64(value),
            Token::Number(Number::I64(value)) => visitor.visit_i64(value),
            Token::Number(Number::F64(value)) => visitor.visit_f64(value),
            Token::Array => {
                let value = visitor.visit_seq(Elements { parser: self, first: true })?;
                self.leave(b']')?;
                Ok(value)
            }
            Token::Object => {
                let value = visitor.visit_map(Entries { parser: self, first: true })?;
                self.leave(b'}')?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.next_non_ws()? == b'n' {
            self.literal("null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.next_non_ws()? {
            // A unit variant: its name.
            b'"' => match self.string()? {
                Text::Borrowed(name) => visitor.visit_enum(name.into_deserializer()),
                Text::Copied(name) => visitor.visit_enum(name.into_deserializer()),
            },
            // Any other variant: `{"name": value}`.
            b'{' => {
                self.enter()?;
                let value = visitor.visit_enum(Variant { parser: self })?;
                self.leave(b'}')?;
                Ok(value)
            }
            _ => Err(self.error(ErrorKind::WrongType)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip_value()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// The elements of an array, after its `[`.
struct Elements<'a, 'de> {
    parser: &'a mut Parser<'de>,
    first: bool,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.parser.next_non_ws()? {
            b']' => return Ok(None),
            b',' if !self.first => self.parser.pos += 1,
            _ if self.first => {}
            _ => return Err(self.parser.error(ErrorKind::Syntax)),
        }
        self.first = false;
        seed.deserialize(&mut *self.parser).map(Some)
    }
}

/// The members of an object, after its `{`.
struct Entries<'a, 'de> {
    parser: &'a mut Parser<'de>,
    first: bool,
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.parser.next_non_ws()? {
            b'}' => return Ok(None),
            b',' if !self.first => self.parser.pos += 1,
            _ if self.first => {}
            _ => return Err(self.parser.error(ErrorKind::Syntax)),
        }
        self.first = false;
        seed.deserialize(Key { parser: &mut *self.parser }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.parser.expect(b':')?;
        seed.deserialize(&mut *self.parser)
    }
}

/// `{"name": value}`, after its `{`: the variant's name, then its content.
struct Variant<'a, 'de> {
    parser: &'a mut Parser<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let name = seed.deserialize(Key { parser: &mut *self.parser })?;
        self.parser.expect(b':')?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self.parser)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.parser)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(self.parser, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(self.parser, visitor)
    }
}

/// An object's key: a string, whatever type reads it.
struct Key<'a, 'de> {
    parser: &'a mut Parser<'de>,
}

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.parser.next_non_ws()? != b'"' {
            return Err(self.parser.error(ErrorKind::Syntax));
        }
        match self.parser.string()? {
            Text::Borrowed(text) => visitor.visit_borrowed_str(text),
            Text::Copied(text) => visitor.visit_str(text),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}
