//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`
//! under the webhook secret, checked in constant time by core's helper (`ring::hmac::verify`).

use openhands_core::extension::{VerifyError, verify_hmac_sha256_hex};
use secrecy::{ExposeSecret, SecretString};

/// The header GitHub signs deliveries with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// Checks `header` (the value of `X-Hub-Signature-256`, if present) against `body`.
///
/// Missing header → [`VerifyError::Missing`]; no `sha256=` prefix or bad hex →
/// [`VerifyError::Malformed`]; wrong signature → [`VerifyError::Mismatch`].
pub fn verify_webhook_signature(
    secret: &SecretString,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = header.ok_or(VerifyError::Missing(SIGNATURE_HEADER))?;
    let hex = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed)?;
    if hex.is_empty() {
        return Err(VerifyError::Malformed);
    }
    verify_hmac_sha256_hex(secret.expose_secret().as_bytes(), body, hex)
}
