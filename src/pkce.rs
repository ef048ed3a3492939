//! Proof Key for Code Exchange (RFC 7636): checking challenges and verifiers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::effect::{PkceChallenge, PkceMethod};

/// Whether `s` is 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
pub fn is_valid_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `s` can be a challenge for `method`: a verifier's syntax for plain, and exactly
/// the base64url of a SHA-256 digest (43 characters) for S256.
pub fn is_valid_challenge(s: &str, method: PkceMethod) -> bool {
    match method {
        PkceMethod::Plain => is_valid_verifier(s),
        PkceMethod::S256 => s.len() == 43 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|d| d.len() == 32),
    }
}

/// The S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))).
pub fn s256_challenge(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Whether `verifier` answers `challenge`, compared in constant time.
pub fn verify(challenge: &PkceChallenge, verifier: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    let computed = match challenge.method {
        PkceMethod::S256 => s256_challenge(verifier),
        PkceMethod::Plain => verifier.to_owned(),
    };
    computed.len() == challenge.challenge.len()
        && bool::from(computed.as_bytes().ct_eq(challenge.challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let c = PkceChallenge {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: PkceMethod::S256,
        };
        assert!(verify(&c, verifier));
        assert!(!verify(&c, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
        assert!(!verify(&c, "short"));
    }

    #[test]
    fn syntax() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_challenge(&"a".repeat(44), PkceMethod::S256));
    }
}
