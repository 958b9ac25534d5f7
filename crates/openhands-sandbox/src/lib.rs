//! `saas.bwrap`: isolated conversation sandboxes, and the egress proxy they use.

pub mod bwrap;
pub mod egress;
pub mod isolated;

pub use isolated::IsolatedLauncher;
