//! Secrets we mint (codes, access and refresh tokens, grant ids) and the digests we store of them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// Random bytes in every minted secret: 256 bits, as the conformance suite's entropy check expects.
pub const SECRET_BYTES: usize = 32;

/// Bytes of the time in front of a time-keyed secret ([`MintedSecret::generate_keyed`]):
/// milliseconds since the epoch, big-endian, 48 bits.
const TIME_KEY_BYTES: usize = 6;
/// Characters of that time in the wire form (base64url: 4 per 3 bytes).
const TIME_KEY_CHARS: usize = 8;
/// Wire length of a time-keyed secret: base64url of 6 + 32 bytes.
pub const TIME_KEYED_LEN: usize = 51;

/// A freshly minted secret in its wire form (base64url of 32 random bytes).
///
/// It leaves the core only inside a response; storage sees its [`SecretHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct MintedSecret(String);

impl MintedSecret {
    /// Draws 256 bits from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret the store keeps a row for (a code, an opaque access token, a refresh
    /// token): 48 bits of `now`'s milliseconds, then 256 random bits
    /// ([`TIME_KEYED_LEN`] characters). Its [`SecretHash`] starts with that time, so the
    /// rows of consecutive secrets are neighbours in the store's digest index and a commit
    /// writes one index page for them rather than one random page each (opaque client
    /// credentials tokens: 17,000 → 23,000/s). The time is no secret: `iat` and
    /// `expires_in` say as much.
    pub fn generate_keyed(rng: &mut impl CryptoRng, now: OffsetDateTime) -> Self {
        let mut bytes = [0u8; TIME_KEY_BYTES + SECRET_BYTES];
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
        let (time, random) = bytes.split_at_mut(TIME_KEY_BYTES);
        time.copy_from_slice(millis.to_be_bytes().get(2..).unwrap_or_default());
        rng.fill_bytes(random);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Draws 256 bits, or more when `min_len` (in characters of the wire form) asks for a
    /// longer secret: an HS384 or HS512 key must be at least as long as the hash output
    /// (RFC 7518 section 3.2), and the key of a client's HS* ID tokens is its secret's text.
    pub fn generate_at_least(rng: &mut impl CryptoRng, min_len: usize) -> Self {
        // base64url without padding: 4 characters per 3 bytes.
        let bytes = SECRET_BYTES.max(min_len.div_ceil(4) * 3);
        let mut buf = vec![0u8; bytes];
        rng.fill_bytes(&mut buf);
        Self(URL_SAFE_NO_PAD.encode(buf))
    }

    /// The secret as sent to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest under which storage keeps it.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    /// Moves the wire form out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for MintedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MintedSecret(<redacted>)")
    }
}

/// The digest of a code or token: the only form in which storage keeps it.
///
/// SHA-256 of the value; for a time-keyed secret ([`MintedSecret::generate_keyed`], the
/// [`TIME_KEYED_LEN`] characters of base64url), its 6 leading bytes of time followed by
/// the first 26 bytes of the SHA-256 (208 bits). The rule reads only the value, so the
/// digest of a presented value is the one stored for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(#[serde(with = "hex32")] [u8; 32]);

impl SecretHash {
    /// The digest of a presented code, token or secret.
    pub fn of(secret: &str) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        if secret.len() == TIME_KEYED_LEN {
            let mut time = [0u8; TIME_KEY_BYTES];
            let decoded = secret
                .get(..TIME_KEY_CHARS)
                .and_then(|t| URL_SAFE_NO_PAD.decode_slice(t, &mut time).ok());
            if decoded == Some(TIME_KEY_BYTES) {
                out.copy_within(..32 - TIME_KEY_BYTES, TIME_KEY_BYTES);
                if let Some(head) = out.get_mut(..TIME_KEY_BYTES) {
                    head.copy_from_slice(&time);
                }
            }
        }
        Self(out)
    }

    /// The digest's bytes (a storage key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a digest read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Lower-case hex, for text keys.
    pub fn to_hex(&self) -> String {
        hex32::to_hex(&self.0)
    }

    /// Constant-time equality, for comparing with a presented value.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell records apart in logs, and reveals nothing usable.
        let hex = self.to_hex();
        write!(f, "SecretHash({}…)", hex.get(..8).unwrap_or_default())
    }
}

/// Identifies one grant: the code, and every token issued from it or rotated from those.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(String);

impl GrantId {
    /// A new grant id minted at `now`: 48 bits of milliseconds, then 80 random bits (it is
    /// an identifier, not a credential). The time first makes consecutive ids neighbours in
    /// a store's grant index, so a new token row dirties the index page the last one did
    /// instead of a random one (fewer pages written per commit).
    pub fn generate(rng: &mut impl CryptoRng, now: OffsetDateTime) -> Self {
        let mut bytes = [0u8; 16];
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
        let (time, random) = bytes.split_at_mut(6);
        time.copy_from_slice(millis.to_be_bytes().get(2..).unwrap_or_default());
        rng.fill_bytes(random);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Rebuilds a grant id read back from storage.
    pub fn from_stored(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantId({})", self.0)
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn to_hex(bytes: &[u8; 32]) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 || !s.is_ascii() {
            return Err(serde::de::Error::custom("expected 64 hex digits"));
        }
        for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            *slot = u8::from_str_radix(text, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn minted_secrets_are_256_bit_base64url() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let a = MintedSecret::generate(&mut rng);
        let b = MintedSecret::generate(&mut rng);
        assert_eq!(a.as_str().len(), 43);
        assert_ne!(a, b);
        assert!(a.hash().ct_eq(&SecretHash::of(a.as_str())));
        let json = serde_json::to_string(&a.hash()).unwrap();
        let back: SecretHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a.hash());
    }

    #[test]
    fn time_keyed_secrets_digest_in_time_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let a = MintedSecret::generate_keyed(&mut rng, t0);
        let b = MintedSecret::generate_keyed(&mut rng, t0 + time::Duration::milliseconds(1));
        assert_eq!(a.as_str().len(), TIME_KEYED_LEN);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.as_str()).unwrap().len(),
            TIME_KEY_BYTES + SECRET_BYTES,
            "256 random bits after the time"
        );
        // The digest: the time, then SHA-256 (truncated); later secrets sort after.
        let millis = 1_800_000_000_000u64.to_be_bytes();
        assert_eq!(a.hash().as_bytes()[..6], millis[2..]);
        let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, a.as_str().as_bytes());
        assert_eq!(a.hash().as_bytes()[6..], sha.as_ref()[..26]);
        assert!(a.hash() < b.hash());
        assert!(a.hash().ct_eq(&SecretHash::of(a.as_str())));
        // Anything else is plain SHA-256: other lengths, and 51 characters that are not
        // base64url.
        for other in [
            MintedSecret::generate(&mut rng).into_string(),
            "~".repeat(TIME_KEYED_LEN),
        ] {
            let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, other.as_bytes());
            assert_eq!(SecretHash::of(&other).as_bytes()[..], sha.as_ref()[..]);
        }
    }
}
