//! The integration framework (SaaS mode): git hosts send webhooks, jobs start conversations,
//! outcomes are posted back.
//!
//! Provider crates (`openhands-gitea`, later GitHub, GitLab, ...) implement
//! [`openhands_core::extension::Integration`] and submit an
//! [`IntegrationRegistration`](openhands_core::extension::IntegrationRegistration); this
//! crate does the rest, the same way for every provider:
//!
//! - [`routes`]: `POST /integration/{provider}/events`: verify (403, nothing stored),
//!   record in the delivery log (a repeated delivery id is acknowledged and ignored),
//!   answer 202 at once.
//! - [`deliveries`] and [`entity`]: the `webhook_deliveries` table ([`migration`], a
//!   provider migration) and its states: queued → processing → done / ignored, or failed
//!   (retried with exponential backoff) → dead.
//! - [`worker`]: parses, starts the conversation through the `ConversationManager`, and
//!   calls the integration's `on_finished` once when the conversation ends.
//! - [`cli`]: `openhands webhooks list|replay`.
//!
//! See `docs/integrations.md` and `docs/writing-a-provider.md`.

pub mod cli;
pub mod deliveries;
pub mod entity;
pub mod migration;
pub mod routes;
pub mod worker;

pub use deliveries::{DeliveryError, Recorded, Status};
