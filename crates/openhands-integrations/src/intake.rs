//! Recording deliveries in batches: the route hands each verified delivery to the server's
//! [`Intake`] and waits for its row; the intake writes whatever has arrived meanwhile in one
//! statement ([`deliveries::record_many`]: one round trip, one commit), with a few such
//! statements in flight at once.
//!
//! Why: with one `INSERT` per delivery, each delivery costs PostgreSQL a statement and a
//! commit (a WAL flush), and the server a pool checkout and a round trip; under a burst of
//! deliveries those dominate. Batching keeps the route's contract: it still answers only
//! after the delivery's row is committed (so a 202 is never lost), a repeated delivery id is
//! still a duplicate (the unique index decides, `ON CONFLICT DO NOTHING`), and a failed write
//! fails every delivery of its batch with a 500 (the provider redelivers). A quiet server
//! writes each delivery alone, at once: nothing waits for a batch to fill.

use crate::deliveries::{self, DeliveryError, NewDelivery, Recorded};
use openhands_sql_store::Database;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most deliveries written by one statement.
pub const MAX_BATCH: usize = 64;
/// Most statements in flight at once (each holds one pooled connection).
pub const MAX_IN_FLIGHT: usize = 4;
/// Deliveries waiting for a statement before the route waits to hand over more.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Recorded, String>>;

/// The server's delivery recorder; its task ends when the intake is dropped.
#[derive(Debug)]
pub struct Intake {
    queue: mpsc::Sender<(NewDelivery, Reply)>,
}

impl Intake {
    /// Starts the recorder on the current Tokio runtime.
    pub fn start(db: Database) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, received));
        Self { queue }
    }

    /// Records `delivery` as `queued` (or reports its delivery id as a duplicate) once its
    /// batch is committed.
    pub async fn record(&self, delivery: NewDelivery) -> Result<Recorded, DeliveryError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((delivery, reply))
            .await
            .map_err(|_| DeliveryError::Write("the delivery recorder stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DeliveryError::Write("the delivery recorder stopped".to_owned()))?
            .map_err(DeliveryError::Write)
    }
}

/// Takes a statement slot, then everything queued (up to [`MAX_BATCH`]), and writes it in
/// a task of its own; so deliveries gather while the slots are busy.
async fn run(db: Database, mut received: mpsc::Receiver<(NewDelivery, Reply)>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = received.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match received.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            let (rows, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match deliveries::record_many(&db, &rows).await {
                Ok(recorded) => {
                    for (reply, outcome) in replies.into_iter().zip(recorded) {
                        // The route may have gone (its client hung up): the row stays.
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    tracing::warn!(error = %message, deliveries = replies.len(),
                        "recording webhook deliveries failed");
                    for reply in replies {
                        let _ = reply.send(Err(message.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}
