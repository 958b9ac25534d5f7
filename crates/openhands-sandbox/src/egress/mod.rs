//! The filtering HTTP/HTTPS proxy that sandboxes reach the network through.
//!
//! A sandbox in `proxy` mode has no network of its own; its `HTTP_PROXY`/`HTTPS_PROXY`
//! point at a relay inside it that forwards to this proxy's Unix socket. The agent in the
//! sandbox is treated as hostile: the proxy refuses the host's loopback, private networks,
//! link-local and cloud metadata addresses (in every IPv4 and IPv6 spelling) unless the
//! operator's `[sandbox.network] allow` re-opens them, always honours `deny`, checks every
//! address a name resolves to and connects only to a checked one.
//!
//! - `policy`: `[sandbox.network]` compiled into checks; `decision`: what they decided.
//! - `ranges`: the built-in address ranges.
//! - `proxy`: the socket, its lifetime and its connection limit.
//! - `connection`, `head`, `relay`: one connection, its request head, and the byte copy.

mod connection;
mod decision;
mod head;
mod policy;
mod proxy;
mod ranges;
mod relay;

pub use decision::{AllowReason, Refusal, RefusalReason};
pub use policy::{CompiledPolicy, Host, InvalidHost, PolicyError};
pub use proxy::{EgressError, EgressProxy, ProxyLimits};
