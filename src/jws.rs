//! JWS compact serialization (RFC 7515) for ID tokens and the hints that come back to us.
//!
//! Only what the provider needs: one signature, a fixed small header, and a verifier that
//! rejects `none`, unknown algorithms, critical extensions and algorithm confusion.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::keys::{Algorithm, KeyError, PublicEcKey, SigningKey, hmac_sign, hmac_verify};

/// Largest compact JWS [`decode_verify`] accepts; ID tokens are far smaller.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Which key signs: one of the provider's keys, or a client's secret for HS*.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// A provider key; its kid goes into the header.
    Key(&'a SigningKey),
    /// A client secret (its bytes as given) for HS256/384/512; no kid in the header.
    Hmac {
        /// Must be HS256, HS384 or HS512.
        alg: Algorithm,
        /// The client secret's bytes.
        secret: &'a [u8],
    },
}

impl fmt::Debug for Signer<'_> {
    // The secret must never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => f.debug_tuple("Key").field(key).finish(),
            Self::Hmac { alg, .. } => f
                .debug_struct("Hmac")
                .field("alg", alg)
                .finish_non_exhaustive(),
        }
    }
}

impl Signer<'_> {
    /// The algorithm this signer signs and verifies with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Key(key) => key.algorithm(),
            Self::Hmac { alg, .. } => *alg,
        }
    }

    /// The kid for the header: the key's kid, or none for a client secret.
    pub fn kid(&self) -> Option<&str> {
        match self {
            Self::Key(key) => Some(key.kid()),
            Self::Hmac { .. } => None,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Key(key) => key.sign(message),
            Self::Hmac { alg, secret } => hmac_sign(*alg, secret, message),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Key(key) => key.verify(message, signature),
            Self::Hmac { alg, secret } => hmac_verify(*alg, secret, message, signature),
        }
    }

    /// Upper bound of the signature length, to size the token buffer once.
    fn signature_len(&self) -> usize {
        match self {
            Self::Key(key) => key.signature_len(),
            Self::Hmac { .. } => 64,
        }
    }
}

/// Why a JWS could not be produced or accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token too large")]
    TooLarge,
    /// The token is not a well-formed compact JWS; the text says which part is wrong.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not one we accept (this includes `none`).
    #[error("unsupported JWS algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// No key matches the header's alg and kid.
    #[error("no key for this token")]
    UnknownKey,
    /// The resolved key is for a different algorithm than the header names.
    #[error("header alg {header} does not match the key's alg {key}")]
    AlgorithmMismatch {
        /// The alg named in the token header.
        header: Algorithm,
        /// The alg of the key the resolver chose.
        key: Algorithm,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Signing failed or the key cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The claims could not be serialized, or the verified payload is not a JSON object.
    #[error("claims JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A decoded, signature-checked JWS: its header alg/kid and the claims object.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The header's algorithm (equal to the verifying key's).
    pub alg: Algorithm,
    /// The header's kid, if any.
    pub kid: Option<String>,
    /// The payload, a JSON object.
    pub claims: Map<String, Value>,
}

#[derive(serde::Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

/// Signs `claims` as a compact JWS with header `{"alg":..,"typ":"JWT","kid":..}`
/// (no kid for HMAC).
pub fn encode<T: serde::Serialize>(claims: &T, signer: &Signer<'_>) -> Result<String, JwsError> {
    encode_with_typ(claims, signer, "JWT")
}

/// Like [`encode`] with another `typ`, e.g. `logout+jwt` (back-channel logout) or `at+jwt`.
pub fn encode_with_typ<T: serde::Serialize>(
    claims: &T,
    signer: &Signer<'_>,
    typ: &str,
) -> Result<String, JwsError> {
    let header = serde_json::to_vec(&Header {
        alg: signer.algorithm().as_str(),
        typ,
        kid: signer.kid(),
    })?;
    let payload = serde_json::to_vec(claims)?;
    // RFC 7519 §7.1: the claims set is a JSON object; anything else is a caller bug.
    if payload.first() != Some(&b'{') {
        return Err(JwsError::Malformed(
            "claims must serialize to a JSON object",
        ));
    }
    let capacity = b64_len(header.len())
        .saturating_add(b64_len(payload.len()))
        .saturating_add(b64_len(signer.signature_len()))
        .saturating_add(2);
    let mut token = String::with_capacity(capacity);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Parses a compact JWS and checks its signature with the signer `resolve(alg, kid)` returns.
///
/// At most [`MAX_TOKEN_LEN`] bytes, three unpadded base64url segments, a JSON-object header
/// whose `alg` is one of ours; the signer's algorithm must equal the header's.
pub fn decode_verify<'k>(
    token: &str,
    resolve: impl FnOnce(Algorithm, Option<&str>) -> Option<Signer<'k>>,
) -> Result<Verified, JwsError> {
    decode_verify_with(token, resolve)
}

/// As [`decode_verify`], with someone else's public key: the one `resolve(alg, kid)`
/// returns (a client's registered ES* key, for what jsonwebtoken cannot verify).
pub fn decode_verify_public<'k>(
    token: &str,
    resolve: impl FnOnce(Algorithm, Option<&str>) -> Option<&'k PublicEcKey>,
) -> Result<Verified, JwsError> {
    decode_verify_with(token, resolve)
}

/// What checks a signature: a provider key or client secret, or a public key.
trait VerifyingKey {
    fn algorithm(&self) -> Algorithm;
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

impl VerifyingKey for Signer<'_> {
    fn algorithm(&self) -> Algorithm {
        Signer::algorithm(self)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        Signer::verify(self, message, signature)
    }
}

impl VerifyingKey for &PublicEcKey {
    fn algorithm(&self) -> Algorithm {
        PublicEcKey::algorithm(self)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        PublicEcKey::verify(self, message, signature)
    }
}

fn decode_verify_with<K: VerifyingKey>(
    token: &str,
    resolve: impl FnOnce(Algorithm, Option<&str>) -> Option<K>,
) -> Result<Verified, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwsError::Malformed("expected three dot-separated segments"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwsError::Malformed("header is not unpadded base64url"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwsError::Malformed("header is not a JSON object"))?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Algorithm::from_name(name)
            .ok_or_else(|| JwsError::UnsupportedAlgorithm(name.clone()))?,
        Some(_) => return Err(JwsError::Malformed("header alg is not a string")),
        None => return Err(JwsError::Malformed("header has no alg")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(JwsError::Malformed("header kid is not a string")),
    };
    // RFC 7515 §4.1.11: we implement no extensions, so any critical one must be refused.
    if header.contains_key("crit") {
        return Err(JwsError::Malformed("unsupported crit header"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwsError::Malformed("signature is not unpadded base64url"))?;
    if signature.is_empty() {
        return Err(JwsError::Malformed("empty signature"));
    }
    let signer = resolve(alg, kid).ok_or(JwsError::UnknownKey)?;
    if signer.algorithm() != alg {
        return Err(JwsError::AlgorithmMismatch {
            header: alg,
            key: signer.algorithm(),
        });
    }
    let signing_input_len = header_b64
        .len()
        .saturating_add(1)
        .saturating_add(payload_b64.len());
    let signing_input = token
        .as_bytes()
        .get(..signing_input_len)
        .ok_or(JwsError::Malformed("truncated token"))?;
    if !signer.verify(signing_input, &signature) {
        return Err(JwsError::BadSignature);
    }
    // The payload is only parsed once we know who wrote it.
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwsError::Malformed("payload is not unpadded base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)?;
    Ok(Verified {
        alg,
        kid: kid.map(str::to_owned),
        claims,
    })
}

fn b64_len(bytes: usize) -> usize {
    bytes.div_ceil(3).saturating_mul(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/", $name))
        };
    }

    const SECRET: &[u8] = b"a client secret long enough for HS512, at 64+ bytes of key material";

    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        exp: i64,
        nonce: &'a str,
    }

    const CLAIMS: Claims<'static> = Claims {
        iss: "https://op.example",
        sub: "248289761001",
        aud: "s6BhdRkqt3",
        exp: 1_311_281_970,
        nonce: "n-0S6_WzA2Mj \u{e9}\"",
    };

    fn key_for(alg: Algorithm) -> SigningKey {
        let pem: &[u8] = match alg {
            Algorithm::ES256 => fixture!("p256.pem"),
            Algorithm::ES384 => fixture!("p384.pem"),
            Algorithm::ES512 => fixture!("p521.pem"),
            Algorithm::EdDSA => fixture!("ed25519.pem"),
            _ => fixture!("rsa2048.pem"),
        };
        SigningKey::from_pem(pem, alg, None).unwrap()
    }

    fn decode_segment(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    /// Signs `header` and `payload` as given, to craft tokens `encode` would never make.
    fn craft(header: &str, payload: &str, signer: &Signer<'_>) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn round_trip_every_algorithm() {
        for alg in Algorithm::ALL {
            let key;
            let signer = if alg.is_symmetric() {
                Signer::Hmac {
                    alg,
                    secret: SECRET,
                }
            } else {
                key = key_for(alg);
                Signer::Key(&key)
            };
            let token = encode(&CLAIMS, &signer).unwrap();
            let segments: Vec<&str> = token.split('.').collect();
            assert_eq!(segments.len(), 3);
            let header = decode_segment(segments[0]);
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["typ"], "JWT");
            match signer.kid() {
                Some(kid) => assert_eq!(header["kid"], kid),
                None => assert!(header.get("kid").is_none()),
            }
            let mut seen = None;
            let verified = decode_verify(&token, |a, kid| {
                seen = Some((a, kid.map(str::to_owned)));
                Some(signer)
            })
            .unwrap();
            assert_eq!(seen, Some((alg, signer.kid().map(str::to_owned))));
            assert_eq!(verified.alg, alg);
            assert_eq!(verified.kid.as_deref(), signer.kid());
            assert_eq!(verified.claims["sub"], "248289761001");
            assert_eq!(verified.claims["nonce"], CLAIMS.nonce);
            assert_eq!(verified.claims["exp"], 1_311_281_970);
        }
    }

    #[test]
    fn header_bytes_are_exact() {
        let key = key_for(Algorithm::ES256);
        let token = encode(&CLAIMS, &Signer::Key(&key)).unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid())
        );
        let signer = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: SECRET,
        };
        let token = encode_with_typ(&CLAIMS, &signer, "logout+jwt").unwrap();
        let header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"logout+jwt"}"#);
    }

    #[test]
    fn encode_rejects_non_object_claims_and_bad_hmac_alg() {
        let key = key_for(Algorithm::RS256);
        assert!(matches!(
            encode(&[1, 2, 3], &Signer::Key(&key)),
            Err(JwsError::Malformed(_))
        ));
        assert!(matches!(
            encode(&"claims", &Signer::Key(&key)),
            Err(JwsError::Malformed(_))
        ));
        let bad = Signer::Hmac {
            alg: Algorithm::RS256,
            secret: SECRET,
        };
        assert!(matches!(encode(&CLAIMS, &bad), Err(JwsError::Key(_))));
        let empty = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: b"",
        };
        assert!(matches!(encode(&CLAIMS, &empty), Err(JwsError::Key(_))));
    }

    #[test]
    fn tampering_is_detected() {
        for alg in [
            Algorithm::RS256,
            Algorithm::PS384,
            Algorithm::ES512,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ] {
            let key;
            let signer = if alg.is_symmetric() {
                Signer::Hmac {
                    alg,
                    secret: SECRET,
                }
            } else {
                key = key_for(alg);
                Signer::Key(&key)
            };
            let token = encode(&CLAIMS, &signer).unwrap();
            let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
            let tampered = format!("{h}.{forged}.{s}");
            assert!(
                matches!(
                    decode_verify(&tampered, |_, _| Some(signer)),
                    Err(JwsError::BadSignature)
                ),
                "{alg}"
            );
            // A signature from another key of the same alg must not verify either.
            if alg.is_symmetric() {
                let other = Signer::Hmac {
                    alg,
                    secret: b"another secret",
                };
                assert!(matches!(
                    decode_verify(&token, |_, _| Some(other)),
                    Err(JwsError::BadSignature)
                ));
            } else {
                let (other, _) = SigningKey::generate(alg, Some(signer.kid().unwrap())).unwrap();
                assert!(
                    matches!(
                        decode_verify(&token, |_, _| Some(Signer::Key(&other))),
                        Err(JwsError::BadSignature)
                    ),
                    "{alg}"
                );
            }
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let key = key_for(Algorithm::ES256);
        for signer in [
            Signer::Key(&key),
            Signer::Hmac {
                alg: Algorithm::HS256,
                secret: SECRET,
            },
        ] {
            let token = encode(&CLAIMS, &signer).unwrap();
            for i in 0..token.len() {
                for replacement in ['A', 'f', '_', '-', '.', '=', '+', '/', ' ', '\u{e9}'] {
                    let mut changed = String::with_capacity(token.len() + 2);
                    changed.push_str(&token[..i]);
                    changed.push(replacement);
                    changed.push_str(&token[i + 1..]);
                    if changed == token {
                        continue;
                    }
                    assert!(
                        decode_verify(&changed, |_, _| Some(signer)).is_err(),
                        "{i} {replacement}"
                    );
                }
            }
            // Appending or dropping characters, too.
            assert!(decode_verify(&format!("{token}A"), |_, _| Some(signer)).is_err());
            assert!(decode_verify(&token[..token.len() - 1], |_, _| Some(signer)).is_err());
            assert!(decode_verify(&token[1..], |_, _| Some(signer)).is_err());
        }
    }

    #[test]
    fn alg_none_is_rejected() {
        let key = key_for(Algorithm::RS256);
        for name in ["none", "None", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{name}","typ":"JWT"}}"#));
            let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
            for token in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}.c2ln"),
            ] {
                let mut called = false;
                let result = decode_verify(&token, |_, _| {
                    called = true;
                    Some(Signer::Key(&key))
                });
                assert!(matches!(result, Err(JwsError::UnsupportedAlgorithm(ref n)) if n == name));
                assert!(!called);
            }
        }
    }

    #[test]
    fn alg_confusion_is_rejected() {
        let rsa = key_for(Algorithm::RS256);
        let public_jwk_json = serde_json::to_vec(rsa.public_jwk()).unwrap();
        // The classic attack: HMAC keyed with the public key, header claiming HS256.
        let attacker = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: &public_jwk_json,
        };
        let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, rsa.kid());
        let token = craft(&header, r#"{"sub":"admin"}"#, &attacker);
        let result = decode_verify(&token, |_, kid| {
            kid.and_then(|k| (k == rsa.kid()).then_some(Signer::Key(&rsa)))
        });
        assert!(matches!(
            result,
            Err(JwsError::AlgorithmMismatch {
                header: Algorithm::HS256,
                key: Algorithm::RS256
            })
        ));
        // Same key type, other alg: an RS256 key must not accept PS256 or RS512 tokens.
        let pss = key_for(Algorithm::PS256);
        let token = encode(&CLAIMS, &Signer::Key(&pss)).unwrap();
        assert!(matches!(
            decode_verify(&token, |_, _| Some(Signer::Key(&rsa))),
            Err(JwsError::AlgorithmMismatch { .. })
        ));
        let hs = Signer::Hmac {
            alg: Algorithm::HS512,
            secret: SECRET,
        };
        let token = encode(
            &CLAIMS,
            &Signer::Hmac {
                alg: Algorithm::HS256,
                secret: SECRET,
            },
        )
        .unwrap();
        assert!(matches!(
            decode_verify(&token, |_, _| Some(hs)),
            Err(JwsError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn unknown_key() {
        let key = key_for(Algorithm::ES384);
        let token = encode(&CLAIMS, &Signer::Key(&key)).unwrap();
        assert!(matches!(
            decode_verify(&token, |_, _| None),
            Err(JwsError::UnknownKey)
        ));
    }

    #[test]
    fn malformed_tokens_are_rejected_without_panicking() {
        let key = key_for(Algorithm::ES256);
        let signer = Signer::Key(&key);
        let token = encode(&CLAIMS, &signer).unwrap();
        let [h, p, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let b64 = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            h.into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}."),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}.{p}.{s}=="),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}."),
            format!("{}.{p}.{s}", h.replace('-', "+").replace('_', "/") + "+"),
            format!("{}.{p}.{s}", b64("not json")),
            format!("{}.{p}.{s}", b64("[1,2]")),
            format!("{}.{p}.{s}", b64(r#"{"typ":"JWT"}"#)),
            format!("{}.{p}.{s}", b64(r#"{"alg":256}"#)),
            format!("{}.{p}.{s}", b64(r#"{"alg":"ES256","kid":1}"#)),
            format!(
                "{}.{p}.{s}",
                b64(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#)
            ),
            format!("{}.{p}.{s}", b64(r#"{"alg":"XS256"}"#)),
            format!("{}.{p}.{s}", b64("\u{0}")),
            "\u{e9}.\u{e9}.\u{e9}".into(),
            "a".repeat(MAX_TOKEN_LEN + 1),
            format!("{h}.{}.{s}", "A".repeat(MAX_TOKEN_LEN)),
        ];
        for case in &cases {
            let result = decode_verify(case, |_, _| Some(signer));
            assert!(result.is_err(), "{case:?}");
        }
        assert!(matches!(
            decode_verify(&"a".repeat(MAX_TOKEN_LEN + 1), |_, _| Some(signer)),
            Err(JwsError::TooLarge)
        ));
        assert!(matches!(
            decode_verify(&format!("{h}.{p}.{s}.{s}"), |_, _| Some(signer)),
            Err(JwsError::Malformed(_))
        ));
    }

    #[test]
    fn signed_payload_must_be_a_json_object() {
        let signer = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: SECRET,
        };
        for payload in ["[1]", "\"sub\"", "null", "{", ""] {
            let token = craft(r#"{"alg":"HS256"}"#, payload, &signer);
            assert!(
                matches!(
                    decode_verify(&token, |_, _| Some(signer)),
                    Err(JwsError::Json(_))
                ),
                "{payload}"
            );
        }
        let token = craft(
            r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#,
            r#"{"a":1}"#,
            &signer,
        );
        let verified =
            decode_verify(&token, |_, kid| (kid == Some("k1")).then_some(signer)).unwrap();
        assert_eq!(verified.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn token_of_max_len_is_accepted() {
        let signer = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: SECRET,
        };
        let header = r#"{"alg":"HS256"}"#;
        // The header, two dots and the 43-character HS256 signature around the payload.
        let fixed = URL_SAFE_NO_PAD.encode(header).len() + 2 + 43;
        let payload_b64_len = MAX_TOKEN_LEN - fixed;
        let payload_len = payload_b64_len / 4 * 3;
        let filler = "x".repeat(payload_len - 8);
        let payload = format!(r#"{{"p":"{filler}"}}"#);
        let token = craft(header, &payload, &signer);
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(decode_verify(&token, |_, _| Some(signer)).is_ok());
    }

    #[test]
    fn debug_hides_the_secret() {
        let signer = Signer::Hmac {
            alg: Algorithm::HS256,
            secret: b"hunter2",
        };
        let debug = format!("{signer:?}");
        assert!(debug.contains("HS256") && !debug.contains("hunter2") && !debug.contains("104"));
    }
}
