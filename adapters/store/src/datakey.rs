//! The server's data key: AES-256-GCM encryption of the few secrets that must stay
//! retrievable (the client secret of HS* clients, which is their ID tokens' HMAC key).

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_flow::parking::ParkingSecret;
use rand_core::Rng as _;

use crate::StoreError;
use oidc_flow::Client;

/// The member under which a client's clear secret is stored, encrypted with the data key.
pub(crate) const SEALED_SECRET: &str = "client_secret_sealed";
/// The context a signing key's PEM is sealed under (with its kid appended), so a sealed
/// key cannot be moved to another row nor taken for a client secret.
const KEY_CONTEXT: &str = "signing-key:";

/// Environment variable holding the data key (base64url of 32 bytes); it wins over the key file.
pub const DATA_KEY_ENV: &str = "OIDC_FLOW_DATA_KEY";

/// An AES-256-GCM key for secrets at rest.
pub struct DataKey {
    key: RandomizedNonceKey,
    /// The parking secret of [`oidc_flow::parking`], derived from the same 32 bytes (HKDF
    /// with its own salt), so every node that shares the data key opens the others' seals.
    parking: ParkingSecret,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

fn bad(why: impl Into<String>) -> StoreError {
    StoreError::DataKey(why.into())
}

impl DataKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, StoreError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| bad("the data key was refused"))?;
        Ok(Self {
            key,
            parking: ParkingSecret::from_bytes(bytes),
        })
    }

    /// The secret the parking keys derive from.
    pub fn parking_secret(&self) -> &ParkingSecret {
        &self.parking
    }

    /// A key from base64url text (the environment variable or the key file).
    pub fn from_text(text: &str) -> Result<Self, StoreError> {
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| bad("the data key is not base64url"))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| bad("the data key must be 32 bytes"))?;
        Self::from_bytes(&bytes)
    }

    /// A new random key.
    pub fn generate() -> Result<(Self, String), StoreError> {
        let mut bytes = [0u8; 32];
        crate::driver::system_rng().fill_bytes(&mut bytes);
        Ok((Self::from_bytes(&bytes)?, URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The key from [`DATA_KEY_ENV`], else from the file `path` (created with a new key,
    /// readable by the owner only, when missing). The flag says whether the key is new:
    /// a new key cannot open anything sealed before, which the caller must check.
    pub fn from_env_or_file(path: Option<&Path>) -> Result<(Self, bool), StoreError> {
        if let Ok(text) = std::env::var(DATA_KEY_ENV) {
            return Ok((Self::from_text(&text)?, false));
        }
        let Some(path) = path else {
            // An in-memory database lives no longer than this key.
            return Ok((Self::generate()?.0, true));
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_text(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = Self::generate()?;
                write_private(path, &text)
                    .map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
                Ok((key, true))
            }
            Err(e) => Err(bad(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the client id) so a ciphertext
    /// cannot be moved to another record.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, StoreError> {
        let mut buf = plaintext.as_bytes().to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| bad("encryption failed"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`DataKey::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, StoreError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| bad("a sealed secret is not base64url"))?;
        let (nonce, ciphertext) = raw
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| bad("a sealed secret is too short"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad("bad nonce"))?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| bad("a sealed secret does not open with this data key"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad("a sealed secret is not UTF-8"))
    }
}

/// How the persistent backends keep what must stay retrievable: a client's JSON with its
/// clear secret sealed, and signing keys' PEM sealed under their kid.
impl DataKey {
    /// A client as stored: its JSON, with `client_secret` (if any) replaced by its sealed
    /// form under [`SEALED_SECRET`].
    pub(crate) fn seal_client(&self, client: &Client) -> Result<String, StoreError> {
        let mut value = serde_json::to_value(client)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(secret) = obj.remove("client_secret")
        {
            let sealed = self.seal(&client.client_id, secret.as_str().unwrap_or_default())?;
            obj.insert(SEALED_SECRET.to_owned(), sealed.into());
        }
        Ok(value.to_string())
    }

    /// The client [`DataKey::seal_client`] stored as `data`.
    pub(crate) fn open_client(&self, client_id: &str, data: &str) -> Result<Client, StoreError> {
        let mut value: serde_json::Value = serde_json::from_str(data)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(sealed) = obj.remove(SEALED_SECRET)
        {
            let sealed = sealed.as_str().unwrap_or_default();
            let secret = self.open(client_id, sealed)?;
            obj.insert("client_secret".to_owned(), secret.into());
        }
        Ok(serde_json::from_value(value)?)
    }

    /// The sealed form of signing key `kid`'s PEM.
    pub(crate) fn seal_signing_key(&self, kid: &str, pem: &str) -> Result<String, StoreError> {
        self.seal(&format!("{KEY_CONTEXT}{kid}"), pem)
    }

    /// The PEM of signing key `kid` from its sealed form.
    pub(crate) fn open_signing_key(&self, kid: &str, sealed: &str) -> Result<String, StoreError> {
        self.open(&format!("{KEY_CONTEXT}{kid}"), sealed)
    }

    /// Fails unless this key opens a sample of what a database already holds sealed (a
    /// signing key's `(kid, sealed PEM)` and a client's `(client_id, data)`): a wrong key is
    /// refused when the store opens, before it seals anything new under it, not at the
    /// first request that needs the secret.
    pub(crate) fn check_opens(
        &self,
        signing_key: Option<(String, String)>,
        client: Option<(String, String)>,
    ) -> Result<(), StoreError> {
        let wrong = || {
            bad(format!(
                "the data key does not open this database's sealed keys and secrets: it is not \
                 the key the database was made with (check {DATA_KEY_ENV} or the key file)"
            ))
        };
        if let Some((kid, sealed)) = signing_key {
            self.open_signing_key(&kid, &sealed).map_err(|_| wrong())?;
        }
        if let Some((client_id, data)) = client {
            let value: serde_json::Value = serde_json::from_str(&data)?;
            if let Some(sealed) = value.get(SEALED_SECRET).and_then(|v| v.as_str()) {
                self.open(&client_id, sealed).map_err(|_| wrong())?;
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_and_context_binding() {
        let (key, text) = DataKey::generate().unwrap();
        let sealed = key.seal("client-a", "s3cret").unwrap();
        assert_eq!(key.open("client-a", &sealed).unwrap(), "s3cret");
        assert!(key.open("client-b", &sealed).is_err());
        let again = DataKey::from_text(&text).unwrap();
        assert_eq!(again.open("client-a", &sealed).unwrap(), "s3cret");
        let (other, _) = DataKey::generate().unwrap();
        assert!(other.open("client-a", &sealed).is_err());
        assert!(key.open("client-a", "AAAA").is_err());
    }
}
