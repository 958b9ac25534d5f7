//! Session keys of conversation runtimes: what a running conversation's tools present to
//! `GET /api/refresh-tokens` to get a fresh git-provider token for its user.
//!
//! A key is the conversation id and its owner's scope sealed under the server's secrets
//! key ([`Cipher::seal`], authenticated encryption), so any replica that shares the key ring
//! can check one without storing anything, nobody can forge one, and a key names the one
//! conversation it was made for. It is minted when a conversation's task starts, handed to
//! the sandbox as `SESSION_API_KEY` (masked in events like every secret) and stops working
//! when the conversation is deleted (the route checks that it still exists) or when the
//! secrets key it was sealed with leaves the ring.

use crate::crypto::Cipher;
use crate::scope::UserScope;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The environment variable a sandbox gets the key in, as in OpenHands' nested runtimes.
pub const RUNTIME_KEY_ENV: &str = "SESSION_API_KEY";

/// Binds sealed keys to this use (a sealed settings value is not a key).
const CONTEXT: &str = "runtime-session-key";

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Conversation id.
    c: String,
    u: Option<String>,
    o: Option<String>,
}

/// Mints and checks runtime session keys.
#[derive(Debug, Clone)]
pub struct RuntimeKeys {
    cipher: Arc<Cipher>,
}

impl RuntimeKeys {
    pub fn new(cipher: Arc<Cipher>) -> Self {
        Self { cipher }
    }

    /// A key for `conversation_id` owned by `scope`; `None` only if sealing failed.
    pub fn mint(&self, scope: &UserScope, conversation_id: &str) -> Option<Secret> {
        let claims = Claims {
            c: conversation_id.to_owned(),
            u: scope.user_id.clone(),
            o: scope.org_id.clone(),
        };
        let plain = serde_json::to_string(&claims).ok()?;
        match self.cipher.seal(CONTEXT, &plain) {
            Ok(sealed) => Some(Secret::new(sealed)),
            Err(err) => {
                tracing::error!(error = %err, "minting a runtime session key failed");
                None
            }
        }
    }

    /// The owner of `conversation_id` when `presented` is a key minted for it.
    pub fn verify(&self, conversation_id: &str, presented: &str) -> Option<UserScope> {
        let plain = self.cipher.open(CONTEXT, presented).ok()?;
        let claims: Claims = serde_json::from_str(&plain).ok()?;
        (claims.c == conversation_id).then_some(UserScope {
            user_id: claims.u,
            org_id: claims.o,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn keys(byte: u8) -> RuntimeKeys {
        let cipher = Cipher::new(vec![("k1".into(), [byte; KEY_LEN])]).expect("key");
        RuntimeKeys::new(Arc::new(cipher))
    }

    #[test]
    fn a_key_names_its_conversation_and_owner_only() {
        let keys = keys(1);
        let scope = UserScope {
            user_id: Some("alice".into()),
            org_id: Some("acme".into()),
        };
        let key = keys.mint(&scope, "conv-1").expect("minted");
        assert_eq!(keys.verify("conv-1", key.expose()), Some(scope));
        assert_eq!(
            keys.verify("conv-2", key.expose()),
            None,
            "other conversation"
        );
        assert_eq!(keys.verify("conv-1", "enc:k1:AAAA"), None, "forged");
        assert_eq!(keys.verify("conv-1", ""), None);
        let tampered = format!("{}A", key.expose());
        assert_eq!(keys.verify("conv-1", &tampered), None);
        assert_eq!(
            super::tests::keys(2).verify("conv-1", key.expose()),
            None,
            "another server's key"
        );
    }

    #[test]
    fn a_sealed_value_of_another_kind_is_not_a_key() {
        let cipher = Arc::new(Cipher::new(vec![("k1".into(), [3; KEY_LEN])]).expect("key"));
        let sealed = cipher
            .seal("settings", r#"{"c":"conv-1","u":"alice","o":null}"#)
            .expect("sealed");
        assert_eq!(RuntimeKeys::new(cipher).verify("conv-1", &sealed), None);
    }
}
