//! API keys: long-lived bearer credentials for scripts and CI, of one user in one org.
//!
//! A key is `ohk_` followed by [`RANDOM_CHARS`] base62 characters drawn from the system's
//! secure random generator. The plaintext is shown once, by [`create`]; the database keeps
//! its SHA-256 ([`hash_key`]) and a display prefix (the first [`PREFIX_LEN`] characters, so
//! a user can tell their keys apart). [`verify_api_key`] is what the auth layer calls for
//! `Authorization: Bearer <key>`: it answers with the key's owner while the key exists, has
//! not expired and its user is still a member of its org.
//!
//! Why a plain, unsalted SHA-256 and not a password hash (argon2, bcrypt): those are slow
//! and salted to protect *low-entropy* human secrets from guessing. A key here carries 238
//! random bits (190 of them beyond the displayed prefix), so guessing a key from its hash is
//! out of reach whatever the hash's speed, and a salt adds nothing where no two keys (and
//! no precomputed table) can share a value. A fast unsalted hash is what makes the lookup a
//! single indexed equality on the unique `key_hash` column, cheap on every request.
//!
//! Timing: there is no secret comparison in this module. The database compares the
//! *hash* of the presented key with stored hashes; how long that takes can at most reveal
//! how many leading bytes of a SHA-256 output matched, and an attacker cannot steer the
//! hash of a guess towards a stored one (preimage resistance), so it tells nothing about
//! any key.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use openhands_core::secret::Secret;
use openhands_sql_store::Database;
use openhands_sql_store::entity::{api_key, org_membership};
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;

/// The start of every key: tells a key apart from other tokens, in a header or in a leak
/// scanner's findings.
pub const KEY_PREFIX: &str = "ohk_";
/// Random base62 characters after [`KEY_PREFIX`]: 40 × log2(62) ≈ 238 bits.
pub const RANDOM_CHARS: usize = 40;
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_CHARS;
/// Random characters kept for display in the `prefix` column (≈ 48 bits; the other 32
/// characters, ≈ 190 bits, are never stored or shown again).
pub const DISPLAY_CHARS: usize = 8;
/// Length of the stored display prefix: `ohk_` and [`DISPLAY_CHARS`] characters.
pub const PREFIX_LEN: usize = KEY_PREFIX.len() + DISPLAY_CHARS;
/// Name given to a key created without one.
pub const DEFAULT_NAME: &str = "API key";
/// Longest key name accepted, in characters.
pub const MAX_NAME_LEN: usize = 255;
/// `last_used_at` is written at most once per this many seconds per key, so a busy key
/// does not turn every request into a database write.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random bytes at or above this are discarded, so that `byte % 62` is uniform (248 = 4 × 62).
const UNBIASED_BELOW: u8 = 248;

/// Why an API key operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("name must be at most {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("Expiration date cannot be in the past")]
    ExpiryInPast,
    /// Absent, or another user's or org's key: the two are not told apart.
    #[error("API key not found")]
    NotFound,
    /// The caller's scope names an org they are not a member of.
    #[error("you are not a member of your current organization")]
    NotMember,
    #[error("the system's secure random generator failed")]
    Random,
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl ApiKeyError {
    /// The machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::NameTooLong | ApiKeyError::ExpiryInPast => "invalid_request",
            ApiKeyError::NotFound => "api_key_not_found",
            ApiKeyError::NotMember => "org_required",
            ApiKeyError::Random | ApiKeyError::Database(_) => "internal_error",
        }
    }
}

/// Whose keys: one user in one organization.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub user_id: &'a str,
    pub org_id: &'a str,
}

/// Who a valid key acts for, as [`verify_api_key`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyOwner {
    pub key_id: String,
    pub user_id: String,
    pub org_id: String,
}

/// A stored key as its owner may see it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    /// The key's first characters (`ohk_` and 8 more), for telling keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKeyInfo {
    fn from(row: api_key::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

/// A key just created: its stored description and the plaintext, which exists only here.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub info: ApiKeyInfo,
    pub key: Secret,
}

/// A fresh key with what is stored of it.
#[derive(Debug)]
pub struct GeneratedKey {
    pub key: Secret,
    /// The first [`PREFIX_LEN`] characters of the key.
    pub prefix: String,
    /// [`hash_key`] of the key.
    pub hash: String,
}

/// Draws a new key from the system's secure random generator.
pub fn generate_key() -> Result<GeneratedKey, ApiKeyError> {
    let random = random_base62(&SystemRandom::new(), RANDOM_CHARS)?;
    let key = format!("{KEY_PREFIX}{random}");
    // ASCII only, so any byte index is a character boundary.
    let (prefix, _) = key.split_at(PREFIX_LEN);
    Ok(GeneratedKey {
        prefix: prefix.to_owned(),
        hash: hash_key(&key),
        key: Secret::new(key),
    })
}

/// `len` characters of base62, each uniformly distributed.
fn random_base62(rng: &dyn SecureRandom, len: usize) -> Result<String, ApiKeyError> {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut bytes).map_err(|_| ApiKeyError::Random)?;
        let usable = bytes.iter().filter(|b| **b < UNBIASED_BELOW);
        for &b in usable.take(len - out.len()) {
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

/// The stored form of a key: lowercase hex SHA-256 (see the module doc for why no salt and
/// no slow hash).
pub fn hash_key(key: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Whether `s` has the shape of one of our keys (prefix, length, alphabet). Says nothing
/// about whether it exists; lets the auth layer tell an API key from another bearer token
/// without a database query.
pub fn looks_like_api_key(s: &str) -> bool {
    s.len() == KEY_LEN
        && s.strip_prefix(KEY_PREFIX)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Creates a key for the caller in their org, named `name` (trimmed; [`DEFAULT_NAME`] when
/// absent or blank) and valid until `expires_at` (never, when `None`). Returns the only
/// copy of the plaintext.
pub async fn create(
    db: &Database,
    scope: KeyScope<'_>,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedApiKey, ApiKeyError> {
    let name = check_name(name)?;
    // Microseconds, what PostgreSQL keeps: the answer shows what a later list will show.
    let now = Utc::now().trunc_subsecs(6);
    let expires_at = expires_at.map(|at| at.trunc_subsecs(6));
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiKeyError::ExpiryInPast);
    }
    if !is_member(db, scope.user_id, scope.org_id).await? {
        return Err(ApiKeyError::NotMember);
    }
    let generated = generate_key()?;
    let info = ApiKeyInfo {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        prefix: generated.prefix,
        created_at: now,
        last_used_at: None,
        expires_at,
    };
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(info.id.clone()),
        user_id: Set(scope.user_id.to_owned()),
        org_id: Set(scope.org_id.to_owned()),
        name: Set(info.name.clone()),
        prefix: Set(info.prefix.clone()),
        key_hash: Set(generated.hash),
        created_at: Set(info.created_at),
        last_used_at: Set(None),
        expires_at: Set(info.expires_at),
    })
    .exec_without_returning(db.connection())
    .await?;
    Ok(CreatedApiKey {
        info,
        key: generated.key,
    })
}

/// The caller's keys in their org, newest first (expired ones included, so they can be
/// seen and deleted).
pub async fn list(db: &Database, scope: KeyScope<'_>) -> Result<Vec<ApiKeyInfo>, ApiKeyError> {
    let rows = api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(scope.user_id))
        .filter(api_key::Column::OrgId.eq(scope.org_id))
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_desc(api_key::Column::Id)
        .all(db.connection())
        .await?;
    Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
}

/// Deletes (revokes) one of the caller's keys in their org; returns what it was. Any other
/// id, another user's key included, is [`ApiKeyError::NotFound`].
pub async fn delete(
    db: &Database,
    scope: KeyScope<'_>,
    key_id: &str,
) -> Result<ApiKeyInfo, ApiKeyError> {
    let mine = || {
        Condition::all()
            .add(api_key::Column::Id.eq(key_id))
            .add(api_key::Column::UserId.eq(scope.user_id))
            .add(api_key::Column::OrgId.eq(scope.org_id))
    };
    let conn = db.connection();
    let row = api_key::Entity::find()
        .filter(mine())
        .one(conn)
        .await?
        .ok_or(ApiKeyError::NotFound)?;
    let deleted = api_key::Entity::delete_many()
        .filter(mine())
        .exec(conn)
        .await?;
    if deleted.rows_affected == 0 {
        // Deleted concurrently by another request of the same caller.
        return Err(ApiKeyError::NotFound);
    }
    Ok(row.into())
}

/// Who `presented` acts for: `Some` for a stored, unexpired key whose user is still a
/// member of the key's org; `None` for anything else (malformed input is refused before
/// any query). Records the use in `last_used_at`, at most once per
/// [`LAST_USED_RESOLUTION_SECS`] per key.
///
/// The membership check makes a key follow its user's access: removing someone from an
/// org also stops their keys for that org, as it ends their cookie session's access there.
pub async fn verify_api_key(
    db: &Database,
    presented: &str,
) -> Result<Option<ApiKeyOwner>, ApiKeyError> {
    if !looks_like_api_key(presented) {
        return Ok(None);
    }
    let conn = db.connection();
    let Some(row) = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash_key(presented)))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let now = Utc::now();
    if row.expires_at.is_some_and(|at| at <= now) {
        tracing::debug!(key_id = %row.id, "expired API key presented");
        return Ok(None);
    }
    if !is_member(db, &row.user_id, &row.org_id).await? {
        tracing::debug!(key_id = %row.id, "API key of a former org member presented");
        return Ok(None);
    }
    let stale_before = now - TimeDelta::seconds(LAST_USED_RESOLUTION_SECS);
    if row.last_used_at.is_none_or(|at| at < stale_before) {
        // Conditional, so concurrent requests with the same key write once between them.
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(row.id.as_str()))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(stale_before)),
            )
            .exec(conn)
            .await?;
    }
    Ok(Some(ApiKeyOwner {
        key_id: row.id,
        user_id: row.user_id,
        org_id: row.org_id,
    }))
}

async fn is_member(db: &Database, user_id: &str, org_id: &str) -> Result<bool, ApiKeyError> {
    Ok(
        org_membership::Entity::find_by_id((org_id.to_owned(), user_id.to_owned()))
            .one(db.connection())
            .await?
            .is_some(),
    )
}

fn check_name(name: Option<&str>) -> Result<String, ApiKeyError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Ok(DEFAULT_NAME.to_owned());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ApiKeyError::NameTooLong);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn new_key() -> GeneratedKey {
        generate_key().expect("the system random generator works")
    }

    #[test]
    fn generated_keys_have_the_prefix_length_and_alphabet() {
        let generated = new_key();
        let key = generated.key.expose();
        assert!(key.starts_with(KEY_PREFIX), "{key}");
        assert_eq!(key.len(), KEY_LEN);
        assert!(key[KEY_PREFIX.len()..].bytes().all(|b| BASE62.contains(&b)));
        assert_eq!(generated.prefix, key[..PREFIX_LEN]);
        assert_eq!(generated.hash, hash_key(key));
        assert!(looks_like_api_key(key));
    }

    #[test]
    fn generated_keys_carry_at_least_190_secret_bits() {
        let bits_per_char = 62f64.log2();
        assert!((RANDOM_CHARS - DISPLAY_CHARS) as f64 * bits_per_char >= 190.0);
    }

    #[test]
    fn two_keys_differ() {
        let keys: HashSet<String> = (0..50).map(|_| new_key().key.expose().to_owned()).collect();
        assert_eq!(keys.len(), 50);
    }

    #[test]
    fn every_base62_character_turns_up() {
        let mut seen = HashSet::new();
        for _ in 0..100 {
            seen.extend(new_key().key.expose()[KEY_PREFIX.len()..].bytes());
        }
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn the_hash_is_hex_sha256() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_well_formed_keys_look_like_keys() {
        let good = format!("{KEY_PREFIX}{}", "aZ09".repeat(RANDOM_CHARS / 4));
        assert!(looks_like_api_key(&good));
        let bad = [
            String::new(),
            KEY_PREFIX.to_owned(),
            good[..KEY_LEN - 1].to_owned(),
            format!("{good}x"),
            format!("ohx_{}", &good[KEY_PREFIX.len()..]),
            format!("OHK_{}", &good[KEY_PREFIX.len()..]),
            format!("{}-", &good[..KEY_LEN - 1]),
            format!("{} ", &good[..KEY_LEN - 1]),
            format!("{}é", &good[..KEY_LEN - 2]),
            format!("Bearer {good}"),
        ];
        for s in bad {
            assert!(!looks_like_api_key(&s), "{s:?}");
        }
    }

    #[test]
    fn names_are_trimmed_defaulted_and_bounded() {
        assert_eq!(check_name(Some("  ci ")).ok().as_deref(), Some("ci"));
        assert_eq!(check_name(None).ok().as_deref(), Some(DEFAULT_NAME));
        assert_eq!(check_name(Some("   ")).ok().as_deref(), Some(DEFAULT_NAME));
        let longest = "é".repeat(MAX_NAME_LEN);
        assert_eq!(
            check_name(Some(&longest)).ok().as_deref(),
            Some(longest.as_str())
        );
        assert!(matches!(
            check_name(Some(&"x".repeat(MAX_NAME_LEN + 1))),
            Err(ApiKeyError::NameTooLong)
        ));
    }
}
