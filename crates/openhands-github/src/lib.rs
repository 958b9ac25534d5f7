//! GitHub App building blocks (issue 7): what every GitHub App feature needs before it can
//! talk to GitHub or trust a delivery. Not linked into the server yet.
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

pub mod config;
pub mod jwt;
pub mod tokens;
pub mod webhook;

pub use config::{ConfigError, GithubAppConfig};
pub use jwt::{AppJwtSigner, JwtError};
pub use tokens::{BuildError, InstallationToken, InstallationTokens, TokenError};
pub use webhook::verify_webhook_signature;
