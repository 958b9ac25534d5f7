//! Test tooling shared by the workspace's crates.
//!
//! * [`TestServer`] (feature `app`, default): the real application on a free port over a
//!   throw-away data dir, with a typed client.
//! * [`saas`] (feature `app`): a SaaS server whose users log in through a real OIDC
//!   provider, and a browser that keeps its cookies.
//! * [`header_user`]: `test.header_user`, the user named by a request header.
//! * [`conformance`]: one behaviour suite per storage trait, run against every store.
//! * [`git`]: a bare repository on disk, for tests that clone from a `file://` URL.
//! * [`postgres`] and [`sqlite`]: a fresh, empty database per test, so SQL stores run their
//!   suites against real databases.
//! * [`redis`] (feature `redis`): a throw-away `redis-server` that a test can stop and
//!   restart, or the machine's Redis with a key prefix per test. Store crates that need only these take this crate with
//!   `default-features = false` and do not build the server.

pub mod conformance;
pub mod git;
pub mod header_user;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sqlite;

#[cfg(feature = "app")]
pub mod saas;
#[cfg(feature = "app")]
mod server;
#[cfg(feature = "app")]
pub use server::*;
