//! The key that seals the login cookies, kept apart from the key that seals data at rest.
//!
//! The session and login cookies travel to every browser; the secrets key protects every
//! stored LLM key and provider token. Sealing both with one key would tie them together:
//! rotating the cookie key (to log every browser out) would mean re-sealing the database,
//! and any weakness in how cookies are handled would be a weakness of the data key.
//!
//! So the cookies have their own rotation list, `auth.cookie_keys` (`OPENHANDS_COOKIE_KEYS`,
//! the same `id:key` format as `secrets_keys`). When it is not set, each secrets key gives
//! a cookie key by HKDF-SHA256 (RFC 5869) under [`DERIVATION_INFO`], with the same id: the
//! data key itself never seals a cookie, and rotating the secrets keys rotates the cookie
//! keys with them (old cookies keep opening while the old key stays listed).

use openhands_core::auth_config::CookieKeyError as ConfigKeyError;
use openhands_core::config::Config;
use openhands_core::crypto::{Cipher, CryptoError, DEFAULT_KEY_ID, KEY_FILE, KEY_LEN, decode_key};
use ring::hkdf;
use std::path::Path;

/// HKDF `info`: what a derived key is for. Another purpose needs another label.
pub const DERIVATION_INFO: &[u8] = b"openhands auth cookie key v1";
/// HKDF salt (fixed: the input is already a uniformly random key).
const DERIVATION_SALT: &[u8] = b"openhands-oidc-auth";

/// Why the cookie key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    #[error(transparent)]
    Configured(#[from] ConfigKeyError),
    /// The secrets keys the cookie key is derived from are unusable.
    #[error("deriving the cookie key from the secrets key: {0}")]
    SecretsKey(String),
    #[error("the cookie key: {0}")]
    Cipher(#[from] CryptoError),
}

/// The cipher of the login and session cookies: `auth.cookie_keys` when set, else keys
/// derived from the secrets keys (`secrets_key`/`secrets_keys`, or the key file the server
/// generated under `data_dir`).
pub fn cookie_cipher(config: &Config, data_dir: &Path) -> Result<Cipher, CookieKeyError> {
    let configured = config.auth.cookie_key_ring()?;
    if !configured.is_empty() {
        return Ok(Cipher::new(configured)?);
    }
    derived_cipher(&secrets_ring(config, data_dir)?)
}

/// One cookie key per secrets key, under the same ids, oldest first.
pub fn derived_cipher(secrets: &[(String, [u8; KEY_LEN])]) -> Result<Cipher, CookieKeyError> {
    let keys = secrets
        .iter()
        .map(|(id, raw)| Ok((id.clone(), derive_key(raw)?)))
        .collect::<Result<Vec<_>, CookieKeyError>>()?;
    Ok(Cipher::new(keys)?)
}

/// HKDF-SHA256 of a secrets key under [`DERIVATION_INFO`].
pub fn derive_key(secret: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], CookieKeyError> {
    let failed = |_| CookieKeyError::SecretsKey("HKDF expansion failed".into());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DERIVATION_SALT).extract(secret);
    let okm = prk
        .expand(&[DERIVATION_INFO], hkdf::HKDF_SHA256)
        .map_err(failed)?;
    let mut key = [0u8; KEY_LEN];
    okm.fill(&mut key).map_err(failed)?;
    Ok(key)
}

/// The raw secrets keys, as `Cipher::from_config` finds them: the configured ring, else the
/// key file (which the server created before any plugin was built).
fn secrets_ring(
    config: &Config,
    data_dir: &Path,
) -> Result<Vec<(String, [u8; KEY_LEN])>, CookieKeyError> {
    let ring = config
        .key_ring()
        .map_err(|e| CookieKeyError::SecretsKey(e.to_string()))?;
    if !ring.is_empty() {
        return Ok(ring);
    }
    let path = data_dir.join(KEY_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CookieKeyError::SecretsKey(format!(
            "reading {}: {e}; set `auth.cookie_keys` (OPENHANDS_COOKIE_KEYS) or `secrets_keys`",
            path.display()
        ))
    })?;
    let raw = decode_key(text.trim())
        .map_err(|e| CookieKeyError::SecretsKey(format!("the key file {}: {e}", path.display())))?;
    Ok(vec![(DEFAULT_KEY_ID.to_owned(), raw)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_key_differs_from_its_secrets_key_and_is_stable() {
        let secret = [9u8; KEY_LEN];
        let derived = derive_key(&secret).expect("derive");
        assert_ne!(derived, secret);
        assert_eq!(derived, derive_key(&secret).expect("again"));
        assert_ne!(derived, derive_key(&[10u8; KEY_LEN]).expect("other"));
    }

    #[test]
    fn what_the_data_key_seals_the_cookie_key_does_not_open() {
        let secret = [3u8; KEY_LEN];
        let data = Cipher::new(vec![("k1".into(), secret)]).expect("data cipher");
        let cookies = derived_cipher(&[("k1".into(), secret)]).expect("cookie cipher");
        let sealed = data.seal("cookie:keycloak_auth:v1", "{}").expect("seal");
        assert!(cookies.open("cookie:keycloak_auth:v1", &sealed).is_err());
        let sealed = cookies.seal("cookie:keycloak_auth:v1", "{}").expect("seal");
        assert!(data.open("cookie:keycloak_auth:v1", &sealed).is_err());
        assert_eq!(cookies.newest_key_id(), "k1", "ids carry over");
    }

    #[test]
    fn without_configured_keys_the_key_file_is_derived_from() {
        use base64::Engine;
        let dir = tempfile::tempdir().expect("dir");
        let config = Config::default();
        assert!(
            cookie_cipher(&config, dir.path()).is_err(),
            "no key file yet"
        );
        let raw = [5u8; KEY_LEN];
        std::fs::write(
            dir.path().join(KEY_FILE),
            base64::engine::general_purpose::STANDARD.encode(raw),
        )
        .expect("key file");
        let cipher = cookie_cipher(&config, dir.path()).expect("derived");
        let expected = derived_cipher(&[("k1".into(), raw)]).expect("derived");
        let sealed = cipher.seal("c", "v").expect("seal");
        assert_eq!(expected.open("c", &sealed).expect("open"), "v");
    }
}
