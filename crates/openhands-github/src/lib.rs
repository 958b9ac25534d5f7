//! The GitHub App integration (issue 7): webhooks start conversations, outcomes are posted
//! back. A provider crate of the integration framework (`openhands-integrations`), linked into
//! the server by its `github` feature.
//!
//! - [`integration`]: the [`Integration`](openhands_core::extension::Integration) and its
//!   registration: verification, the delivery id, admission (write access, the linked
//!   account, the `eyes` reaction) and the comments.
//! - [`payload`]: the webhook payloads and the triggers (the View).
//! - [`api`]: the REST calls (the Service), on `reqwest`.
//! - [`messages`]: the comments' wording.
//! - [`settings`]: the integration's settings (`GITHUB_WEBHOOKS_ENABLED`, trigger label and
//!   mention, ...), on top of [`config`].
//!
//! The building blocks under them:
//!
//! - [`config`]: `GITHUB_APP_*` settings from the environment, secrets redacted.
//! - [`jwt`]: the App JWT (RS256, `iat = now - 60 s`, `exp = now + 9 min`, `iss = client id`,
//!   as OpenHands mints it).
//! - [`tokens`]: installation access tokens, exchanged with the App JWT and cached per
//!   installation until 5 minutes before they expire; one exchange per installation at a time.
//! - [`webhook`]: the `X-Hub-Signature-256` check (constant time, core's HMAC helper).
//!
//! ## Crate choice for the JWT
//!
//! `jsonwebtoken` 9.3 with only `use_pem`. Its RSA signing is done by `ring` 0.17, which the
//! workspace already builds (rustls, core's HMAC), so it adds no crypto backend. The newer
//! 10.x/11.x lines dropped `ring`: they make you choose `aws_lc_rs` (a C/CMake build of
//! AWS-LC, slow on our 2-core CI) or `rust_crypto` (RSA from the `rsa` crate, whose private-key
//! operations carry RUSTSEC-2023-0071, the Marvin timing side channel, with no fix). When a
//! `ring`-free move is wanted, `aws_lc_rs` on 11.x is the path; only [`jwt`] changes.

pub mod api;
pub mod config;
pub mod integration;
pub mod jwt;
pub mod messages;
pub mod payload;
pub mod settings;
pub mod tokens;
pub mod user_service;
pub mod webhook;

pub use config::{ConfigError, GithubAppConfig};
pub use integration::Github;
pub use jwt::{AppJwtSigner, JwtError};
pub use settings::GithubSettings;
pub use tokens::{BuildError, InstallationToken, InstallationTokens, TokenError};
pub use webhook::verify_webhook_signature;
