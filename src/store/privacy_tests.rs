//! Personal data at rest, on both backends: a raw dump of every table shows no phone, name,
//! email or message text; the admin reads still show them; a wrong key fails clearly.

use chrono::{TimeZone, Utc};
use sara_actors::dialogue::Reply;
use sara_actors::model::{Booking, BookingStatus, Channel, Phone};
use sara_actors::ports::{
    CommitOutcome, ConversationStore, OutboxKind, OutboxMessage, TurnCommit, TurnRecord,
};
use uuid::Uuid;

use super::testing::on_both_backends;
use super::{Database, EncryptionKey, StoreError};

const PHONE: &str = "+15550123987";
const DIGITS: &str = "15550123987";
const NAME: &str = "Zelda Quartermaine";
const EMAIL: &str = "zelda.q@example.org";
const TEXT: &str = "please book me a checkup, this is Zelda Quartermaine";

fn phone() -> Phone {
    Phone::parse(PHONE).expect("a valid test number")
}

fn commit_of(expected_version: i64, provider_id: &str) -> TurnCommit {
    TurnCommit {
        phone: phone(),
        expected_version,
        owner_epoch: 0,
        state: format!("{{\"name\":\"{NAME}\",\"email\":\"{EMAIL}\",\"phone\":\"{PHONE}\"}}"),
        turn: TurnRecord {
            channel: Channel::Sms,
            provider_id: Some(provider_id.to_string()),
            text: TEXT.to_string(),
            // Buttons too, so the raw-bytes checks cover the rest of the reply.
            reply: Reply {
                text: format!("Thanks {NAME}, I have you down for a checkup"),
                options: vec![format!("Yes, {NAME}"), "No".to_string()],
                ..Reply::default()
            },
            intent: "book".to_string(),
            nlu: "rules".to_string(),
            understood: format!("{{\"name\":\"{NAME}\",\"email\":\"{EMAIL}\"}}"),
            at: Utc::now(),
            elapsed_ms: 3,
        },
        // A message in the outbox too: its recipient and payload are personal data.
        outbox: vec![OutboxMessage {
            contact: phone(),
            recipient: PHONE.to_string(),
            channel: Channel::Sms,
            kind: OutboxKind::Reply,
            payload: format!("{{\"text\":\"Thanks {NAME}\",\"email\":\"{EMAIL}\"}}"),
            idempotency_key: format!("{provider_id}:0"),
            not_before: Utc::now(),
        }],
        jobs: Vec::new(),
        void_jobs: Vec::new(),
        attendance: Vec::new(),
    }
}

fn the_booking() -> Booking {
    let start = Utc
        .with_ymd_and_hms(2026, 12, 1, 15, 0, 0)
        .single()
        .expect("a valid time");
    Booking {
        id: Uuid::new_v4(),
        phone: phone(),
        name: Some(NAME.to_string()),
        email: Some(EMAIL.to_string()),
        service: "checkup".to_string(),
        start,
        end: start + chrono::Duration::minutes(30),
        status: BookingStatus::Confirmed,
        sequence: 0,
        staff: None,
        event_id: None,
    }
}

/// Everything in the database as text: every row of every table (PostgreSQL: each row cast
/// to text; SQLite: each column's value, blobs decoded as lossy UTF-8, plus the raw bytes of
/// the database file and its WAL).
pub(super) async fn dump(db: &Database) -> String {
    let mut out = String::new();
    match (db.postgres_pool(), db.sqlite_pool()) {
        (Some(pool), _) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(pool)
            .await
            .expect("list tables");
            assert!(tables.len() >= 5, "{tables:?}");
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT t::text FROM \"{table}\" AS t"
                )))
                .fetch_all(pool)
                .await
                .expect("dump a table");
                out.push_str(&rows.join("\n"));
                out.push('\n');
            }
        }
        (None, Some(pool)) => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(pool)
                    .await
                    .expect("list tables");
            assert!(tables.len() >= 5, "{tables:?}");
            for table in tables {
                // Every value as bytes, whatever its type.
                let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .expect("list columns");
                for column in columns {
                    let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                        format!("SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""),
                    ))
                    .fetch_all(pool)
                    .await
                    .expect("dump a column");
                    for value in values.into_iter().flatten() {
                        out.push_str(&String::from_utf8_lossy(&value));
                        out.push('\n');
                    }
                }
            }
            let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list")
                .fetch_one(pool)
                .await
                .expect("the database file");
            for path in [file.clone(), format!("{file}-wal")] {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        (None, None) => unreachable!("a store has a pool"),
    }
    out
}

fn assert_no_personal_data(dump: &str) {
    for secret in [PHONE, DIGITS, NAME, "Zelda", EMAIL, TEXT, "checkup, this"] {
        assert!(!dump.contains(secret), "{secret:?} is in the dump in clear");
    }
}

on_both_backends!(
    a_raw_dump_holds_no_personal_data_but_admin_reads_do,
    a_wrong_key_is_refused_at_start_and_never_reads_garbage,
);

async fn a_raw_dump_holds_no_personal_data_but_admin_reads_do(db: Database) {
    let out = db
        .commit(vec![commit_of(0, "SMprivacy1"), commit_of(1, "SMprivacy2")])
        .await
        .expect("commit");
    assert_eq!(out[1], CommitOutcome::Committed { version: 2 });
    db.insert_booking(&the_booking()).await.expect("book");

    let raw = dump(&db).await;
    assert!(
        raw.contains("SMprivacy1"),
        "provider ids stay clear (and the dump works)"
    );
    assert_no_personal_data(&raw);

    // The admin reads decrypt.
    let log = db.turns_for(PHONE).await.expect("read").expect("found");
    assert_eq!(log.conversation, PHONE);
    assert_eq!(log.turns.len(), 2);
    assert_eq!(log.turns[0].text, TEXT);
    assert!(log.turns[0].reply.contains(NAME));
    assert_eq!(
        db.turns_for(DIGITS).await.expect("read"),
        Some(log.clone()),
        "any form of the phone finds it"
    );
    assert_eq!(db.turns_for("SMprivacy2").await.expect("read"), Some(log));
    let stored = db.load(&phone()).await.expect("load").expect("stored");
    assert!(stored.state.contains(NAME));
    let duplicate = db
        .commit(vec![commit_of(2, "SMprivacy1")])
        .await
        .expect("commit");
    assert!(
        matches!(&duplicate[0], CommitOutcome::Duplicate { reply } if reply.text.contains(NAME) && reply.options[0].contains(NAME)),
        "{duplicate:?}"
    );
    assert_eq!(
        db.processed_reply("SMprivacy2")
            .await
            .expect("read")
            .map(|r| r.text.contains(NAME) && r.options[0].contains(NAME)),
        Some(true)
    );
    let outbox = db.outbox().list_outbox(10).await.expect("outbox");
    assert!(
        !outbox.is_empty() && outbox.iter().all(|m| m.phone == PHONE),
        "{outbox:?}"
    );
    let views = db.bookings(chrono_tz::UTC).await.expect("list");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].phone, PHONE);
    assert_eq!(views[0].name.as_deref(), Some(NAME));
    let upcoming = db
        .upcoming_bookings(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        .await
        .expect("upcoming");
    assert_eq!(upcoming.len(), 1);
    assert_eq!(upcoming[0].email.as_deref(), Some(EMAIL));
    assert_eq!(upcoming[0].phone, phone());
}

async fn a_wrong_key_is_refused_at_start_and_never_reads_garbage(db: Database) {
    db.commit(vec![commit_of(0, "SMwrongkey")])
        .await
        .expect("commit");
    db.insert_booking(&the_booking()).await.expect("book");

    let wrong = db.with_key(&EncryptionKey::generate());
    let err = wrong.migrate().await.expect_err("another key is refused");
    assert!(
        err.to_string()
            .contains("storage.encryption_key does not open this database"),
        "{err}"
    );
    // Past the start-up check, every read of personal data is an error, not garbage: the
    // phone hashes to another contact key, and sealed values do not open.
    assert!(wrong.load(&phone()).await.expect("load").is_none());
    corrupt(wrong.processed_reply("SMwrongkey").await.map(drop));
    corrupt(wrong.turns_for("SMwrongkey").await.map(drop));
    corrupt(wrong.bookings(chrono_tz::UTC).await.map(drop));
    assert!(matches!(
        wrong
            .upcoming_bookings(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
            .await,
        Err(sara_actors::ports::CalendarError::Unavailable(_))
    ));
    // The right key still opens everything.
    db.migrate().await.expect("the right key");
    assert!(db.load(&phone()).await.expect("load").is_some());
}

fn corrupt(outcome: Result<(), StoreError>) {
    match outcome {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("another"), "{why}"),
        other => panic!("expected a decryption error, got {other:?}"),
    }
}

#[tokio::test]
async fn postgres_refuses_to_start_without_a_valid_key() {
    let url = super::testing::postgres_url();
    let err = Database::connect(&url, None)
        .await
        .expect_err("no key with PostgreSQL");
    assert!(
        err.to_string().contains("SARA_STORAGE__ENCRYPTION_KEY"),
        "{err}"
    );
    assert!(
        err.to_string().contains("required with PostgreSQL"),
        "{err}"
    );
    let err = Database::connect(&url, Some("dG9vIHNob3J0"))
        .await
        .expect_err("a short key");
    assert!(err.to_string().contains("32"), "{err}");
    assert!(!err.to_string().contains("dG9vIHNob3J0"), "{err}");
}

#[tokio::test]
async fn sqlite_creates_a_private_key_file_once_and_reuses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("sara.db").display());
    let key_file = dir.path().join("sara.db.key");
    let db = Database::connect(&url, None).await.expect("connect");
    db.migrate().await.expect("migrate");
    assert!(key_file.exists(), "the key file is created on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&key_file).expect("read the key file");
    db.commit(vec![commit_of(0, "SMkeyfile")])
        .await
        .expect("commit");
    db.close().await;

    // The next start reuses it: the data opens, the file is unchanged.
    let db = Database::connect(&url, None).await.expect("reconnect");
    db.migrate().await.expect("the same key opens the database");
    assert_eq!(
        db.load(&phone()).await.expect("load").map(|s| s.version),
        Some(1)
    );
    db.close().await;
    assert_eq!(std::fs::read_to_string(&key_file).expect("read"), key);

    // A configured key wins over the file; here it is the wrong one.
    let other = EncryptionKey::generate().to_base64();
    let db = Database::connect(&url, Some(&other))
        .await
        .expect("connect");
    let err = db.migrate().await.expect_err("not this database's key");
    assert!(err.to_string().contains("does not open"), "{err}");
    db.close().await;
    // And the file's key given explicitly works.
    let db = Database::connect(&url, Some(key.trim()))
        .await
        .expect("connect");
    db.migrate().await.expect("the file's key, given in config");
    db.close().await;
}

#[tokio::test]
async fn an_in_memory_database_needs_no_key_file() {
    let db = Database::connect("sqlite::memory:", None)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db.commit(vec![commit_of(0, "SMmemory")])
        .await
        .expect("commit");
    assert!(db.load(&phone()).await.expect("load").is_some());
}

#[tokio::test]
async fn a_database_written_in_clear_is_refused_by_the_migration() {
    // The first schema alone, with a row in clear, as the landed code would have left it.
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let db = Database::connect(&url, None).await.expect("connect");
    let Some(pool) = db.sqlite_pool() else {
        panic!("a SQLite URL gives SQLite");
    };
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.migrations = std::borrow::Cow::Owned(migrator.migrations[..1].to_vec());
    migrator.run(pool).await.expect("the first migration");
    sqlx::query("INSERT INTO contacts (contact_key, phone, created_at) VALUES (?1, ?1, 'x')")
        .bind(PHONE)
        .execute(pool)
        .await
        .expect("a contact in clear");
    let err = db.migrate().await.expect_err("refused");
    assert!(
        err.to_string().contains("written_in_clear"),
        "the error names the reason: {err}"
    );
    db.close().await;
}
