//! The provider's signing keys, parsed once at start-up and reused for every token.
//!
//! jsonwebtoken re-parses its key on every `encode` and has no ES512, so we hold parsed
//! aws-lc-rs key pairs here and let [`crate::jws`] assemble the compact tokens.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPairComponents, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
    RsaEncoding, RsaKeyPair, VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// JWS algorithms we sign and verify with. `none` does not exist on purpose.
// The variant names are the JOSE names so that derived serde uses them verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// ECDSA on P-521 with SHA-512.
    ES512,
    /// EdDSA; only the Ed25519 curve is supported.
    EdDSA,
}

/// Which family of key an algorithm needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order (the order of the enum).
    pub const ALL: [Algorithm; 13] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The JOSE name, as used in the `alg` header and in discovery metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Looks up an algorithm by its exact, case-sensitive JOSE name; `"none"` gives `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// Whether this is an HMAC algorithm, keyed with a client secret rather than a provider key.
    pub fn is_symmetric(self) -> bool {
        self.family() == Family::Hmac
    }

    /// The shortest HMAC key this algorithm accepts, in bytes: the hash output's size
    /// (RFC 7518 section 3.2); 0 for the asymmetric algorithms.
    pub fn min_hmac_key_len(self) -> usize {
        if self.is_symmetric() {
            self.digest_algorithm().output_len()
        } else {
            0
        }
    }

    /// OIDC Core `at_hash` / `c_hash`: base64url of the left half of the hash of `value`.
    ///
    /// The hash is the one of the algorithm's size; EdDSA (Ed25519) uses SHA-512.
    pub fn half_hash(self, value: &str) -> String {
        let hash = digest::digest(self.digest_algorithm(), value.as_bytes());
        let bytes = hash.as_ref();
        let half = bytes.get(..bytes.len() / 2).unwrap_or(bytes);
        URL_SAFE_NO_PAD.encode(half)
    }

    fn family(self) -> Family {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 | Self::ES384 | Self::ES512 => Family::Ec,
            Self::EdDSA => Family::Ed25519,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Self::HS256 | Self::RS256 | Self::PS256 | Self::ES256 => &digest::SHA256,
            Self::HS384 | Self::RS384 | Self::PS384 | Self::ES384 => &digest::SHA384,
            Self::HS512 | Self::RS512 | Self::PS512 | Self::ES512 | Self::EdDSA => &digest::SHA512,
        }
    }

    fn hmac_algorithm(self) -> Option<hmac::Algorithm> {
        match self {
            Self::HS256 => Some(hmac::HMAC_SHA256),
            Self::HS384 => Some(hmac::HMAC_SHA384),
            Self::HS512 => Some(hmac::HMAC_SHA512),
            _ => None,
        }
    }

    fn rsa_encoding(self) -> Option<&'static dyn RsaEncoding> {
        match self {
            Self::RS256 => Some(&signature::RSA_PKCS1_SHA256),
            Self::RS384 => Some(&signature::RSA_PKCS1_SHA384),
            Self::RS512 => Some(&signature::RSA_PKCS1_SHA512),
            Self::PS256 => Some(&signature::RSA_PSS_SHA256),
            Self::PS384 => Some(&signature::RSA_PSS_SHA384),
            Self::PS512 => Some(&signature::RSA_PSS_SHA512),
            _ => None,
        }
    }

    fn ec_curve(self) -> Option<EcCurve> {
        match self {
            Self::ES256 => Some(EcCurve::P256),
            Self::ES384 => Some(EcCurve::P384),
            Self::ES512 => Some(EcCurve::P521),
            _ => None,
        }
    }

    fn verification_algorithm(self) -> Option<&'static dyn VerificationAlgorithm> {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => None,
            Self::RS256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Self::RS384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Self::RS512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Self::PS256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Self::PS384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Self::PS512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            Self::ES256 => Some(&signature::ECDSA_P256_SHA256_FIXED),
            Self::ES384 => Some(&signature::ECDSA_P384_SHA384_FIXED),
            Self::ES512 => Some(&signature::ECDSA_P521_SHA512_FIXED),
            Self::EdDSA => Some(&signature::ED25519),
        }
    }

    fn key_requirement(self) -> &'static str {
        match self.family() {
            Family::Hmac => "a client secret",
            Family::Rsa => "an RSA key of at least 2048 bits",
            Family::Ed25519 => "an Ed25519 key",
            Family::Ec => match self.ec_curve() {
                Some(EcCurve::P256) => "a P-256 EC key",
                Some(EcCurve::P384) => "a P-384 EC key",
                Some(EcCurve::P521) | None => "a P-521 EC key",
            },
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| KeyError::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// NIST curves for ECDSA, each tied to exactly one JWS algorithm.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
    P521,
}

/// Someone else's public EC key (a client's registered JWK), parsed once, which verifies
/// its signatures: the ES* algorithms the provider's own key types cover, for what
/// jsonwebtoken cannot verify (ES512 client assertions).
pub struct PublicEcKey {
    alg: Algorithm,
    kid: Option<String>,
    key: ParsedPublicKey,
}

impl fmt::Debug for PublicEcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicEcKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PublicEcKey {
    /// Reads a public EC JWK (`kty` EC, `crv` P-256/384/521, `x`, `y`): its algorithm is the
    /// curve's (ES256/384/512), and must equal the JWK's `alg` when it names one. Private
    /// members are refused: a registered key is public.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        let text = |name: &str| match jwk.get(name) {
            Some(Value::String(v)) => Ok(v.as_str()),
            _ => Err(KeyError::InvalidJwk(format!(
                "the member {name} is missing"
            ))),
        };
        if text("kty")? != "EC" {
            return Err(KeyError::InvalidJwk("not an EC key".into()));
        }
        if jwk.contains_key("d") {
            return Err(KeyError::InvalidJwk("a public key has no d".into()));
        }
        let curve = EcCurve::from_jwk_name(text("crv")?)
            .ok_or_else(|| KeyError::InvalidJwk("crv must be P-256, P-384 or P-521".into()))?;
        let alg = match curve {
            EcCurve::P256 => Algorithm::ES256,
            EcCurve::P384 => Algorithm::ES384,
            EcCurve::P521 => Algorithm::ES512,
        };
        if let Some(Value::String(named)) = jwk.get("alg")
            && named != alg.as_str()
        {
            return Err(KeyError::InvalidJwk(format!(
                "alg {named} does not fit the curve's {alg}"
            )));
        }
        let coordinate = |name: &str| -> Result<Vec<u8>, KeyError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(text(name)?)
                .map_err(|_| KeyError::InvalidJwk(format!("{name} is not base64url")))?;
            if bytes.len() == curve.coordinate_len() {
                Ok(bytes)
            } else {
                Err(KeyError::InvalidJwk(format!("{name} has the wrong length")))
            }
        };
        let mut point = vec![0x04];
        point.extend(coordinate("x")?);
        point.extend(coordinate("y")?);
        let verification = alg
            .verification_algorithm()
            .ok_or_else(|| KeyError::InvalidJwk("not an asymmetric algorithm".into()))?;
        let key = ParsedPublicKey::new(verification, &point)
            .map_err(|_| KeyError::InvalidJwk("the point is not on the curve".into()))?;
        let kid = match jwk.get("kid") {
            Some(Value::String(k)) => Some(k.clone()),
            _ => None,
        };
        Ok(Self { alg, kid, key })
    }

    /// The algorithm its signatures use.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The JWK's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `signature` (R || S, fixed length) is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl EcCurve {
    const ALL: [EcCurve; 3] = [Self::P256, Self::P384, Self::P521];

    fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    fn from_jwk_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.jwk_name() == name)
    }

    /// Length of one coordinate and of the private scalar, as fixed by RFC 7518 §6.2.
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn signing_algorithm(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Self::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Self::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        }
    }
}

/// Why a key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm name is not one we support (this includes `none`).
    #[error("unsupported JWS algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The PEM text could not be decoded or holds no usable private key block.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// The JWK is not valid JSON or lacks or misencodes a required member.
    #[error("invalid JWK: {0}")]
    InvalidJwk(String),
    /// The key was decoded but does not fit the algorithm or is otherwise unacceptable.
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// The kid is empty; JWS headers and the JWKS need a usable identifier.
    #[error("invalid kid: {0}")]
    InvalidKid(&'static str),
    /// A key with this kid is already in the key set.
    #[error("duplicate kid {0:?}")]
    DuplicateKid(String),
    /// The cryptographic library failed to produce a signature.
    #[error("signing failed")]
    SigningFailed,
    /// The cryptographic library failed to generate a key pair.
    #[error("key generation failed")]
    GenerationFailed,
}

/// The parsed aws-lc-rs key pair behind a [`SigningKey`].
enum KeyPair {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// An asymmetric private key parsed once, ready to sign, with its kid and public JWK.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    key_pair: KeyPair,
    // Parsed once so that verification does not re-parse the public key every time.
    verifier: ParsedPublicKey,
    public_jwk: Map<String, Value>,
}

impl fmt::Debug for SigningKey {
    // Only the identifying parts: key material must never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PEM private key: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1) or
    /// `EC PRIVATE KEY` (SEC1); `alg` must fit the key and `kid` defaults to the JWK thumbprint.
    pub fn from_pem(pem: &[u8], alg: Algorithm, kid: Option<&str>) -> Result<Self, KeyError> {
        ensure_asymmetric(alg)?;
        let blocks =
            pem::parse_many(pem).map_err(|e| KeyError::InvalidPem(format!("undecodable: {e}")))?;
        // Skip blocks such as "EC PARAMETERS" that openssl writes in front of the key.
        let block = blocks
            .iter()
            .find(|b| {
                matches!(
                    b.tag(),
                    "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY"
                )
            })
            .ok_or_else(|| match blocks.first() {
                None => KeyError::InvalidPem("no PEM block found".to_owned()),
                Some(b) => KeyError::InvalidPem(format!(
                    "expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block, found {:?}",
                    b.tag()
                )),
            })?;
        let der = block.contents();
        let key_pair = match block.tag() {
            "PRIVATE KEY" => key_pair_from_pkcs8(der, alg)?,
            "RSA PRIVATE KEY" => {
                if alg.family() != Family::Rsa {
                    return Err(mismatch(alg, "an RSA key"));
                }
                let kp = RsaKeyPair::from_der(der).map_err(|e| rsa_rejected(e, "PKCS#1"))?;
                rsa_key_pair(kp, alg)?
            }
            "EC PRIVATE KEY" => {
                let Some(curve) = alg.ec_curve() else {
                    return Err(mismatch(alg, "an EC key"));
                };
                match EcdsaKeyPair::from_private_key_der(curve.signing_algorithm(), der) {
                    Ok(kp) => KeyPair::Ecdsa(kp),
                    Err(e) => {
                        let other = EcCurve::ALL.into_iter().find(|c| {
                            *c != curve
                                && EcdsaKeyPair::from_private_key_der(c.signing_algorithm(), der)
                                    .is_ok()
                        });
                        return Err(match other {
                            Some(c) => mismatch(alg, &format!("a {} EC key", c.jwk_name())),
                            None => KeyError::KeyRejected(format!(
                                "not a valid SEC1 EC private key ({})",
                                e.description_()
                            )),
                        });
                    }
                }
            }
            _ => {
                return Err(KeyError::InvalidPem(
                    "encrypted private keys are not supported; decrypt it first".to_owned(),
                ));
            }
        };
        Self::assemble(key_pair, alg, kid)
    }

    /// Loads a private JWK (RFC 7517/7518: RSA, EC P-256/384/521 or OKP Ed25519).
    ///
    /// The algorithm comes from the JWK's `alg`, else from `alg` (both given must agree); the kid
    /// from its `kid`, else the thumbprint. The public members must match the private key.
    pub fn from_jwk(jwk_json: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let jwk: Map<String, Value> = serde_json::from_slice(jwk_json)
            .map_err(|e| KeyError::InvalidJwk(format!("not a JSON object: {e}")))?;
        let alg = match (jwk.get("alg"), alg) {
            (Some(Value::String(name)), requested) => {
                let named = Algorithm::from_name(name)
                    .ok_or_else(|| KeyError::UnsupportedAlgorithm(name.clone()))?;
                // A caller that asks for one alg must not silently get another.
                if requested.is_some_and(|r| r != named) {
                    return Err(KeyError::KeyRejected(format!(
                        "the JWK says alg {named} but {} was requested",
                        requested.map_or("", Algorithm::as_str)
                    )));
                }
                named
            }
            (Some(_), _) => return Err(KeyError::InvalidJwk("\"alg\" is not a string".to_owned())),
            (None, Some(requested)) => requested,
            (None, None) => {
                return Err(KeyError::InvalidJwk(
                    "no \"alg\" member and no algorithm given".to_owned(),
                ));
            }
        };
        ensure_asymmetric(alg)?;
        match jwk.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(_) => {
                return Err(KeyError::KeyRejected(
                    "the JWK's \"use\" is not \"sig\"".to_owned(),
                ));
            }
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(KeyError::InvalidJwk("\"kid\" is not a string".to_owned())),
        };
        let kty = jwk_str(&jwk, "kty")?;
        let key_pair = match (kty, alg.family()) {
            ("RSA", Family::Rsa) => rsa_from_jwk(&jwk, alg)?,
            ("EC", Family::Ec) => ec_from_jwk(&jwk, alg)?,
            ("OKP", Family::Ed25519) => ed25519_from_jwk(&jwk)?,
            ("RSA", _) => return Err(mismatch(alg, "an RSA key")),
            ("EC", _) => return Err(mismatch(alg, "an EC key")),
            ("OKP", _) => return Err(mismatch(alg, "an OKP key")),
            ("oct", _) => {
                return Err(KeyError::KeyRejected(
                    "symmetric (oct) keys are client secrets, not provider signing keys".to_owned(),
                ));
            }
            _ => return Err(KeyError::InvalidJwk(format!("unsupported kty {kty:?}"))),
        };
        Self::assemble(key_pair, alg, kid)
    }

    /// Generates a new key pair for `alg` (RSA 2048 for RS*/PS*), e.g. for a demo server's
    /// first start; also returns its PKCS#8 PEM so it can be stored and reloaded.
    pub fn generate(alg: Algorithm, kid: Option<&str>) -> Result<(Self, String), KeyError> {
        ensure_asymmetric(alg)?;
        let pkcs8: Vec<u8> = match (alg.family(), alg.ec_curve()) {
            (Family::Rsa, _) => RsaKeyPair::generate(KeySize::Rsa2048)
                .and_then(|kp| kp.as_der())
                .map(|der| der.as_ref().to_vec()),
            (Family::Ec, Some(curve)) => EcdsaKeyPair::generate(curve.signing_algorithm())
                .and_then(|kp| kp.to_pkcs8v1())
                .map(|doc| doc.as_ref().to_vec()),
            // v1 (no public key inside) because that is what openssl writes and reads everywhere.
            (Family::Ed25519, _) => Ed25519KeyPair::generate()
                .and_then(|kp| kp.to_pkcs8v1())
                .map(|doc| doc.as_ref().to_vec()),
            _ => return Err(KeyError::GenerationFailed),
        }
        .map_err(|_| KeyError::GenerationFailed)?;
        let key = Self::assemble(key_pair_from_pkcs8(&pkcs8, alg)?, alg, kid)?;
        let pem = pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", pkcs8),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok((key, pem))
    }

    /// The key id, as put in JWS headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Length in bytes of the signatures this key makes, for sizing output buffers.
    pub fn signature_len(&self) -> usize {
        match &self.key_pair {
            KeyPair::Rsa(kp, _) => kp.public_modulus_len(),
            KeyPair::Ecdsa(_) => self
                .alg
                .ec_curve()
                .map_or(0, |c| c.coordinate_len().saturating_mul(2)),
            KeyPair::Ed25519(_) => 64,
        }
    }

    /// The raw JWS signature over `message` (PKCS#1 v1.5, PSS with salt = hash length,
    /// fixed-size ECDSA `r||s` per RFC 7518 §3.4, or Ed25519).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.key_pair {
            KeyPair::Rsa(kp, encoding) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(*encoding, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| KeyError::SigningFailed)?;
                Ok(sig)
            }
            KeyPair::Ecdsa(kp) => kp
                .sign(&SystemRandom::new(), message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::SigningFailed),
            KeyPair::Ed25519(kp) => kp
                .try_sign(message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::SigningFailed),
        }
    }

    /// Whether `signature` is this key's signature over `message` (e.g. an `id_token_hint`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify_sig(message, signature).is_ok()
    }

    /// The public JWK (kty, kid, use, alg and the public members) for the JWKS.
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.public_jwk
    }

    fn assemble(key_pair: KeyPair, alg: Algorithm, kid: Option<&str>) -> Result<Self, KeyError> {
        let verification = alg
            .verification_algorithm()
            .ok_or_else(|| mismatch(alg, "an asymmetric key"))?;
        let mut jwk = Map::new();
        let public_bytes: &[u8] = match &key_pair {
            KeyPair::Rsa(kp, _) => {
                let public = kp.public_key();
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert(
                    "n".into(),
                    b64(public.modulus().big_endian_without_leading_zero()),
                );
                jwk.insert(
                    "e".into(),
                    b64(public.exponent().big_endian_without_leading_zero()),
                );
                public.as_ref()
            }
            KeyPair::Ecdsa(kp) => {
                let curve = alg.ec_curve().ok_or_else(|| mismatch(alg, "an EC key"))?;
                let point = kp.public_key().as_ref();
                let (x, y) = point
                    .strip_prefix(&[0x04])
                    .and_then(|xy| xy.split_at_checked(curve.coordinate_len()))
                    .filter(|(_, y)| y.len() == curve.coordinate_len())
                    .ok_or_else(|| {
                        KeyError::KeyRejected("unexpected EC public key encoding".to_owned())
                    })?;
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), curve.jwk_name().into());
                jwk.insert("x".into(), b64(x));
                jwk.insert("y".into(), b64(y));
                point
            }
            KeyPair::Ed25519(kp) => {
                let public = kp.public_key().as_ref();
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(public));
                public
            }
        };
        let verifier = ParsedPublicKey::new(verification, public_bytes)
            .map_err(|e| KeyError::KeyRejected(format!("public key: {}", e.description_())))?;
        let kid = match kid {
            Some("") => return Err(KeyError::InvalidKid("kid must not be empty")),
            Some(kid) => kid.to_owned(),
            None => jwk_thumbprint(&jwk)?,
        };
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), alg.as_str().into());
        Ok(Self {
            alg,
            kid,
            key_pair,
            verifier,
            public_jwk: jwk,
        })
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of a public or private RSA, EC or OKP JWK.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Result<String, KeyError> {
    let kty = jwk_str(jwk, "kty")?;
    // RFC 7638 §3.2: only the required members, in lexicographic order.
    let members: &[&str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => return Err(KeyError::InvalidJwk(format!("unsupported kty {kty:?}"))),
    };
    let mut canonical = String::with_capacity(512);
    canonical.push('{');
    for (i, name) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = serde_json::to_string(jwk_str(jwk, name)?)
            .map_err(|e| KeyError::InvalidJwk(e.to_string()))?;
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":");
        canonical.push_str(&value);
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
}

/// The provider's signing keys, looked up by kid or by algorithm.
///
/// Beside the keys that sign, a set can hold *published* keys: keys rotated out, which sign
/// nothing any more but stay in the JWKS (and verify an `id_token_hint`), so the tokens
/// they signed still verify until they are retired.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    published: Vec<SigningKey>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; kids must be unique so that a token's kid names exactly one key.
    pub fn add(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.get(key.kid()).is_some() {
            return Err(KeyError::DuplicateKid(key.kid));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Adds a key that is only published (in [`KeySet::jwks`] and found by
    /// [`KeySet::get`]) and never signs: a key rotated out. Kids are unique across both kinds.
    pub fn add_published(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.get(key.kid()).is_some() {
            return Err(KeyError::DuplicateKid(key.kid));
        }
        self.published.push(key);
        Ok(())
    }

    /// The key with this kid, signing or only published (to verify what it signed).
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys
            .iter()
            .chain(&self.published)
            .find(|k| k.kid == kid)
    }

    /// The only-published keys, in insertion order.
    pub fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.published.iter()
    }

    /// The key that signs for `alg`: the first added signing key with that alg (a published
    /// key never signs).
    pub fn for_algorithm(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.alg == alg)
    }

    /// The distinct algorithms of the signing keys, in insertion order (for discovery
    /// metadata).
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algs: Vec<Algorithm> = Vec::new();
        for key in &self.keys {
            if !algs.contains(&key.alg) {
                algs.push(key.alg);
            }
        }
        algs
    }

    /// The signing keys, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter()
    }

    /// Whether the set holds no signing key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of signing keys in the set.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The RFC 7517 JWK Set `{"keys":[...]}` of the public keys, signing then published;
    /// never any private member.
    pub fn jwks(&self) -> Value {
        let keys = self
            .keys
            .iter()
            .chain(&self.published)
            .map(|k| Value::Object(k.public_jwk.clone()))
            .collect();
        let mut set = Map::new();
        set.insert("keys".into(), Value::Array(keys));
        Value::Object(set)
    }
}

impl<'a> IntoIterator for &'a KeySet {
    type Item = &'a SigningKey;
    type IntoIter = std::slice::Iter<'a, SigningKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

/// HMAC (HS256/384/512) over `message`, keyed with a client secret's bytes as given.
pub fn hmac_sign(alg: Algorithm, secret: &[u8], message: &[u8]) -> Result<Vec<u8>, KeyError> {
    let Some(algorithm) = alg.hmac_algorithm() else {
        return Err(mismatch(alg, "an asymmetric key, not a client secret"));
    };
    // An empty secret would let anyone mint tokens that verify.
    if secret.is_empty() {
        return Err(KeyError::KeyRejected("empty HMAC secret".to_owned()));
    }
    let key = hmac::Key::new(algorithm, secret);
    Ok(hmac::sign(&key, message).as_ref().to_vec())
}

/// Checks an HS256/384/512 signature in constant time; false for any other alg or an empty secret.
pub fn hmac_verify(alg: Algorithm, secret: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some(algorithm) = alg.hmac_algorithm() else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let key = hmac::Key::new(algorithm, secret);
    hmac::verify(&key, message, signature).is_ok()
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn ensure_asymmetric(alg: Algorithm) -> Result<(), KeyError> {
    if alg.is_symmetric() {
        return Err(KeyError::KeyRejected(format!(
            "{alg} is keyed with a client secret, not a provider signing key"
        )));
    }
    Ok(())
}

fn mismatch(alg: Algorithm, found: &str) -> KeyError {
    KeyError::KeyRejected(format!(
        "{alg} needs {}, but this is {found}",
        alg.key_requirement()
    ))
}

fn rsa_rejected(e: aws_lc_rs::error::KeyRejected, format: &str) -> KeyError {
    match e.description_() {
        "TooSmall" => KeyError::KeyRejected("RSA key is smaller than 2048 bits".to_owned()),
        "TooLarge" => KeyError::KeyRejected("RSA key is larger than 8192 bits".to_owned()),
        other => KeyError::KeyRejected(format!("not a valid {format} RSA private key ({other})")),
    }
}

fn rsa_key_pair(kp: RsaKeyPair, alg: Algorithm) -> Result<KeyPair, KeyError> {
    // aws-lc-rs enforces this too; checking here keeps the rule visible and the message clear.
    if kp.public_modulus_len() < 256 {
        return Err(KeyError::KeyRejected(
            "RSA key is smaller than 2048 bits".to_owned(),
        ));
    }
    let encoding = alg
        .rsa_encoding()
        .ok_or_else(|| mismatch(alg, "an RSA key"))?;
    Ok(KeyPair::Rsa(kp, encoding))
}

fn key_pair_from_pkcs8(der: &[u8], alg: Algorithm) -> Result<KeyPair, KeyError> {
    let parsed = match (alg.family(), alg.ec_curve()) {
        (Family::Rsa, _) => match RsaKeyPair::from_pkcs8(der) {
            Ok(kp) => return rsa_key_pair(kp, alg),
            Err(e) if e.description_() == "TooSmall" || e.description_() == "TooLarge" => {
                return Err(rsa_rejected(e, "PKCS#8"));
            }
            Err(e) => e,
        },
        (Family::Ec, Some(curve)) => {
            match EcdsaKeyPair::from_pkcs8(curve.signing_algorithm(), der) {
                Ok(kp) => return Ok(KeyPair::Ecdsa(kp)),
                Err(e) => e,
            }
        }
        (Family::Ed25519, _) => match Ed25519KeyPair::from_pkcs8(der) {
            Ok(kp) => return Ok(KeyPair::Ed25519(kp)),
            Err(e) => e,
        },
        _ => return Err(mismatch(alg, "a PKCS#8 key")),
    };
    // Only on failure: find out what the key is, to say why it does not fit.
    let found = describe_pkcs8(der);
    Err(match found {
        Some(found) => mismatch(alg, found),
        None => KeyError::KeyRejected(format!(
            "not a valid PKCS#8 private key for {alg} ({})",
            parsed.description_()
        )),
    })
}

fn describe_pkcs8(der: &[u8]) -> Option<&'static str> {
    if Ed25519KeyPair::from_pkcs8(der).is_ok() {
        return Some("an Ed25519 key");
    }
    for (curve, name) in [
        (EcCurve::P256, "a P-256 EC key"),
        (EcCurve::P384, "a P-384 EC key"),
        (EcCurve::P521, "a P-521 EC key"),
    ] {
        if EcdsaKeyPair::from_pkcs8(curve.signing_algorithm(), der).is_ok() {
            return Some(name);
        }
    }
    match RsaKeyPair::from_pkcs8(der) {
        Ok(_) => Some("an RSA key"),
        Err(e) if e.description_() == "TooSmall" => Some("an RSA key smaller than 2048 bits"),
        Err(_) => None,
    }
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, KeyError> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(KeyError::InvalidJwk(format!("{name:?} is not a string"))),
        None => Err(KeyError::InvalidJwk(format!("missing member {name:?}"))),
    }
}

fn jwk_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(jwk_str(jwk, name)?)
        .map_err(|_| KeyError::InvalidJwk(format!("{name:?} is not unpadded base64url")))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn rsa_from_jwk(jwk: &Map<String, Value>, alg: Algorithm) -> Result<KeyPair, KeyError> {
    if jwk.contains_key("oth") {
        return Err(KeyError::KeyRejected(
            "multi-prime RSA keys (\"oth\") are not supported".to_owned(),
        ));
    }
    if !jwk.contains_key("d") {
        return Err(KeyError::InvalidJwk(
            "missing member \"d\": a public JWK cannot sign".to_owned(),
        ));
    }
    let n = jwk_bytes(jwk, "n")?;
    let e = jwk_bytes(jwk, "e")?;
    let components = KeyPairComponents {
        // aws-lc-rs wants the public integers without leading zero octets; some writers add one.
        public_key: PublicKeyComponents {
            n: strip_leading_zeros(&n),
            e: strip_leading_zeros(&e),
        },
        d: jwk_bytes(jwk, "d")?,
        p: jwk_bytes(jwk, "p")?,
        q: jwk_bytes(jwk, "q")?,
        dP: jwk_bytes(jwk, "dp")?,
        dQ: jwk_bytes(jwk, "dq")?,
        qInv: jwk_bytes(jwk, "qi")?,
    };
    if components.public_key.n.len() < 256 {
        return Err(KeyError::KeyRejected(
            "RSA key is smaller than 2048 bits".to_owned(),
        ));
    }
    let kp = RsaKeyPair::from_components(&components).map_err(|e| rsa_rejected(e, "JWK"))?;
    rsa_key_pair(kp, alg)
}

fn ec_from_jwk(jwk: &Map<String, Value>, alg: Algorithm) -> Result<KeyPair, KeyError> {
    let crv = jwk_str(jwk, "crv")?;
    let curve = EcCurve::from_jwk_name(crv)
        .ok_or_else(|| KeyError::KeyRejected(format!("unsupported EC curve {crv:?}")))?;
    if alg.ec_curve() != Some(curve) {
        return Err(mismatch(alg, &format!("a {crv} EC key")));
    }
    if !jwk.contains_key("d") {
        return Err(KeyError::InvalidJwk(
            "missing member \"d\": a public JWK cannot sign".to_owned(),
        ));
    }
    let len = curve.coordinate_len();
    let x = jwk_bytes(jwk, "x")?;
    let y = jwk_bytes(jwk, "y")?;
    let d = jwk_bytes(jwk, "d")?;
    // RFC 7518 §6.2.1/§6.2.2: x, y and d are exactly the curve's coordinate size.
    for (name, value) in [("x", &x), ("y", &y), ("d", &d)] {
        if value.len() != len {
            return Err(KeyError::InvalidJwk(format!(
                "{name:?} must be {len} bytes for {crv}, got {}",
                value.len()
            )));
        }
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    EcdsaKeyPair::from_private_key_and_public_key(curve.signing_algorithm(), &d, &point)
        .map(KeyPair::Ecdsa)
        .map_err(|e| {
            KeyError::KeyRejected(format!(
                "EC private and public parts do not form a key pair ({})",
                e.description_()
            ))
        })
}

fn ed25519_from_jwk(jwk: &Map<String, Value>) -> Result<KeyPair, KeyError> {
    let crv = jwk_str(jwk, "crv")?;
    if crv != "Ed25519" {
        return Err(mismatch(Algorithm::EdDSA, &format!("an OKP {crv} key")));
    }
    if !jwk.contains_key("d") {
        return Err(KeyError::InvalidJwk(
            "missing member \"d\": a public JWK cannot sign".to_owned(),
        ));
    }
    let x = jwk_bytes(jwk, "x")?;
    let d = jwk_bytes(jwk, "d")?;
    if x.len() != 32 || d.len() != 32 {
        return Err(KeyError::InvalidJwk(
            "Ed25519 \"x\" and \"d\" must be 32 bytes each".to_owned(),
        ));
    }
    Ed25519KeyPair::from_seed_and_public_key(&d, &x)
        .map(KeyPair::Ed25519)
        .map_err(|e| {
            KeyError::KeyRejected(format!(
                "Ed25519 private and public parts do not form a key pair ({})",
                e.description_()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/", $name))
        };
    }

    const RSA_PEM: &[u8] = fixture!("rsa2048.pem");
    const RSA_PKCS1_PEM: &[u8] = fixture!("rsa2048-pkcs1.pem");
    const RSA1024_PEM: &[u8] = fixture!("rsa1024.pem");
    const P256_PEM: &[u8] = fixture!("p256.pem");
    const P256_SEC1_PEM: &[u8] = fixture!("p256-sec1.pem");
    const P384_PEM: &[u8] = fixture!("p384.pem");
    const P521_PEM: &[u8] = fixture!("p521.pem");
    const P521_SEC1_PEM: &[u8] = fixture!("p521-sec1.pem");
    const ED25519_PEM: &[u8] = fixture!("ed25519.pem");
    const RSA_JWK: &[u8] = fixture!("rsa2048.jwk.json");
    const P256_JWK: &[u8] = fixture!("p256.jwk.json");
    const P384_JWK: &[u8] = fixture!("p384.jwk.json");
    const P521_JWK: &[u8] = fixture!("p521.jwk.json");
    const ED25519_JWK: &[u8] = fixture!("ed25519.jwk.json");

    /// Thumbprints of the fixtures, computed independently with Python's `cryptography`.
    const RSA_KID: &str = "XUXL7lFGamR6cBA0NtexFcVxUgmIDLafD25VBq9502Y";
    const P256_KID: &str = "HhZkQvnxG7oZ35ZrwFLH2Xi5bhDViUhAtBEKA0qf300";
    const P384_KID: &str = "Ul82lArh3dbau7bpAIweKahswh-DKGhDHp74xRPtcMc";
    const P521_KID: &str = "7ox7A32nz2Rt7ubDdr5Z8LbubmavJd5GoQ3WAPUO_1E";
    const ED25519_KID: &str = "c0EbjmK5hgi6n6PGy8N_pKS1-4ogzweV57Y5ouV_VnM";

    /// The access token and code of the OIDC Core 1.0 §A.3/§A.4 examples.
    const ACCESS_TOKEN: &str = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    const CODE: &str = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";

    fn asymmetric() -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.into_iter().filter(|a| !a.is_symmetric())
    }

    fn fixture_for(alg: Algorithm) -> (&'static [u8], &'static [u8], &'static str) {
        match alg {
            Algorithm::ES256 => (P256_PEM, P256_JWK, P256_KID),
            Algorithm::ES384 => (P384_PEM, P384_JWK, P384_KID),
            Algorithm::ES512 => (P521_PEM, P521_JWK, P521_KID),
            Algorithm::EdDSA => (ED25519_PEM, ED25519_JWK, ED25519_KID),
            _ => (RSA_PEM, RSA_JWK, RSA_KID),
        }
    }

    /// `printf %s $ACCESS_TOKEN | openssl dgst -shaN -binary | head -c N/2 | base64url`.
    fn expected_at_hash(alg: Algorithm) -> &'static str {
        match alg.digest_algorithm().output_len() {
            32 => "77QmUPtjPfzWtF2AnpK9RQ",
            48 => "jtAeDp945y1dDqU3nkIVGNZP1HjH_MFs",
            _ => "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM",
        }
    }

    fn expected_signature_len(alg: Algorithm) -> usize {
        match alg {
            Algorithm::ES256 => 64,
            Algorithm::ES384 => 96,
            Algorithm::ES512 => 132,
            Algorithm::EdDSA => 64,
            _ => 256,
        }
    }

    fn rejected(result: Result<SigningKey, KeyError>) -> String {
        match result {
            Err(KeyError::KeyRejected(msg)) => msg,
            other => panic!("expected KeyRejected, got {other:?}"),
        }
    }

    #[test]
    fn pem_sign_verify_and_half_hash_for_every_asymmetric_alg() {
        for alg in asymmetric() {
            let (pem, _, kid) = fixture_for(alg);
            let key = SigningKey::from_pem(pem, alg, None).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.kid(), kid, "{alg}");
            let sig = key.sign(b"header.payload").unwrap();
            assert_eq!(sig.len(), expected_signature_len(alg), "{alg}");
            assert_eq!(sig.len(), key.signature_len(), "{alg}");
            assert!(key.verify(b"header.payload", &sig), "{alg}");
            assert!(!key.verify(b"header.payloae", &sig), "{alg}");
            let mut bad = sig.clone();
            bad[sig.len() / 2] ^= 1;
            assert!(!key.verify(b"header.payload", &bad), "{alg}");
            assert_eq!(alg.half_hash(ACCESS_TOKEN), expected_at_hash(alg), "{alg}");
        }
    }

    #[test]
    fn half_hash_matches_oidc_core_examples() {
        assert_eq!(
            Algorithm::RS256.half_hash(ACCESS_TOKEN),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(Algorithm::RS256.half_hash(CODE), "LDktKdoQak3Pk0cnXxCltA");
        assert_eq!(Algorithm::HS256.half_hash(CODE), "LDktKdoQak3Pk0cnXxCltA");
        assert_eq!(
            Algorithm::HS384.half_hash(ACCESS_TOKEN),
            Algorithm::ES384.half_hash(ACCESS_TOKEN)
        );
        assert_eq!(
            Algorithm::EdDSA.half_hash(ACCESS_TOKEN),
            Algorithm::ES512.half_hash(ACCESS_TOKEN)
        );
    }

    #[test]
    fn explicit_kid_is_used() {
        let key = SigningKey::from_pem(P256_PEM, Algorithm::ES256, Some("2024-01")).unwrap();
        assert_eq!(key.kid(), "2024-01");
        assert_eq!(key.public_jwk()["kid"], "2024-01");
        assert!(matches!(
            SigningKey::from_pem(P256_PEM, Algorithm::ES256, Some("")),
            Err(KeyError::InvalidKid(_))
        ));
    }

    #[test]
    fn other_pem_encodings_give_the_same_key() {
        for alg in [Algorithm::RS256, Algorithm::PS512] {
            let pkcs8 = SigningKey::from_pem(RSA_PEM, alg, None).unwrap();
            let pkcs1 = SigningKey::from_pem(RSA_PKCS1_PEM, alg, None).unwrap();
            assert_eq!(pkcs8.public_jwk(), pkcs1.public_jwk());
            assert!(pkcs8.verify(b"m", &pkcs1.sign(b"m").unwrap()));
        }
        for (pkcs8, sec1, alg) in [
            (P256_PEM, P256_SEC1_PEM, Algorithm::ES256),
            (P521_PEM, P521_SEC1_PEM, Algorithm::ES512),
        ] {
            let pkcs8 = SigningKey::from_pem(pkcs8, alg, None).unwrap();
            let sec1 = SigningKey::from_pem(sec1, alg, None).unwrap();
            assert_eq!(pkcs8.public_jwk(), sec1.public_jwk());
            assert!(pkcs8.verify(b"m", &sec1.sign(b"m").unwrap()));
        }
        // openssl ecparam -genkey writes an EC PARAMETERS block first.
        let mut with_params =
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
                .to_vec();
        with_params.extend_from_slice(P256_SEC1_PEM);
        let key = SigningKey::from_pem(&with_params, Algorithm::ES256, None).unwrap();
        assert_eq!(key.kid(), P256_KID);
    }

    #[test]
    fn jwk_load_matches_pem_load() {
        for alg in asymmetric() {
            let (pem, jwk, kid) = fixture_for(alg);
            let from_pem = SigningKey::from_pem(pem, alg, None).unwrap();
            let from_jwk = SigningKey::from_jwk(jwk, Some(alg)).unwrap();
            assert_eq!(from_jwk.kid(), kid, "{alg}");
            assert_eq!(from_jwk.public_jwk(), from_pem.public_jwk(), "{alg}");
            let sig = from_jwk.sign(b"m").unwrap();
            assert!(from_pem.verify(b"m", &sig), "{alg}");
        }
    }

    #[test]
    fn jwk_alg_and_kid_members() {
        let mut jwk: Map<String, Value> = serde_json::from_slice(P256_JWK).unwrap();
        jwk.insert("alg".into(), "ES256".into());
        jwk.insert("kid".into(), "ec-1".into());
        jwk.insert("use".into(), "sig".into());
        let bytes = serde_json::to_vec(&jwk).unwrap();
        let key = SigningKey::from_jwk(&bytes, None).unwrap();
        assert_eq!((key.algorithm(), key.kid()), (Algorithm::ES256, "ec-1"));
        assert!(SigningKey::from_jwk(&bytes, Some(Algorithm::ES256)).is_ok());
        rejected(SigningKey::from_jwk(&bytes, Some(Algorithm::ES384)));
        assert!(matches!(
            SigningKey::from_jwk(P256_JWK, None),
            Err(KeyError::InvalidJwk(_))
        ));
        jwk.insert("use".into(), "enc".into());
        rejected(SigningKey::from_jwk(
            &serde_json::to_vec(&jwk).unwrap(),
            None,
        ));
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rejects_small_rsa_keys() {
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let msg = rejected(SigningKey::from_pem(RSA1024_PEM, alg, None));
            assert!(msg.contains("2048"), "{msg}");
        }
    }

    #[test]
    fn rejects_wrong_key_type_or_curve() {
        let msg = rejected(SigningKey::from_pem(P384_PEM, Algorithm::ES256, None));
        assert!(msg.contains("P-256") && msg.contains("P-384"), "{msg}");
        let msg = rejected(SigningKey::from_pem(P256_SEC1_PEM, Algorithm::ES512, None));
        assert!(msg.contains("P-521") && msg.contains("P-256"), "{msg}");
        let msg = rejected(SigningKey::from_pem(RSA_PEM, Algorithm::ES256, None));
        assert!(msg.contains("RSA"), "{msg}");
        let msg = rejected(SigningKey::from_pem(RSA_PKCS1_PEM, Algorithm::EdDSA, None));
        assert!(msg.contains("Ed25519"), "{msg}");
        let msg = rejected(SigningKey::from_pem(P256_PEM, Algorithm::RS256, None));
        assert!(msg.contains("P-256"), "{msg}");
        let msg = rejected(SigningKey::from_pem(ED25519_PEM, Algorithm::ES256, None));
        assert!(msg.contains("Ed25519"), "{msg}");
        let msg = rejected(SigningKey::from_pem(P256_PEM, Algorithm::EdDSA, None));
        assert!(msg.contains("P-256"), "{msg}");
        let msg = rejected(SigningKey::from_jwk(P384_JWK, Some(Algorithm::ES256)));
        assert!(msg.contains("P-384"), "{msg}");
        let msg = rejected(SigningKey::from_jwk(RSA_JWK, Some(Algorithm::EdDSA)));
        assert!(msg.contains("RSA"), "{msg}");
    }

    #[test]
    fn rejects_hmac_algorithms_for_provider_keys() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            rejected(SigningKey::from_pem(RSA_PEM, alg, None));
            rejected(SigningKey::from_jwk(P256_JWK, Some(alg)));
            assert!(SigningKey::generate(alg, None).is_err());
        }
        let oct = br#"{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}"#;
        rejected(SigningKey::from_jwk(oct, None));
        let oct = br#"{"kty":"oct","k":"c2VjcmV0"}"#;
        rejected(SigningKey::from_jwk(oct, Some(Algorithm::RS256)));
    }

    #[test]
    fn rejects_garbage_pem() {
        for input in [
            &b""[..],
            b"not a pem at all",
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ] {
            for alg in asymmetric() {
                assert!(
                    matches!(
                        SigningKey::from_pem(input, alg, None),
                        Err(KeyError::InvalidPem(_))
                    ),
                    "{alg} {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        for tag in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let pem = pem::encode(&pem::Pem::new(tag, vec![0x30, 0x03, 0x02, 0x01, 0x00]));
            for alg in asymmetric() {
                rejected(SigningKey::from_pem(pem.as_bytes(), alg, None));
            }
        }
    }

    fn edit_jwk(jwk: &[u8], edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut map: Map<String, Value> = serde_json::from_slice(jwk).unwrap();
        edit(&mut map);
        serde_json::to_vec(&map).unwrap()
    }

    #[test]
    fn rejects_jwk_whose_public_part_does_not_match() {
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES512,
            Algorithm::EdDSA,
        ] {
            let (other, _) = SigningKey::generate(alg, None).unwrap();
            let (_, jwk, _) = fixture_for(alg);
            let members: &[&str] = match alg {
                Algorithm::RS256 => &["n"],
                Algorithm::EdDSA => &["x"],
                _ => &["x", "y"],
            };
            let spliced = edit_jwk(jwk, |map| {
                for m in members {
                    map.insert((*m).into(), other.public_jwk()[*m].clone());
                }
            });
            rejected(SigningKey::from_jwk(&spliced, Some(alg)));
        }
        // Right n, p and q, but the CRT parameters swapped.
        let broken = edit_jwk(RSA_JWK, |map| {
            let (dp, dq) = (map["dp"].clone(), map["dq"].clone());
            map.insert("dp".into(), dq);
            map.insert("dq".into(), dp);
        });
        rejected(SigningKey::from_jwk(&broken, Some(Algorithm::RS256)));
    }

    #[test]
    fn rejects_malformed_jwks() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"[]".to_vec(),
            b"{".to_vec(),
            edit_jwk(P256_JWK, |m| {
                m.remove("d");
            }),
            edit_jwk(P256_JWK, |m| {
                m.remove("kty");
            }),
            edit_jwk(P256_JWK, |m| {
                m.insert("x".into(), "AAAA".into());
            }),
            edit_jwk(P256_JWK, |m| {
                let padded = format!("{}=", m["d"].as_str().unwrap());
                m.insert("d".into(), padded.into());
            }),
            edit_jwk(P256_JWK, |m| {
                m.insert("crv".into(), "P-192".into());
            }),
            edit_jwk(P256_JWK, |m| {
                m.insert("kid".into(), 7.into());
            }),
            edit_jwk(ED25519_JWK, |m| {
                m.insert("crv".into(), "Ed448".into());
            }),
            edit_jwk(ED25519_JWK, |m| {
                m.remove("d");
            }),
            edit_jwk(RSA_JWK, |m| {
                m.remove("qi");
            }),
            edit_jwk(RSA_JWK, |m| {
                m.insert("oth".into(), Value::Array(vec![]));
            }),
            edit_jwk(RSA_JWK, |m| {
                m.insert("kty".into(), "FOO".into());
            }),
        ];
        for (i, case) in cases.iter().enumerate() {
            for alg in asymmetric() {
                assert!(
                    SigningKey::from_jwk(case, Some(alg)).is_err(),
                    "case {i} {alg}"
                );
            }
        }
    }

    #[test]
    fn rejects_alg_none() {
        assert_eq!(Algorithm::from_name("none"), None);
        assert!("none".parse::<Algorithm>().is_err());
        assert!(serde_json::from_str::<Algorithm>("\"none\"").is_err());
        for name in ["none", "None", "rs256", "RS1", ""] {
            let jwk = edit_jwk(P256_JWK, |m| {
                m.insert("alg".into(), name.into());
            });
            assert!(
                matches!(
                    SigningKey::from_jwk(&jwk, Some(Algorithm::ES256)),
                    Err(KeyError::UnsupportedAlgorithm(n)) if n == name
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string().parse::<Algorithm>().unwrap(), alg);
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
        assert_eq!(Algorithm::EdDSA.as_str(), "EdDSA");
        assert!(matches!(
            "rs256".parse::<Algorithm>(),
            Err(KeyError::UnsupportedAlgorithm(n)) if n == "rs256"
        ));
        let symmetric: Vec<_> = Algorithm::ALL
            .into_iter()
            .filter(|a| a.is_symmetric())
            .collect();
        assert_eq!(
            symmetric,
            [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        );
    }

    #[test]
    fn generated_keys_reload_from_their_pem() {
        for alg in asymmetric() {
            let (key, pem) = SigningKey::generate(alg, Some("gen")).unwrap();
            assert_eq!(key.kid(), "gen");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let reloaded = SigningKey::from_pem(pem.as_bytes(), alg, Some("gen")).unwrap();
            assert_eq!(reloaded.public_jwk(), key.public_jwk(), "{alg}");
            assert!(reloaded.verify(b"m", &key.sign(b"m").unwrap()), "{alg}");
        }
    }

    #[test]
    fn verify_never_panics_on_odd_signatures() {
        for alg in asymmetric() {
            let (pem, _, _) = fixture_for(alg);
            let key = SigningKey::from_pem(pem, alg, None).unwrap();
            for len in [
                0, 1, 31, 32, 63, 64, 65, 66, 95, 96, 131, 132, 133, 255, 256, 257, 4096,
            ] {
                assert!(!key.verify(b"m", &vec![0; len]), "{alg} {len}");
                assert!(!key.verify(b"m", &vec![0xff; len]), "{alg} {len}");
            }
            assert!(!key.verify(b"", b""));
        }
    }

    #[test]
    fn key_set_lookup_and_jwks() {
        let mut set = KeySet::new();
        assert!(set.is_empty());
        set.add(SigningKey::from_pem(RSA_PEM, Algorithm::RS256, None).unwrap())
            .unwrap();
        set.add(SigningKey::from_pem(P256_PEM, Algorithm::ES256, None).unwrap())
            .unwrap();
        set.add(SigningKey::from_pem(RSA_PEM, Algorithm::PS256, Some("rsa-pss")).unwrap())
            .unwrap();
        set.add(SigningKey::from_pem(ED25519_PEM, Algorithm::EdDSA, Some("second-rsa")).unwrap())
            .unwrap();
        let (extra_rs256, _) = SigningKey::generate(Algorithm::RS256, Some("rs-2")).unwrap();
        set.add(extra_rs256).unwrap();
        assert!(matches!(
            set.add(SigningKey::from_pem(RSA_PEM, Algorithm::RS384, None).unwrap()),
            Err(KeyError::DuplicateKid(kid)) if kid == RSA_KID
        ));
        assert_eq!(set.len(), 5);
        assert_eq!(set.get(P256_KID).unwrap().algorithm(), Algorithm::ES256);
        assert!(set.get("nope").is_none());
        assert_eq!(set.for_algorithm(Algorithm::RS256).unwrap().kid(), RSA_KID);
        assert!(set.for_algorithm(Algorithm::ES384).is_none());
        assert_eq!(
            set.algorithms(),
            [
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::PS256,
                Algorithm::EdDSA
            ]
        );
        assert_eq!(set.iter().count(), 5);
        let jwks = set.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 5);
        for key in keys {
            let key = key.as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(!key.contains_key(private), "{private}");
            }
            assert_eq!(key["use"], "sig");
            assert!(Algorithm::from_name(key["alg"].as_str().unwrap()).is_some());
            assert!(key.contains_key("kid"));
        }
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["e"], "AQAB");
        assert_eq!(keys[1]["crv"], "P-256");
        assert_eq!(keys[3]["crv"], "Ed25519");
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let key = SigningKey::from_pem(RSA_PEM, Algorithm::RS256, None).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains(RSA_KID) && debug.contains("RS256"),
            "{debug}"
        );
        let n = key.public_jwk()["n"].as_str().unwrap();
        assert!(!debug.contains(&n[..16]));
        assert!(debug.len() < 200, "{debug}");
    }

    #[test]
    fn hmac_known_answer_and_rejections() {
        // RFC 4231 test case 2.
        let tag = hmac_sign(Algorithm::HS256, b"Jefe", b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        for (alg, len) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
        ] {
            let tag = hmac_sign(alg, b"secret", b"m").unwrap();
            assert_eq!(tag.len(), len);
            assert!(hmac_verify(alg, b"secret", b"m", &tag));
            assert!(!hmac_verify(alg, b"secreT", b"m", &tag));
            assert!(!hmac_verify(alg, b"secret", b"M", &tag));
            assert!(!hmac_verify(alg, b"secret", b"m", &tag[..len - 1]));
            assert!(!hmac_verify(alg, b"secret", b"m", b""));
            assert!(hmac_sign(alg, b"", b"m").is_err());
            let empty_key = hmac::Key::new(alg.hmac_algorithm().unwrap(), b"");
            let empty_tag = hmac::sign(&empty_key, b"m");
            assert!(!hmac_verify(alg, b"", b"m", empty_tag.as_ref()));
        }
        assert!(hmac_sign(Algorithm::RS256, b"secret", b"m").is_err());
        let tag = hmac_sign(Algorithm::HS256, b"secret", b"m").unwrap();
        assert!(!hmac_verify(Algorithm::RS256, b"secret", b"m", &tag));
        assert!(!hmac_verify(Algorithm::HS384, b"secret", b"m", &tag));
    }

    #[test]
    fn published_keys_are_in_the_jwks_but_never_sign() {
        let old = SigningKey::from_pem(P256_PEM, Algorithm::ES256, None).unwrap();
        let (new, _) = SigningKey::generate(Algorithm::ES256, None).unwrap();
        let new_kid = new.kid().to_owned();
        let mut set = KeySet::new();
        set.add_published(old).unwrap();
        assert!(set.is_empty(), "a published key is not a signing key");
        assert_eq!(
            set.for_algorithm(Algorithm::ES256).map(SigningKey::kid),
            None
        );
        assert!(set.algorithms().is_empty());
        set.add(new).unwrap();
        assert_eq!(
            set.for_algorithm(Algorithm::ES256).map(SigningKey::kid),
            Some(new_kid.as_str()),
            "the signing key signs, though the published one came first"
        );
        assert_eq!(set.algorithms(), vec![Algorithm::ES256]);
        assert_eq!(set.len(), 1);
        assert_eq!(set.iter().count(), 1);
        // Both verify: the published key is found by kid (an id_token_hint it signed).
        let message = b"header.payload";
        let old_sig = {
            let k = SigningKey::from_pem(P256_PEM, Algorithm::ES256, None).unwrap();
            k.sign(message).unwrap()
        };
        assert!(set.get(P256_KID).unwrap().verify(message, &old_sig));
        assert!(set.get(&new_kid).is_some());
        assert_eq!(
            set.published().map(SigningKey::kid).collect::<Vec<_>>(),
            vec![P256_KID]
        );
        let jwks = set.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![new_kid.as_str(), P256_KID]);
        assert!(!jwks.to_string().contains("\"d\""), "no private member");
        // Kids are unique across both kinds.
        let again = SigningKey::from_pem(P256_PEM, Algorithm::ES256, None).unwrap();
        assert!(matches!(set.add(again), Err(KeyError::DuplicateKid(_))));
        let again = SigningKey::from_pem(P256_PEM, Algorithm::ES256, None).unwrap();
        assert!(matches!(
            set.add_published(again),
            Err(KeyError::DuplicateKid(_))
        ));
    }

    #[test]
    fn keys_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKey>();
        assert_send_sync::<KeySet>();
        assert_send_sync::<KeyError>();
    }
}
