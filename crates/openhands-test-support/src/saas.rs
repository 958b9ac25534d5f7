//! A SaaS server whose users log in through a real OIDC provider process (`oidc-provider`
//! on Node, see [`crate::oidc`]), and a test browser that keeps the server's cookies the way
//! a browser would. The login tests use it, and so does every test that needs a signed-in
//! SaaS user ([`Browser::login`]).
//!
//! [`Env::start`] gives the provider, the server (SaaS config class, a fresh SQLite
//! database, migrated) and the test's own connection to that database.

use crate::TestServer;
use crate::oidc::{OidcBrowser, OidcConfig, OidcProvider};
use openhands_core::secret::Secret;
use openhands_sql_store::{Database, PoolOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A free loopback port (the redirect URI must be registered before the server starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub async fn start_provider(config: OidcConfig) -> OidcProvider {
    tokio::task::spawn_blocking(move || OidcProvider::start(config))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The provider, the server, and the test's own connection to the server's database.
pub struct Env {
    pub provider: OidcProvider,
    pub server: TestServer,
    pub db: Database,
    _sqlite: crate::sqlite::TestSqlite,
}

impl Env {
    /// A provider with `provider_config` (its redirect URI set to the server's callback)
    /// and a SaaS server on SQLite logging in through it; `adjust` changes the server
    /// config last.
    pub async fn start(
        provider_config: OidcConfig,
        adjust: impl FnOnce(&mut openhands_core::config::Config),
    ) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let provider = start_provider(OidcConfig {
            redirect_uris: vec![format!("{base}/oauth/keycloak/callback")],
            ..provider_config
        })
        .await;
        let sqlite = crate::sqlite::fresh_database().expect("sqlite");
        let url = sqlite.url().to_owned();
        let issuer = provider.issuer().to_owned();
        let client = provider.config().clone();
        let server = TestServer::spawn_with(move |c| {
            c.port = port;
            c.config_class = "saas".into();
            c.database.migrate_on_start = true;
            c.database.url = Some(Secret::new(url));
            c.auth.issuer_url = Some(issuer);
            c.auth.client_id = Some(client.client_id);
            c.auth.client_secret = Some(Secret::new(client.client_secret));
            c.auth.public_url = Some(base);
            adjust(c);
        })
        .await;
        let db = Database::connect(sqlite.url(), PoolOptions::default())
            .await
            .expect("test connection");
        Self {
            provider,
            server,
            db,
            _sqlite: sqlite,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// A browser for this server (no cookies yet).
    pub fn browser(&self) -> Browser {
        Browser {
            base: self.server.url(""),
            origin: self.origin(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
            provider: OidcBrowser::new(self.provider.issuer()).expect("provider browser"),
        }
    }
}

/// An answer: status, headers, JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `Set-Cookie` headers for `name`.
    pub fn set_cookies(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
            .collect()
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

/// A client that keeps the server's cookies and sends our origin, as a browser on our web
/// app does.
#[derive(Debug, Clone)]
pub struct Browser {
    base: String,
    pub origin: String,
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    pub provider: OidcBrowser,
}

impl Browser {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Sends a request with our cookies and, unless `origin` is `None`, an `Origin`.
    pub async fn send_from(
        &mut self,
        origin: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send_with(origin, method, path, body, &[]).await
    }

    /// Like [`Browser::send_from`], with extra headers.
    pub async fn send_with(
        &mut self,
        origin: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(reqwest::header::COOKIE, header);
        }
        if let Some(origin) = origin {
            request = request.header(reqwest::header::ORIGIN, origin);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        for header in headers.get_all(reqwest::header::SET_COOKIE) {
            let header = header.to_str().expect("ascii cookie");
            let (pair, attributes) = header.split_once(';').unwrap_or((header, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn send(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let origin = self.origin.clone();
        self.send_from(Some(&origin), method, path, body).await
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Starts a login, signs in at the provider as `username`, and returns the callback
    /// path (with `code` and `state`) without calling it.
    pub async fn login_until_callback(&mut self, username: &str, redirect: &str) -> String {
        let start = self
            .get(&format!("/oauth/keycloak/login?redirect_url={redirect}"))
            .await;
        assert_eq!(start.status, StatusCode::FOUND, "{:?}", start.body);
        assert!(self.cookie("openhands_login").is_some(), "login cookie set");
        let callback = self
            .provider
            .login(start.location(), username)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(callback.path(), "/oauth/keycloak/callback");
        format!(
            "/oauth/keycloak/callback?{}",
            callback.query().unwrap_or_default()
        )
    }

    /// A whole login as `username`; returns the callback's answer.
    pub async fn login(&mut self, username: &str, redirect: &str) -> Answer {
        let callback = self.login_until_callback(username, redirect).await;
        self.get(&callback).await
    }
}
