//! The data of the SaaS authentication bench, for `cargo xtask bench`; the webhook bench
//! runs its server on the same fresh database (and ignores the user).
//!
//! Makes a fresh PostgreSQL database (the machine's server, or a throw-away one, as the
//! tests get it), migrates it and stores what a signed-in user has: the `users` row
//! (`bench-user`, verified e-mail, terms accepted), a personal organization made current
//! (through `orgs::create_org`, as a first login does), LLM settings for the user in that
//! org (through the SQL settings store, sealed like the server seals them), and an API key
//! (through `api_keys::create`). It then creates a session record for the user (as a
//! login does) and seals its cookie under the cookie key the server derives from a secrets
//! key the seed draws at random.
//!
//! It prints one JSON line on stdout, what the server under test needs:
//! `{"database_url", "secrets_keys": "bench:<base64 key>", "cookie", "api_key"}`, and keeps
//! the database until its stdin reaches end of file; then it drops the database and exits.
//! Errors go to stderr, with a non-zero exit.
//!
//! The cookie's access token expires in the far future, so the server never refreshes the
//! session and never contacts the OIDC provider (its discovery is lazy).
//!
//! `cargo run --release -p openhands-oidc-auth --example auth_bench_seed`

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use openhands_core::crypto::Cipher;
use openhands_core::extension::SettingsStore;
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_core::settings::Settings;
use openhands_oidc_auth::cookie_key;
use openhands_oidc_auth::session::{CookieJar, Session};
use openhands_oidc_auth::session_store::{Origin, SessionStore};
use openhands_saas_api::api_keys::{self, KeyScope};
use openhands_saas_api::orgs::{self, Caller};
use openhands_sql_store::entity::user;
use openhands_sql_store::{Database, PoolOptions, SqlSettingsStore};
use openhands_test_support::postgres::TestDatabase;
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::{ActiveValue::Set, EntityTrait};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USER_ID: &str = "bench-user";
const EMAIL: &str = "bench@example.com";
const ORG_NAME: &str = "bench's workspace";
/// The id of the secrets key, as the server's `OPENHANDS_SECRETS_KEYS` names it.
const KEY_ID: &str = "bench";
/// 2100-01-01: the session's access token never expires during a bench.
const FAR_FUTURE: i64 = 4_102_444_800;

/// What the seed gives the bench.
struct Seeded {
    database: TestDatabase,
    /// The JSON line for stdout.
    line: String,
}

/// The LLM settings of a typical user.
fn settings() -> Settings {
    Settings {
        language: Some("en".to_owned()),
        agent: Some("CodeActAgent".to_owned()),
        max_iterations: Some(100),
        confirmation_mode: Some(false),
        llm_model: Some("openai/gpt-4o".to_owned()),
        llm_api_key: Some(Secret::new("sk-bench-key".to_owned())),
        llm_base_url: Some("https://llm.example.com/v1".to_owned()),
        enable_default_condenser: true,
        user_consents_to_analytics: Some(false),
        git_user_name: Some("Bench User".to_owned()),
        git_user_email: Some(EMAIL.to_owned()),
        ..Settings::default()
    }
}

/// A fresh 32-byte key from the system's secure random generator.
fn random_key() -> Result<[u8; 32], String> {
    let mut raw = [0u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "the system's secure random generator failed".to_owned())?;
    Ok(raw)
}

async fn seed() -> Result<Seeded, String> {
    let database = openhands_test_support::postgres::fresh_database().map_err(|e| e.to_string())?;
    let pool = PoolOptions {
        pool_size: 2,
        max_overflow: 0,
    };
    let db = Database::connect(database.url(), pool)
        .await
        .map_err(|e| e.to_string())?;
    openhands_migrations::runner::up(db.connection(), |_, _| {})
        .await
        .map_err(|e| format!("migrating: {e}"))?;

    let now = Utc::now();
    user::Entity::insert(user::ActiveModel {
        id: Set(USER_ID.to_owned()),
        oidc_subject: Set(USER_ID.to_owned()),
        email: Set(Some(EMAIL.to_owned())),
        email_verified: Set(true),
        tos_accepted_at: Set(Some(now)),
        created_at: Set(now),
        last_login_at: Set(Some(now)),
        current_org_id: Set(None),
    })
    .exec_without_returning(db.connection())
    .await
    .map_err(|e| format!("creating the user: {e}"))?;
    let caller = Caller {
        user_id: USER_ID,
        email: Some(EMAIL),
    };
    let org = orgs::create_org(&db, caller, ORG_NAME)
        .await
        .map_err(|e| format!("creating the personal org: {e}"))?;

    let raw_key = random_key()?;
    let cipher = Arc::new(
        Cipher::new(vec![(KEY_ID.to_owned(), raw_key)]).map_err(|e| format!("cipher: {e}"))?,
    );
    let scope = UserScope {
        user_id: Some(USER_ID.to_owned()),
        org_id: Some(org.id.clone()),
    };
    SqlSettingsStore::new(db.clone(), Arc::clone(&cipher))
        .store_merged(&scope, settings())
        .await
        .map_err(|e| format!("storing the settings: {e}"))?;
    let created = api_keys::create(
        &db,
        KeyScope {
            user_id: USER_ID,
            org_id: &org.id,
        },
        Some("bench"),
        None,
    )
    .await
    .map_err(|e| format!("creating the API key: {e}"))?;

    // The server's default absolute lifetime; the bench is far shorter.
    let sessions = SessionStore::new(
        db.clone(),
        Duration::from_secs(openhands_core::auth_config::DEFAULT_SESSION_MAX_AGE_SECONDS),
        Duration::ZERO,
    );
    let (_, token) = sessions
        .create(USER_ID, Origin::default())
        .await
        .map_err(|e| format!("creating the session record: {e}"))?;
    // With no `auth.cookie_keys`, the server derives its cookie key from the secrets key.
    let cookie_cipher = cookie_key::derived_cipher(&[(KEY_ID.to_owned(), raw_key)])
        .map_err(|e| format!("cookie key: {e}"))?;
    let cookie = CookieJar::new(Arc::new(cookie_cipher), false)
        .seal_session(&Session {
            token,
            sub: USER_ID.to_owned(),
            email: Some(EMAIL.to_owned()),
            email_verified: true,
            tos: true,
            access_exp: FAR_FUTURE,
            refresh: Some("unused".to_owned()),
        })
        .map_err(|e| format!("sealing the session: {e}"))?;
    let line = serde_json::json!({
        "database_url": database.url(),
        "secrets_keys": format!("{KEY_ID}:{}", STANDARD.encode(raw_key)),
        "cookie": cookie,
        "api_key": created.key.expose(),
    })
    .to_string();
    Ok(Seeded { database, line })
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let seeded = runtime.block_on(seed());
    // Closes the seed's own connections; the database stays.
    drop(runtime);
    let Seeded { database, line } = match seeded {
        Ok(seeded) => seeded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        eprintln!("error: writing to stdout: {err}");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Whatever arrives is ignored; end of file (or a broken stdin) is the signal to go.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    drop(database);
    ExitCode::SUCCESS
}
