//! Cookies whose value is sealed (encrypted and authenticated) with the server's secrets
//! key: the login session, a login or an account link in progress.
//!
//! Each cookie seals under its own context (the AEAD's associated data), so a value sealed
//! for one purpose (another cookie, a stored secret) never opens as another, and the
//! browser can neither read nor change what it holds. Attributes are always `HttpOnly` and
//! `SameSite=Lax` (the cookies must survive the top-level redirect back from a provider),
//! plus `Secure` unless the server runs on plain http.

use openhands_core::crypto::Cipher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Why a value could not be sealed (serialization or the cipher failed).
#[derive(Debug, thiserror::Error)]
#[error("the cookie could not be sealed: {0}")]
pub struct SealError(String);

/// One sealed cookie: its name, path and sealing context.
#[derive(Debug, Clone)]
pub struct SealedCookie {
    name: &'static str,
    path: &'static str,
    context: &'static str,
    cipher: Arc<Cipher>,
    secure: bool,
}

impl SealedCookie {
    pub fn new(
        name: &'static str,
        path: &'static str,
        context: &'static str,
        cipher: Arc<Cipher>,
        secure: bool,
    ) -> Self {
        Self {
            name,
            path,
            context,
            cipher,
            secure,
        }
    }

    /// The sealed cookie value of `value`.
    pub fn seal<T: Serialize>(&self, value: &T) -> Result<String, SealError> {
        let json = serde_json::to_string(value).map_err(|e| SealError(e.to_string()))?;
        self.cipher
            .seal(self.context, &json)
            .map_err(|e| SealError(e.to_string()))
    }

    /// What a cookie value holds, if it opens (tampered, truncated, foreign: `None`).
    pub fn open<T: DeserializeOwned>(&self, value: &str) -> Option<T> {
        let json = self.cipher.open(self.context, value).ok()?;
        serde_json::from_str(&json).ok()
    }

    /// What a `Set-Cookie` value written by this cookie holds.
    pub fn open_header<T: DeserializeOwned>(&self, header: &str) -> Option<T> {
        let value = header
            .strip_prefix(self.name)?
            .strip_prefix('=')?
            .split(';')
            .next()?;
        self.open(value)
    }

    /// `Set-Cookie` carrying `value`; without `max_age`, a browser-session cookie.
    pub fn header<T: Serialize>(
        &self,
        value: &T,
        max_age: Option<i64>,
    ) -> Result<String, SealError> {
        let sealed = self.seal(value)?;
        Ok(self.render(&sealed, max_age))
    }

    /// `Set-Cookie` that deletes the cookie.
    pub fn clear_header(&self) -> String {
        self.render("", Some(0))
    }

    fn render(&self, value: &str, max_age: Option<i64>) -> String {
        let mut header = format!(
            "{}={value}; Path={}; HttpOnly; SameSite=Lax",
            self.name, self.path
        );
        if let Some(age) = max_age {
            header.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            header.push_str("; Secure");
        }
        header
    }
}
