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
//! - [`worker`]: parses, lets the integration admit the job (permissions, the account behind
//!   the provider's user), starts the conversation through the `ConversationManager`.
//! - [`callbacks`] and [`callback_entity`]: the durable `integration_callbacks` rows; the
//!   worker reads each started conversation's events until it ends, then calls the
//!   integration's `on_finished` (retried), also after a restart.
//! - [`threads`] and [`follow_up`]: a later request by the same user on the same issue or
//!   change request continues that thread's conversation (a user message to it) instead
//!   of starting another; its callback reports when that request's work ends.
//! - [`cli`]: `openhands webhooks list|replay`.
//!
//! See `docs/integrations.md` and `docs/writing-a-provider.md`.

pub mod callback_entity;
pub mod callbacks;
pub mod cli;
pub mod deliveries;
pub mod entity;
pub mod follow_up;
pub mod intake;
pub mod migration;
pub mod routes;
pub mod threads;
pub mod worker;

pub use deliveries::{DeliveryError, Recorded, Status};
