//! The delivery log on a fresh SQLite database: deduplication, claiming, states, replay.

use chrono::Utc;
use openhands_integrations::deliveries::{self, DeliveryError, Recorded, Status};
use openhands_sql_store::{Database, PoolOptions};

async fn fresh() -> (Database, openhands_test_support::sqlite::TestSqlite) {
    let file = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
    let db = Database::connect(file.url(), PoolOptions::default())
        .await
        .expect("connect");
    openhands_migrations::runner::up(db.connection(), |_, _| {})
        .await
        .expect("migrate");
    (db, file)
}

#[tokio::test]
async fn a_delivery_id_is_recorded_once_per_provider() {
    let (db, _file) = fresh().await;
    let first = deliveries::record(&db, "gitea", "d-1", "{}", &[])
        .await
        .expect("record");
    assert!(matches!(first, Recorded::New(_)));
    let again = deliveries::record(&db, "gitea", "d-1", "{}", &[])
        .await
        .expect("record");
    assert_eq!(again, Recorded::Duplicate);
    let other = deliveries::record(&db, "github", "d-1", "{}", &[])
        .await
        .expect("record");
    assert!(
        matches!(other, Recorded::New(_)),
        "unique per provider only"
    );
    assert_eq!(deliveries::list(&db, None).await.expect("list").len(), 2);
}

#[tokio::test]
async fn a_delivery_is_claimed_once_and_only_dead_or_failed_ones_replay() {
    let (db, _file) = fresh().await;
    let Recorded::New(id) = deliveries::record(&db, "gitea", "d-2", "{}", &[])
        .await
        .expect("record")
    else {
        panic!("not new");
    };
    assert_eq!(
        deliveries::due(&db, Utc::now()).await.expect("due"),
        vec![id.clone()]
    );
    let claimed = deliveries::claim(&db, &id)
        .await
        .expect("claim")
        .expect("claimed");
    assert_eq!(
        (claimed.status.as_str(), claimed.attempts),
        ("processing", 1)
    );
    assert!(
        deliveries::claim(&db, &id).await.expect("claim").is_none(),
        "taken once"
    );
    assert!(matches!(
        deliveries::replay(&db, &id).await,
        Err(DeliveryError::NotReplayable { .. })
    ));

    deliveries::finish(&db, &id, Status::Dead, Some("s"), None, Some("boom"), None)
        .await
        .expect("finish");
    let dead = deliveries::list(&db, Some(Status::Dead))
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom"));

    let replayed = deliveries::replay(&db, &id).await.expect("replay");
    assert_eq!((replayed.status.as_str(), replayed.attempts), ("queued", 0));
    assert_eq!(
        deliveries::due(&db, Utc::now()).await.expect("due"),
        vec![id]
    );
}

#[test]
fn statuses_round_trip_through_their_names() {
    for status in [
        Status::Queued,
        Status::Processing,
        Status::Done,
        Status::Ignored,
        Status::Failed,
        Status::Dead,
    ] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
    }
    assert_eq!(Status::parse("nope"), None);
}
