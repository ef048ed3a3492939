//! Sealing a parked authorization into the value the browser carries.
//!
//! An authorization request waiting for login or consent is not stored: it is encrypted and
//! authenticated (AES-256-GCM) into an opaque string that the login or consent form carries
//! back, so an unauthenticated `GET /authorize` writes nothing anywhere. The seal binds:
//!
//! - **the key**: a key per hour ([`PARKING_KEY_PERIOD`]), derived with HKDF-SHA256 from
//!   one [`ParkingSecret`] that every node of a provider shares, so keys rotate without
//!   coordination and any node opens what another sealed;
//! - **the browser**: a digest of a value only that browser holds (its CSRF cookie, say) is
//!   authenticated data, so a sealed request copied to another browser does not open;
//! - **the expiry**: [`crate::authorize::PENDING_LIFETIME`] after it was parked;
//! - **the client and the whole validated request**, inside the ciphertext: nothing in it
//!   can be edited, and nothing outside this module can make one (the parked type has no
//!   public constructor and no `Deserialize`).
//!
//! A seal can be opened any number of times (to show the page again after a wrong
//! password); using it is single-use through the store: each parked request carries a
//! random id whose mark the driver claims, once, when the end-user is authenticated or has
//! answered ([`crate::authorize::PendingAuthorization::single_use`]).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Prk, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use time::OffsetDateTime;

/// How long one derived parking key seals; a seal opens under its own period's key and the
/// next one's, which covers [`crate::authorize::PENDING_LIFETIME`] and some clock skew.
pub const PARKING_KEY_PERIOD: i64 = 3600;

/// Largest sealed value accepted (the longest request the core accepts, sealed, fits).
pub const MAX_SEALED_BYTES: usize = 48 * 1024;

/// What every seal's authenticated data starts with: the format and its version.
const AAD_LABEL: &[u8] = b"oidc-flow parked authorization v1\0";
/// Prefix of the wire form, so a future format can be told apart.
const WIRE_PREFIX: &str = "p1.";

/// The secret every node of a provider shares, from which the hourly parking keys derive.
///
/// Give every node the same 32 bytes (the store drivers derive them from the data key); a
/// node with another secret cannot open what the others sealed.
pub struct ParkingSecret {
    prk: Prk,
}

impl fmt::Debug for ParkingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParkingSecret(<redacted>)")
    }
}

impl ParkingSecret {
    /// The secret from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let prk = Salt::new(HKDF_SHA256, b"oidc-flow parking keys").extract(bytes);
        Self { prk }
    }

    /// A random secret, for a provider that lives in one process (tests, the memory store).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    /// The key of period `period` (seconds since the epoch / [`PARKING_KEY_PERIOD`]).
    fn key(&self, period: u64) -> Option<LessSafeKey> {
        let info = period.to_be_bytes();
        let info = [info.as_slice()];
        let okm = self.prk.expand(&info, &AES_256_GCM).ok()?;
        let key: UnboundKey = okm.into();
        Some(LessSafeKey::new(key))
    }
}

fn period_of(now: OffsetDateTime) -> u64 {
    u64::try_from(now.unix_timestamp().div_euclid(PARKING_KEY_PERIOD)).unwrap_or(0)
}

/// The authenticated data: label, period, and a digest of the browser's binding value.
fn aad(period: u64, browser: &str) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, browser.as_bytes());
    let mut out = Vec::with_capacity(AAD_LABEL.len() + 8 + 32);
    out.extend_from_slice(AAD_LABEL);
    out.extend_from_slice(&period.to_be_bytes());
    out.extend_from_slice(digest.as_ref());
    out
}

/// Encrypts `plaintext` for `browser` under the current period's key. `None` only if the
/// key could not be derived (it cannot, for AES-256-GCM's 32 bytes).
pub(crate) fn seal(
    secret: &ParkingSecret,
    browser: &str,
    mut plaintext: Vec<u8>,
    rng: &mut impl CryptoRng,
    now: OffsetDateTime,
) -> Option<String> {
    let period = period_of(now);
    let key = secret.key(period)?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(period, browser)),
        &mut plaintext,
    )
    .ok()?;
    let mut raw = Vec::with_capacity(8 + NONCE_LEN + plaintext.len());
    raw.extend_from_slice(&period.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&plaintext);
    Some(format!("{WIRE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsealed {
    /// Not ours, edited, sealed for another browser, or under a key no longer accepted.
    Refused,
}

/// Decrypts a value [`seal`] made for `browser`, under its period's key if that period is
/// the current one, the one before, or (clock skew between nodes) the one after.
pub(crate) fn open(
    secret: &ParkingSecret,
    browser: &str,
    sealed: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, Unsealed> {
    if sealed.len() > MAX_SEALED_BYTES || browser.is_empty() {
        return Err(Unsealed::Refused);
    }
    let body = sealed.strip_prefix(WIRE_PREFIX).ok_or(Unsealed::Refused)?;
    let mut raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| Unsealed::Refused)?;
    if raw.len() < 8 + NONCE_LEN {
        return Err(Unsealed::Refused);
    }
    let mut ciphertext = raw.split_off(8 + NONCE_LEN);
    let period_bytes: [u8; 8] = raw
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(Unsealed::Refused)?;
    let nonce: [u8; NONCE_LEN] = raw
        .get(8..)
        .and_then(|b| b.try_into().ok())
        .ok_or(Unsealed::Refused)?;
    let period = u64::from_be_bytes(period_bytes);
    let current = period_of(now);
    if period.saturating_add(1) < current || period > current.saturating_add(1) {
        return Err(Unsealed::Refused);
    }
    let key = secret.key(period).ok_or(Unsealed::Refused)?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(period, browser)),
            &mut ciphertext,
        )
        .map_err(|_| Unsealed::Refused)?;
    let len = plain.len();
    ciphertext.truncate(len);
    Ok(ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn opens_for_the_same_browser_only_and_within_two_periods() {
        let secret = ParkingSecret::from_bytes(&[7; 32]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sealed = seal(&secret, "browser-a", b"hello".to_vec(), &mut rng, at(0)).unwrap();
        assert_eq!(
            open(&secret, "browser-a", &sealed, at(10)).unwrap(),
            b"hello"
        );
        assert_eq!(
            open(&secret, "browser-b", &sealed, at(10)),
            Err(Unsealed::Refused)
        );
        assert_eq!(
            open(&secret, "browser-a", &sealed, at(3 * PARKING_KEY_PERIOD)),
            Err(Unsealed::Refused)
        );
        let other = ParkingSecret::from_bytes(&[8; 32]);
        assert_eq!(
            open(&other, "browser-a", &sealed, at(10)),
            Err(Unsealed::Refused)
        );
    }

    #[test]
    fn every_edited_byte_is_refused() {
        let secret = ParkingSecret::from_bytes(&[7; 32]);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let sealed = seal(&secret, "b", b"{\"x\":1}".to_vec(), &mut rng, at(0)).unwrap();
        let raw = URL_SAFE_NO_PAD
            .decode(&sealed[WIRE_PREFIX.len()..])
            .unwrap();
        for i in 0..raw.len() {
            let mut edited = raw.clone();
            edited[i] ^= 0x01;
            let text = format!("{WIRE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&edited));
            assert_eq!(
                open(&secret, "b", &text, at(0)),
                Err(Unsealed::Refused),
                "byte {i}"
            );
        }
        assert_eq!(open(&secret, "b", "p1.", at(0)), Err(Unsealed::Refused));
        assert_eq!(open(&secret, "b", "", at(0)), Err(Unsealed::Refused));
        assert_eq!(open(&secret, "", &sealed, at(0)), Err(Unsealed::Refused));
    }
}
