//! Encryption at rest for secret values.
//!
//! Secrets are sealed with ChaCha20-Poly1305 (`ring` AEAD) under a 256-bit key. A sealed value
//! is the text `enc:<key id>:<base64url(nonce || ciphertext || tag)>`, so it carries the id of the
//! key that sealed it and several keys can coexist (the newest seals, all can open). Each value
//! gets a fresh random 96-bit nonce from the OS generator, and the caller's *context* string
//! (for example `settings.llm_api_key`) is bound as associated data, so a ciphertext moved to
//! another field fails to open. Tampered or truncated data is an error, never garbage.
//!
//! In OSS mode the key is generated on first run into `<data dir>/.secret_key` (mode 0600) or
//! given in config (`OPENHANDS_SECRETS_KEY`, base64 of 32 bytes).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;
use thiserror::Error;

const PREFIX: &str = "enc";
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// Why sealing or opening failed. Never contains plaintext.
#[derive(Debug, Error)]
pub enum CryptoError {
    #[error("value is not in the sealed format `enc:<key id>:<data>`")]
    Format,
    #[error("no key with id `{0}` is configured")]
    UnknownKey(String),
    #[error("authentication failed: the data was tampered with or sealed under another key")]
    Tampered,
    #[error("a key must be {KEY_LEN} bytes encoded as base64, got {0}")]
    BadKey(String),
    #[error("the system random generator failed")]
    Random,
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// One encryption key and its id.
struct KeyEntry {
    id: String,
    key: LessSafeKey,
}

/// Seals and opens secret values. Cheap to share behind an `Arc`.
pub struct Cipher {
    /// Newest last; the newest key seals.
    keys: Vec<KeyEntry>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Cipher").field("key_ids", &ids).finish()
    }
}

impl Cipher {
    /// A cipher from `(id, raw key)` pairs, oldest first. The last one seals new values.
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::BadKey("no key".into()));
        }
        let keys = keys
            .into_iter()
            .map(|(id, raw)| {
                let unbound = UnboundKey::new(&CHACHA20_POLY1305, &raw)
                    .map_err(|_| CryptoError::BadKey("rejected by ring".into()))?;
                Ok(KeyEntry {
                    id,
                    key: LessSafeKey::new(unbound),
                })
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// A single-key cipher from a base64-encoded 32-byte key.
    pub fn from_base64_key(id: &str, encoded: &str) -> Result<Self, CryptoError> {
        let raw = decode_key(encoded)?;
        Self::new(vec![(id.to_owned(), raw)])
    }

    /// Loads the key from `path`, generating it (mode 0600) when the file does not exist.
    pub fn load_or_create_key_file(path: &Path) -> Result<Self, CryptoError> {
        let key_file_error = |reason: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let raw = decode_key(text.trim())
                    .map_err(|e| key_file_error(format!("unreadable key: {e}")))?;
                Self::new(vec![("k1".to_owned(), raw)])
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut raw)
                    .map_err(|_| CryptoError::Random)?;
                write_private_file(path, STANDARD.encode(raw).as_bytes())
                    .map_err(|e| key_file_error(e.to_string()))?;
                Self::new(vec![("k1".to_owned(), raw)])
            }
            Err(err) => Err(key_file_error(err.to_string())),
        }
    }

    /// Encrypts `plaintext`, binding `context` as associated data.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, CryptoError> {
        let entry = self.keys.last().ok_or(CryptoError::Random)?;
        let mut nonce_bytes = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce_bytes)
            .map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.as_bytes().to_vec();
        entry
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Tampered)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + in_out.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&in_out);
        Ok(format!(
            "{PREFIX}:{}:{}",
            entry.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Decrypts a value produced by [`Cipher::seal`] with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, CryptoError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Format);
        };
        let entry = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| CryptoError::Format)?;
        if blob.len() < NONCE_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce_bytes, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Format)?;
        let mut in_out = ciphertext.to_vec();
        let plain = entry
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Tampered)
    }
}

fn decode_key(encoded: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let bytes = STANDARD
        .decode(encoded.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim()))
        .map_err(|_| CryptoError::BadKey("not base64".into()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| CryptoError::BadKey(format!("{} bytes", bytes.len())))
}

/// Creates `path` with owner-only permissions; fails if it exists.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(id: &str, byte: u8) -> Cipher {
        Cipher::new(vec![(id.to_owned(), [byte; KEY_LEN])]).expect("valid key")
    }

    #[test]
    fn round_trip_returns_the_plaintext() {
        let c = cipher("k1", 7);
        let sealed = c.seal("ctx", "sk-123").expect("seal");
        assert!(sealed.starts_with("enc:k1:"));
        assert!(!sealed.contains("sk-123"));
        assert_eq!(c.open("ctx", &sealed).expect("open"), "sk-123");
    }

    #[test]
    fn same_plaintext_seals_differently_each_time() {
        let c = cipher("k1", 7);
        assert_ne!(
            c.seal("ctx", "x").expect("seal"),
            c.seal("ctx", "x").expect("seal")
        );
    }

    #[test]
    fn tampered_ciphertext_is_an_error() {
        let c = cipher("k1", 7);
        let sealed = c.seal("ctx", "secret").expect("seal");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(matches!(
            c.open("ctx", &tampered),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn wrong_context_is_an_error() {
        let c = cipher("k1", 7);
        let sealed = c.seal("settings.llm_api_key", "secret").expect("seal");
        assert!(c.open("settings.search_api_key", &sealed).is_err());
    }

    #[test]
    fn older_keys_still_open_and_newest_seals() {
        let old = cipher("k1", 1);
        let sealed_old = old.seal("ctx", "a").expect("seal");
        let both = Cipher::new(vec![
            ("k1".into(), [1; KEY_LEN]),
            ("k2".into(), [2; KEY_LEN]),
        ])
        .expect("keys");
        assert_eq!(both.open("ctx", &sealed_old).expect("open"), "a");
        assert!(both.seal("ctx", "b").expect("seal").starts_with("enc:k2:"));
    }

    #[test]
    fn unknown_key_id_is_named() {
        let sealed = cipher("k9", 1).seal("ctx", "a").expect("seal");
        let err = cipher("k1", 1).open("ctx", &sealed).expect_err("must fail");
        assert!(err.to_string().contains("k9"));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".secret_key");
        let first = Cipher::load_or_create_key_file(&path).expect("create");
        let sealed = first.seal("ctx", "v").expect("seal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = Cipher::load_or_create_key_file(&path).expect("load");
        assert_eq!(second.open("ctx", &sealed).expect("open"), "v");
    }
}
