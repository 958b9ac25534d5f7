//! Encryption at rest for secret values.
//!
//! Secrets are sealed with ChaCha20-Poly1305 (`ring` AEAD) under a 256-bit key. A sealed value
//! is the text `enc:<key id>:<base64url(nonce || ciphertext || tag)>`, so it carries the id of the
//! key that sealed it and several keys can coexist (the newest seals, all can open). Each value
//! gets a fresh random 96-bit nonce from the OS generator, and the caller's *context* string
//! (for example `settings.llm_api_key`) is bound as associated data, so a ciphertext moved to
//! another field fails to open. Tampered or truncated data is an error, never garbage.
//!
//! Keys come from config ([`Cipher::from_config`]): `secrets_key` is the key `k1`, and
//! `secrets_keys` lists versioned keys oldest first. Adding a key makes new writes use it at
//! once while old values still open; a rotation (`openhands keys rotate`) then re-seals the
//! old values, found with [`Cipher::needs_rotation`], after which the old key can be dropped.
//! With no key configured, OSS mode generates one on first run into `<data dir>/.secret_key`
//! (mode 0600) and uses it as `k1`.

use crate::config::Config;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;
use thiserror::Error;

const PREFIX: &str = "enc";
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// The key file generated in the data dir when no key is configured.
pub const KEY_FILE: &str = ".secret_key";
/// The id of `secrets_key` and of the generated key file.
pub const DEFAULT_KEY_ID: &str = "k1";
/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 32;

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
    /// The configured keys are unusable; `reason` names the config key, never key material.
    #[error("{0}")]
    Config(String),
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
    /// Ids must be unique and valid ([`is_valid_key_id`]).
    pub fn new(keys: Vec<(String, [u8; KEY_LEN])>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::BadKey("no key".into()));
        }
        for (index, (id, _)) in keys.iter().enumerate() {
            if !is_valid_key_id(id) {
                return Err(CryptoError::Config(format!(
                    "invalid key configuration: key id number {} is not 1-{MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, `_`, `-`",
                    index + 1
                )));
            }
            if keys[..index].iter().any(|(other, _)| other == id) {
                return Err(CryptoError::Config(format!(
                    "invalid key configuration: key id `{id}` is given twice; ids must be unique"
                )));
            }
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

    /// The cipher the configuration asks for: the keys of `secrets_key` (id `k1`) and
    /// `secrets_keys` (oldest first, the last seals), or, with neither set, the key file
    /// `<data_dir>/.secret_key`, generated on first run (id `k1`).
    pub fn from_config(config: &Config, data_dir: &Path) -> Result<Self, CryptoError> {
        let ring = config
            .key_ring()
            .map_err(|e| CryptoError::Config(e.to_string()))?;
        if ring.is_empty() {
            return Self::load_or_create_key_file(&data_dir.join(KEY_FILE));
        }
        Self::new(ring)
    }

    /// The id of the key that seals new values.
    pub fn newest_key_id(&self) -> &str {
        self.keys.last().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// The ids of the configured keys, oldest first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// True when `sealed` is a sealed value under a key other than the newest, i.e. a
    /// rotation should re-seal it. Text that is not in the sealed format is not (opening it
    /// fails anyway).
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        sealed_key_id(sealed).is_some_and(|id| id != self.newest_key_id())
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
                Self::new(vec![(DEFAULT_KEY_ID.to_owned(), raw)])
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; KEY_LEN];
                SystemRandom::new()
                    .fill(&mut raw)
                    .map_err(|_| CryptoError::Random)?;
                write_private_file(path, STANDARD.encode(raw).as_bytes())
                    .map_err(|e| key_file_error(e.to_string()))?;
                Self::new(vec![(DEFAULT_KEY_ID.to_owned(), raw)])
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

/// The key id a sealed value names (`enc:<id>:...`), or `None` when it is not in the
/// sealed format. Says nothing about whether the value opens.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    let rest = sealed.strip_prefix(PREFIX)?.strip_prefix(':')?;
    let (id, _) = rest.split_once(':')?;
    Some(id)
}

/// Key ids are 1 to 32 characters of `A-Z a-z 0-9 _ -`, so they fit the `enc:<id>:` envelope.
pub fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decodes a base64 (standard or URL-safe) key of exactly [`KEY_LEN`] bytes. The error
/// describes the input's shape, never its content.
pub fn decode_key(encoded: &str) -> Result<[u8; KEY_LEN], CryptoError> {
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

    fn b64(byte: u8) -> crate::secret::Secret {
        crate::secret::Secret::new(STANDARD.encode([byte; KEY_LEN]))
    }

    fn two_key_config() -> Config {
        Config {
            secrets_keys: vec![
                crate::config::VersionedKey::new("k1", b64(1)),
                crate::config::VersionedKey::new("k2", b64(2)),
            ],
            ..Config::default()
        }
    }

    #[test]
    fn needs_rotation_is_true_only_under_an_older_key() {
        let both = Cipher::new(vec![
            ("k1".into(), [1; KEY_LEN]),
            ("k2".into(), [2; KEY_LEN]),
        ])
        .expect("keys");
        assert_eq!(both.newest_key_id(), "k2");
        assert_eq!(both.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        let old = cipher("k1", 1).seal("ctx", "a").expect("seal");
        let new = both.seal("ctx", "a").expect("seal");
        assert!(both.needs_rotation(&old));
        assert!(!both.needs_rotation(&new));
        assert!(both.needs_rotation("enc:k0:AAAA"), "unknown older ids too");
        assert!(!both.needs_rotation("plain text"));
        assert!(!both.needs_rotation("enc:k1"));
    }

    #[test]
    fn sealed_key_id_reads_the_envelope_only() {
        assert_eq!(sealed_key_id("enc:k2:abc"), Some("k2"));
        assert_eq!(sealed_key_id("enc::abc"), Some(""));
        assert_eq!(sealed_key_id("enc:k2"), None);
        assert_eq!(sealed_key_id("xenc:k2:abc"), None);
    }

    #[test]
    fn key_ids_are_checked_for_shape_and_uniqueness() {
        assert!(is_valid_key_id("k1") && is_valid_key_id("2026-01_a"));
        assert!(!is_valid_key_id("") && !is_valid_key_id("a:b") && !is_valid_key_id("k 1"));
        assert!(!is_valid_key_id(&"k".repeat(MAX_KEY_ID_LEN + 1)));
        let dup = Cipher::new(vec![
            ("k1".into(), [1; KEY_LEN]),
            ("k1".into(), [2; KEY_LEN]),
        ]);
        assert!(matches!(dup, Err(CryptoError::Config(m)) if m.contains("k1")));
        let colon = Cipher::new(vec![("a:b".into(), [1; KEY_LEN])]);
        assert!(matches!(colon, Err(CryptoError::Config(_))));
    }

    #[test]
    fn from_config_uses_every_configured_key_and_the_newest_seals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Cipher::from_config(&two_key_config(), dir.path()).expect("cipher");
        assert_eq!(c.newest_key_id(), "k2");
        let old = cipher("k1", 1).seal("ctx", "v").expect("seal");
        assert_eq!(c.open("ctx", &old).expect("open"), "v");
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key file when keys are set"
        );
    }

    #[test]
    fn from_config_puts_secrets_key_first_as_k1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            secrets_key: Some(b64(1)),
            secrets_keys: vec![crate::config::VersionedKey::new("k2", b64(2))],
            ..Config::default()
        };
        let c = Cipher::from_config(&config, dir.path()).expect("cipher");
        assert_eq!(c.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        let old = cipher("k1", 1).seal("ctx", "v").expect("seal");
        assert_eq!(c.open("ctx", &old).expect("open"), "v");
    }

    #[test]
    fn from_config_without_keys_falls_back_to_the_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Cipher::from_config(&Config::default(), dir.path()).expect("cipher");
        assert_eq!(c.newest_key_id(), DEFAULT_KEY_ID);
        assert!(dir.path().join(KEY_FILE).exists());
        let again = Cipher::from_config(&Config::default(), dir.path()).expect("cipher");
        let sealed = c.seal("ctx", "v").expect("seal");
        assert_eq!(again.open("ctx", &sealed).expect("open"), "v");
    }

    #[test]
    fn from_config_refuses_a_short_key_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = STANDARD.encode([9u8; 16]);
        let config = Config {
            secrets_keys: vec![crate::config::VersionedKey::new(
                "k2",
                crate::secret::Secret::new(short.clone()),
            )],
            ..Config::default()
        };
        let err = Cipher::from_config(&config, dir.path()).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("secrets_keys") && text.contains("16 bytes"),
            "{text}"
        );
        assert!(!text.contains(&short), "{text}");
    }
}
