//! The delivery log on a fresh SQLite database: deduplication, claiming, states, replay.

use chrono::Utc;
use openhands_integrations::deliveries::{self, DeliveryError, Recorded, Status};
use openhands_sql_store::{Database, PoolOptions};

async fn fresh() -> (Database, openhands_test_support::sqlite::TestSqlite) {
    let file = openhands_test_support::sqlite::fresh_database().expect("SQLite file");
    (migrated(file.url()).await, file)
}

/// A fresh PostgreSQL database with every migration applied (dropped with the guard).
async fn fresh_postgres() -> (Database, openhands_test_support::postgres::TestDatabase) {
    let pg = openhands_test_support::postgres::fresh_database().expect("PostgreSQL for tests");
    (migrated(pg.url()).await, pg)
}

async fn migrated(url: &str) -> Database {
    let db = Database::connect(url, PoolOptions::default())
        .await
        .expect("connect");
    openhands_migrations::runner::up(db.connection(), |_, _| {})
        .await
        .expect("migrate");
    db
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

fn delivery(provider: &str, id: &str) -> deliveries::NewDelivery {
    deliveries::NewDelivery {
        provider: provider.to_owned(),
        delivery_id: id.to_owned(),
        payload: format!("{{\"delivery\":\"{id}\"}}"),
        headers: vec![("x-github-event".to_owned(), "issues".to_owned())],
        payload_hash: Some(deliveries::payload_hash(
            format!("{{\"delivery\":\"{id}\"}}").as_bytes(),
        )),
    }
}

/// `delivery` under `id` with the signed body `body`.
fn delivery_of(provider: &str, id: &str, body: &str) -> deliveries::NewDelivery {
    deliveries::NewDelivery {
        payload: body.to_owned(),
        payload_hash: Some(deliveries::payload_hash(body.as_bytes())),
        ..delivery(provider, id)
    }
}

/// A replay: the same signed body under new delivery ids (in the same batch, or later) is a
/// duplicate and not stored; the same body to another provider is its own delivery.
async fn the_same_body_is_recorded_once_per_provider(db: &Database) {
    let body = r#"{"action":"labeled","issue":{"number":1}}"#;
    let first = deliveries::record_many(
        db,
        &[
            delivery_of("github", "r-1", body),
            delivery_of("github", "r-2", body),
            delivery_of("gitea", "r-1", body),
        ],
    )
    .await
    .expect("first batch");
    let kinds: Vec<bool> = first
        .iter()
        .map(|r| matches!(r, Recorded::New(_)))
        .collect();
    assert_eq!(kinds, [true, false, true]);
    let later = deliveries::record_many(db, &[delivery_of("github", "r-3", body)])
        .await
        .expect("later batch");
    assert_eq!(later, [Recorded::Duplicate]);
    let rows = deliveries::list(db, None).await.expect("list");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        rows[0].payload_hash.as_deref(),
        Some(deliveries::payload_hash(body.as_bytes()).as_str())
    );
}

#[tokio::test]
async fn the_same_body_is_recorded_once_per_provider_on_sqlite() {
    let (db, _file) = fresh().await;
    the_same_body_is_recorded_once_per_provider(&db).await;
}

#[tokio::test]
async fn the_same_body_is_recorded_once_per_provider_on_postgres() {
    let (db, _pg) = fresh_postgres().await;
    the_same_body_is_recorded_once_per_provider(&db).await;
}

/// Two rows of one body that raced into the log (two batches in flight): only the later one
/// has an earlier twin, so the worker runs the first and skips the other.
#[tokio::test]
async fn of_two_rows_with_one_body_only_the_later_has_an_earlier_twin() {
    let (db, _file) = fresh().await;
    let body = r#"{"action":"created"}"#;
    let Recorded::New(first) = deliveries::record(&db, "github", "t-1", body, &[])
        .await
        .expect("record")
    else {
        panic!("not recorded");
    };
    let Recorded::New(second) = deliveries::record(&db, "github", "t-2", body, &[])
        .await
        .expect("record")
    else {
        panic!("not recorded");
    };
    // `record` keeps no hash (as rows from before the column): give both the same one.
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};
    for id in [&first, &second] {
        let mut row = deliveries::get(&db, id)
            .await
            .expect("row")
            .into_active_model();
        row.payload_hash = Set(Some(deliveries::payload_hash(body.as_bytes())));
        row.update(db.connection()).await.expect("update");
    }
    let first_row = deliveries::get(&db, &first).await.expect("first");
    let second_row = deliveries::get(&db, &second).await.expect("second");
    let twin = |row| deliveries::earlier_with_same_payload(&db, row);
    let (a, b) = (
        twin(&first_row).await.expect("lookup"),
        twin(&second_row).await.expect("lookup"),
    );
    let earlier =
        if (first_row.received_at, &first_row.id) < (second_row.received_at, &second_row.id) {
            "t-1"
        } else {
            "t-2"
        };
    let later_twin = if earlier == "t-1" { (a, b) } else { (b, a) };
    assert_eq!(later_twin, (None, Some(earlier.to_owned())));
}

/// One statement per batch: new rows get ids, repeated delivery ids (earlier, or earlier in
/// the same batch) are duplicates, and every new row is in the log as `queued`.
async fn batches_record_each_delivery_id_once(db: &Database) {
    let first = deliveries::record_many(
        db,
        &[
            delivery("github", "b-1"),
            delivery("github", "b-2"),
            delivery("github", "b-1"),
            delivery("gitea", "b-1"),
        ],
    )
    .await
    .expect("first batch");
    let kinds: Vec<bool> = first
        .iter()
        .map(|r| matches!(r, Recorded::New(_)))
        .collect();
    assert_eq!(kinds, [true, true, false, true]);
    let second =
        deliveries::record_many(db, &[delivery("github", "b-2"), delivery("github", "b-3")])
            .await
            .expect("second batch");
    assert_eq!(second[0], Recorded::Duplicate);
    assert!(matches!(second[1], Recorded::New(_)));
    let all_duplicates = deliveries::record_many(db, &[delivery("github", "b-3")])
        .await
        .expect("a batch of duplicates");
    assert_eq!(all_duplicates, [Recorded::Duplicate]);

    let rows = deliveries::list(db, Some(Status::Queued))
        .await
        .expect("list");
    assert_eq!(rows.len(), 4);
    let stored = rows
        .iter()
        .find(|r| r.provider == "github" && r.delivery_id == "b-3")
        .expect("b-3 stored");
    assert_eq!(stored.payload, "{\"delivery\":\"b-3\"}");
    assert!(stored.headers.contains("x-github-event"));
}

#[tokio::test]
async fn batches_record_each_delivery_id_once_on_sqlite() {
    let (db, _file) = fresh().await;
    batches_record_each_delivery_id_once(&db).await;
}

#[tokio::test]
async fn batches_record_each_delivery_id_once_on_postgres() {
    let (db, _pg) = fresh_postgres().await;
    batches_record_each_delivery_id_once(&db).await;
}

/// On PostgreSQL a delivery payload of a few KB is stored inline without compression (the
/// table's `toast_tuple_target`), and large ones with lz4 where the server has it; a large
/// payload still reads back byte for byte.
#[tokio::test]
async fn postgres_stores_payloads_without_pglz_on_every_insert() {
    use sea_orm::{ConnectionTrait, Statement};
    let (db, _pg) = fresh_postgres().await;
    let conn = db.connection();
    let options = conn
        .query_one_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT array_to_string(reloptions, ',') AS options FROM pg_class \
             WHERE relname = 'webhook_deliveries'",
        ))
        .await
        .expect("reloptions")
        .and_then(|row| row.try_get::<Option<String>>("", "options").ok().flatten())
        .unwrap_or_default();
    assert!(options.contains("toast_tuple_target=8160"), "{options}");
    let compression = conn
        .query_one_raw(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT attcompression::text AS c, current_setting('server_version_num')::int AS v \
             FROM pg_attribute WHERE attrelid = 'webhook_deliveries'::regclass \
             AND attname = 'payload'",
        ))
        .await
        .expect("attcompression")
        .expect("the payload column");
    let version: i32 = compression.try_get("", "v").expect("version");
    let method: String = compression.try_get("", "c").expect("method");
    // PostgreSQL 14+ as packaged by Debian and the official images has lz4 ('l').
    assert!(
        version < 140000 || method == "l",
        "compression `{method}` on {version}"
    );

    let large = format!("{{\"body\":\"{}\"}}", "x".repeat(100_000));
    let mut new = delivery("github", "large-payload");
    new.payload = large.clone();
    let recorded = deliveries::record_many(&db, &[new]).await.expect("record");
    let Some(Recorded::New(id)) = recorded.first().cloned() else {
        panic!("not recorded: {recorded:?}");
    };
    let stored = deliveries::get(&db, &id).await.expect("read");
    assert_eq!(stored.payload, large);
}

/// Many deliveries handed to the intake at once are written in a few statements, and each
/// caller learns its own outcome: 60 callers, 40 distinct delivery ids, 40 new rows.
#[tokio::test]
async fn the_intake_answers_each_caller_with_its_own_outcome() {
    let (db, _file) = fresh().await;
    let intake = std::sync::Arc::new(openhands_integrations::intake::Intake::start(db.clone()));
    let mut callers = tokio::task::JoinSet::new();
    for n in 0..60 {
        let intake = intake.clone();
        callers.spawn(async move {
            let id = format!("c-{}", n % 40);
            let recorded = intake
                .record(delivery("github", &id))
                .await
                .expect("recorded");
            (id, recorded)
        });
    }
    let mut new = std::collections::BTreeMap::new();
    let mut duplicates = 0;
    while let Some(joined) = callers.join_next().await {
        match joined.expect("caller") {
            (id, Recorded::New(row)) => {
                assert!(new.insert(id, row).is_none(), "one new row per delivery id");
            }
            (_, Recorded::Duplicate) => duplicates += 1,
        }
    }
    assert_eq!((new.len(), duplicates), (40, 20));
    let rows = deliveries::list(&db, None).await.expect("list");
    assert_eq!(rows.len(), 40);
    for row in rows {
        assert_eq!(new.get(&row.delivery_id), Some(&row.id));
    }
}
