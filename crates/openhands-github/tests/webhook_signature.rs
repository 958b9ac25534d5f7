//! `X-Hub-Signature-256` checks.

use openhands_core::extension::{VerifyError, sign_hmac_sha256_hex};
use openhands_github::verify_webhook_signature;
use secrecy::SecretString;

const BODY: &[u8] = br#"{"action":"opened","installation":{"id":7}}"#;

fn secret() -> SecretString {
    SecretString::from("whsec-test")
}

fn header_for(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", sign_hmac_sha256_hex(secret.as_bytes(), body))
}

#[test]
fn the_right_signature_is_accepted() {
    let header = header_for("whsec-test", BODY);
    assert_eq!(
        verify_webhook_signature(&secret(), Some(&header), BODY),
        Ok(())
    );
}

#[test]
fn a_signature_under_another_secret_is_refused() {
    let header = header_for("other", BODY);
    assert_eq!(
        verify_webhook_signature(&secret(), Some(&header), BODY),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn a_signature_of_another_body_is_refused() {
    let header = header_for("whsec-test", b"{}");
    assert_eq!(
        verify_webhook_signature(&secret(), Some(&header), BODY),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn a_missing_header_is_refused() {
    assert_eq!(
        verify_webhook_signature(&secret(), None, BODY),
        Err(VerifyError::Missing("X-Hub-Signature-256"))
    );
}

#[test]
fn malformed_headers_are_refused() {
    let bare_hex = sign_hmac_sha256_hex(b"whsec-test", BODY);
    for header in [
        bare_hex.as_str(),
        "sha256=",
        "sha256=zz",
        "sha256=abc",
        "sha1=0123456789abcdef0123456789abcdef01234567",
    ] {
        assert_eq!(
            verify_webhook_signature(&secret(), Some(header), BODY),
            Err(VerifyError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn a_truncated_signature_is_refused() {
    let header = header_for("whsec-test", BODY);
    let truncated = &header[..header.len() - 2];
    assert_eq!(
        verify_webhook_signature(&secret(), Some(truncated), BODY),
        Err(VerifyError::Mismatch)
    );
}
