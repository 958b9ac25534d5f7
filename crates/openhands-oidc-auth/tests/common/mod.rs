//! The SaaS login harness (a real OIDC provider, a SaaS server, a cookie-keeping browser)
//! lives in `openhands-test-support` so other crates' tests can sign users in too.

#![allow(unused_imports)]

pub use openhands_test_support::saas::*;
