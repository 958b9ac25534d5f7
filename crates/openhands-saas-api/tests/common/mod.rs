//! What the SaaS API tests share: a test-only login, a SaaS server on a fresh SQLite or
//! PostgreSQL database, and a client for it.
//!
//! SaaS login is not built yet, so this module registers `test.header_org_user`: the user id
//! comes from `X-Test-User` (401 without it), the e-mail is `<user>@example.com`, and the
//! org comes from `users.current_org_id` through `openhands_saas_api::current_org`, as the
//! SaaS login will do. `Authorization: Bearer <key>` is taken instead when present, through
//! `openhands_saas_api::verify_api_key`, as the SaaS login will do too: the key's user in
//! the key's org, 401 for a key it does not accept.
//!
//! Each test binary uses a part of this module, hence `dead_code` is allowed.
#![allow(dead_code)]

use async_trait::async_trait;
use openhands_core::extension::{AuthError, AuthType, AuthenticatedUser, RequestHeaders, UserAuth};
use openhands_core::scope::UserScope;
use openhands_core::secret::Secret;
use openhands_sql_store::entity::audit_log;
use openhands_sql_store::{Database, PoolOptions};
use openhands_test_support::TestServer;
use reqwest::{Method, RequestBuilder};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use std::sync::Arc;

/// A user named by the `X-Test-User` header, in their current org, or the owner of the
/// bearer API key.
struct HeaderUserAuth {
    db: Database,
}

impl HeaderUserAuth {
    async fn by_api_key(&self, key: &str) -> Result<AuthenticatedUser, AuthError> {
        let owner = openhands_saas_api::verify_api_key(&self.db, key)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::Unauthorized("invalid or expired API key".into()))?;
        Ok(AuthenticatedUser {
            email: Some(format!("{}@example.com", owner.user_id)),
            scope: UserScope {
                user_id: Some(owner.user_id),
                org_id: Some(owner.org_id),
            },
            auth_type: Some(AuthType::Bearer),
            set_cookies: Vec::new(),
        })
    }
}

#[async_trait]
impl UserAuth for HeaderUserAuth {
    async fn authenticate(
        &self,
        request: &dyn RequestHeaders,
    ) -> Result<AuthenticatedUser, AuthError> {
        if let Some(key) = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            return self.by_api_key(key.trim()).await;
        }
        let user = request
            .header("x-test-user")
            .ok_or_else(|| AuthError::Unauthorized("X-Test-User missing".into()))?;
        let org_id = openhands_saas_api::current_org(&self.db, user)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(AuthenticatedUser {
            scope: UserScope {
                user_id: Some(user.to_owned()),
                org_id,
            },
            email: Some(format!("{user}@example.com")),
            auth_type: None,
            set_cookies: Vec::new(),
        })
    }
}

openhands_core::register_plugin!(
    openhands_core::extension::UserAuth,
    "test.header_org_user",
    "Test only: the user named by X-Test-User, in their current org, or a bearer API key's owner",
    |ctx| {
        let db = openhands_sql_store::plugin_database(ctx).await?;
        Ok(Arc::new(HeaderUserAuth { db }))
    }
);

#[derive(Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps the test database alive as long as the server.
#[allow(dead_code)]
enum Keep {
    Sqlite(openhands_test_support::sqlite::TestSqlite),
    Postgres(openhands_test_support::postgres::TestDatabase),
}

/// A SaaS server on a fresh database, and the test's own connection to that database.
pub struct Env {
    pub server: TestServer,
    pub db: Database,
    _keep: Keep,
}

impl Env {
    pub async fn start(backend: Backend) -> Self {
        let (url, keep) = match backend {
            Backend::Sqlite => {
                let db = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
                (db.url().to_owned(), Keep::Sqlite(db))
            }
            Backend::Postgres => {
                let db = openhands_test_support::postgres::fresh_database()
                    .expect("PostgreSQL for tests");
                (db.url().to_owned(), Keep::Postgres(db))
            }
        };
        let server_url = url.clone();
        let server = TestServer::spawn_with(move |c| {
            c.config_class = "saas".into();
            c.plugins.user_auth = Some("test.header_org_user".into());
            c.database.migrate_on_start = true;
            c.database.url = Some(Secret::new(server_url));
        })
        .await;
        let db = Database::connect(&url, PoolOptions::default())
            .await
            .expect("test connection");
        Self {
            server,
            db,
            _keep: keep,
        }
    }

    /// A request to `path`, without credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.server.client.request(method, self.server.url(path))
    }

    /// Sends `req` with `body` (if any); returns the status and JSON body (the text as a
    /// JSON string when it is not JSON).
    pub async fn send(req: RequestBuilder, body: Option<Value>) -> (u16, Value) {
        let req = match body {
            Some(body) => req.json(&body),
            None => req,
        };
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Calls `path` as `user` (no user: no header); returns the status and JSON body.
    pub async fn call(
        &self,
        user: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(user) = user {
            req = req.header("X-Test-User", user);
        }
        Self::send(req, body).await
    }

    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        self.call(Some(user), Method::GET, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(user), Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, user: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(user), Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, user: &str, path: &str) -> (u16, Value) {
        self.call(Some(user), Method::DELETE, path, None).await
    }

    /// `owner` creates an org named `name`; returns its id.
    pub async fn create_org(&self, owner: &str, name: &str) -> String {
        let (status, body) = self
            .post(owner, "/api/organizations", json!({"name": name}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("org id").to_owned()
    }

    /// `user` makes `org` their current org.
    pub async fn switch_org(&self, user: &str, org: &str) {
        let (status, body) = self
            .post(user, &format!("/api/organizations/{org}/switch"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// `by` invites `user` with `role`, and `user` accepts.
    pub async fn add_member(&self, org: &str, by: &str, user: &str, role: &str) {
        let (status, body) = self
            .post(
                by,
                &format!("/api/organizations/{org}/invitations"),
                json!({"email": format!("{user}@example.com"), "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let invitation = body["id"].as_str().expect("invitation id");
        let (status, body) = self
            .post(
                user,
                &format!("/api/organizations/{org}/invitations/{invitation}/accept"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn audit_rows(&self) -> Vec<audit_log::Model> {
        audit_log::Entity::find()
            .order_by_asc(audit_log::Column::At)
            .all(self.db.connection())
            .await
            .expect("audit rows")
    }
}

/// Asserts a refusal in the `{"detail", "code"}` shape.
pub fn assert_refused(result: (u16, Value), status: u16, code: &str) {
    let (got, body) = result;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

/// Runs each async scenario `fn(Backend)` of the calling test file on both databases, as
/// `<scenario>::sqlite` and `<scenario>::postgres`.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$scenario($crate::common::Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use on_both_databases;
