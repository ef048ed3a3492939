//! Scopes (RFC 6749 §3.3): a set of space-separated tokens, order not significant.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest scope string accepted in a request.
pub const MAX_SCOPE_LEN: usize = 2048;

/// A set of scope tokens, kept in the order first given, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    tokens: Vec<String>,
}

/// Why a scope string is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// A token holds a character outside RFC 6749's `NQCHAR` set.
    #[error("the scope holds a character that RFC 6749 section 3.3 does not allow")]
    BadCharacter,
    /// The scope string is too long.
    #[error("the scope is too long (at most {MAX_SCOPE_LEN} bytes)")]
    TooLong,
}

/// What a standard scope shares, in words for the end-user's consent page (OIDC Core
/// section 5.4, 11); `None` for a scope this provider does not know (show its name).
pub fn describe(token: &str) -> Option<&'static str> {
    Some(match token {
        "openid" => "who you are: an identifier of your account here",
        "profile" => "your name and profile: name, username, picture, birthdate, locale",
        "email" => "your email address, and whether it is verified",
        "address" => "your postal address",
        "phone" => "your phone number, and whether it is verified",
        "offline_access" => "access while you are not signed in (until you revoke it)",
        _ => return None,
    })
}

impl Scope {
    /// The `openid` scope that turns an OAuth request into an OpenID Connect one.
    pub const OPENID: &'static str = "openid";

    /// Parses a space-separated scope string; repeated tokens are kept once.
    pub fn parse(input: &str) -> Result<Self, ScopeError> {
        if input.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        let mut tokens: Vec<String> = Vec::new();
        for token in input.split(' ').filter(|t| !t.is_empty()) {
            // NQCHAR = %x21 / %x23-5B / %x5D-7E
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ScopeError::BadCharacter);
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        }
        Ok(Self { tokens })
    }

    /// A scope from tokens known to be valid (configuration, tests).
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = tokens.into_iter().map(|t| t.as_ref().to_owned()).collect();
        Self::parse(&joined.join(" "))
    }

    /// Whether the set holds `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.tokens.iter().any(|t| t == token)
    }

    /// Whether this is an OpenID Connect request (`openid` present).
    pub fn is_openid(&self) -> bool {
        self.contains(Self::OPENID)
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.tokens.iter().all(|t| other.contains(t))
    }

    /// The tokens of `self` that are not in `allowed`.
    pub fn not_in<'a>(&'a self, allowed: &'a Scope) -> impl Iterator<Item = &'a str> + 'a {
        self.tokens
            .iter()
            .filter(|t| !allowed.contains(t))
            .map(String::as_str)
    }

    /// The tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(String::as_str)
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.tokens {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_dedups() {
        let s = Scope::parse("openid  profile openid email").unwrap();
        assert_eq!(s.to_string(), "openid profile email");
        assert!(s.is_openid());
        assert_eq!(Scope::parse("a\"b"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("a\\b"), Err(ScopeError::BadCharacter));
        assert_eq!(Scope::parse("é"), Err(ScopeError::BadCharacter));
    }

    #[test]
    fn subset() {
        let a = Scope::parse("openid email").unwrap();
        let b = Scope::parse("email openid profile").unwrap();
        assert!(a.is_subset_of(&b));
        assert!(!b.is_subset_of(&a));
        assert_eq!(b.not_in(&a).collect::<Vec<_>>(), vec!["profile"]);
    }
}
