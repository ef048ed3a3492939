//! Reading `application/x-www-form-urlencoded` parameters (query strings and form bodies)
//! with the rules of RFC 6749 §3.1: no repeats, and an empty value counts as absent.

use crate::error::ParseError;

/// Most parameters one request may carry; a real request has fewer than 25.
pub const MAX_PARAMETERS: usize = 64;

/// Decoded parameters of one request, in the order they were sent.
///
/// Each name appears at most once: [`Params::parse`] rejects repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses form-urlencoded bytes of at most `limit` bytes.
    ///
    /// Parameters with an empty value are dropped before the repeat check, because
    /// RFC 6749 §3.1 says they "MUST be treated as if they were omitted".
    pub fn parse(input: &[u8], limit: usize) -> Result<Self, ParseError> {
        let (params, repeated) = Self::parse_lenient(input, limit)?;
        match repeated {
            Some(name) => Err(ParseError::Repeated(name)),
            None => Ok(params),
        }
    }

    /// Like [`Params::parse`], but a repeated parameter is reported beside the result
    /// (first value kept) instead of failing, so the caller can decide where the error goes.
    pub fn parse_lenient(input: &[u8], limit: usize) -> Result<(Self, Option<String>), ParseError> {
        if input.len() > limit {
            return Err(ParseError::TooLarge {
                len: input.len(),
                limit,
            });
        }
        // Count separators before decoding so a flood of `&` cannot make us allocate.
        let separators = input.iter().filter(|&&b| b == b'&').count();
        if separators >= MAX_PARAMETERS * 4 {
            return Err(ParseError::TooManyParameters {
                limit: MAX_PARAMETERS,
            });
        }
        if std::str::from_utf8(input).is_err() {
            return Err(ParseError::Malformed);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut repeated = None;
        // `name=value` pairs split on `&`, as the WHATWG urlencoded parser does; decoding is
        // strict, so bytes that are not UTF-8 fail instead of becoming U+FFFD (a real U+FFFD,
        // sent as `%EF%BF%BD`, is a character like any other).
        for pair in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => {
                    let (name, rest) = pair.split_at(at);
                    (name, rest.get(1..).unwrap_or_default())
                }
                None => (pair, &[][..]),
            };
            let value = decode_component(value)?;
            if value.is_empty() {
                continue;
            }
            let name = decode_component(name)?;
            if pairs.iter().any(|(n, _)| *n == name) {
                repeated.get_or_insert_with(|| truncate_name(&name));
                continue;
            }
            if pairs.len() == MAX_PARAMETERS {
                return Err(ParseError::TooManyParameters {
                    limit: MAX_PARAMETERS,
                });
            }
            pairs.push((name, value));
        }
        Ok((Self { pairs }, repeated))
    }

    /// The value of `name`, if it was sent with a non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Removes and returns the value of `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(at).1)
    }

    /// Removes `name` and checks its value is at most `limit` bytes long.
    pub fn take_limited(
        &mut self,
        name: &'static str,
        limit: usize,
    ) -> Result<Option<String>, ParseError> {
        match self.take(name) {
            Some(v) if v.len() > limit => Err(ParseError::ValueTooLong { name, limit }),
            other => Ok(other),
        }
    }

    /// Reads the parameters left into an endpoint's typed form through serde_urlencoded.
    ///
    /// [`Params::parse`] decided what the request says (strict UTF-8, no repeats, an empty
    /// value absent, size limits); serde_urlencoded maps those pairs onto `T`, so its lossy
    /// decoding of bytes that are not UTF-8 can never be reached. Parameters `T` does not
    /// name are ignored (RFC 6749 §3.2).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ParseError> {
        let encoded =
            serde_urlencoded::to_string(&self.pairs).map_err(|_| ParseError::Malformed)?;
        serde_urlencoded::from_str(&encoded).map_err(|e| ParseError::Form(e.to_string()))
    }

    /// The parameters left, in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no parameter was sent.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte, and the bytes must
/// be UTF-8.
fn decode_component(raw: &[u8]) -> Result<String, ParseError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ParseError::Malformed)
}

/// Error messages echo a parameter name; keep an attacker's name short and printable.
fn truncate_name(name: &str) -> String {
    name.chars()
        .take(40)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Encodes `pairs` as `application/x-www-form-urlencoded`.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    // A sequence of string pairs always serializes; the empty fallback is unreachable.
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let p = Params::parse(b"a=b+c&d=%2F%20", 100).unwrap();
        assert_eq!(p.get("a"), Some("b c"));
        assert_eq!(p.get("d"), Some("/ "));
    }

    #[test]
    fn repeated_is_an_error_and_empty_is_absent() {
        assert_eq!(
            Params::parse(b"a=1&a=2", 100),
            Err(ParseError::Repeated("a".into()))
        );
        let p = Params::parse(b"a=&a=2&b=", 100).unwrap();
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), None);
    }

    #[test]
    fn typed_forms_read_what_parse_decided() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Form {
            token: String,
            token_type_hint: Option<String>,
        }
        let p = Params::parse(b"token=a%2Bb+c&token_type_hint=&other=x", 100).unwrap();
        assert_eq!(
            p.deserialize::<Form>().unwrap(),
            Form {
                token: "a+b c".into(),
                token_type_hint: None
            }
        );
        let p = Params::parse(b"token_type_hint=refresh_token", 100).unwrap();
        assert_eq!(
            p.deserialize::<Form>().unwrap_err(),
            ParseError::Form("missing field `token`".into())
        );
        assert_eq!(encode([("a", "b c"), ("d", "/&=")]), "a=b+c&d=%2F%26%3D");
    }

    #[test]
    fn limits() {
        assert!(matches!(
            Params::parse(&[b'a'; 101], 100),
            Err(ParseError::TooLarge { .. })
        ));
        let many: String = (0..65).map(|i| format!("p{i}=v&")).collect();
        assert!(matches!(
            Params::parse(many.as_bytes(), 10_000),
            Err(ParseError::TooManyParameters { .. })
        ));
        assert_eq!(Params::parse(b"a=%FF", 100), Err(ParseError::Malformed));
        assert_eq!(Params::parse(b"%C3=1", 100), Err(ParseError::Malformed));
        // A real U+FFFD is a character, not a decoding failure (found by fuzz/redirect_uri).
        let p = Params::parse(b"a=%EF%BF%BD&%EF%BF%BD=b", 100).unwrap();
        assert_eq!(p.get("a"), Some("\u{FFFD}"));
        assert_eq!(p.get("\u{FFFD}"), Some("b"));
        assert_eq!(
            Params::parse(&[0xff, b'='], 100),
            Err(ParseError::Malformed)
        );
    }
}
