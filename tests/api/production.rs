//! Production mode: several `sara serve` processes sharing one PostgreSQL database (created
//! for the test, dropped after) and Redis (a fresh key prefix per test), each webhook sent
//! to a random instance, as a load balancer would.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::helpers::{Sara, distinct_slots, message_of, phone, sid};

fn postgres_url() -> String {
    std::env::var("SARA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub(crate) fn shared_redis_url() -> String {
    std::env::var("SARA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A PostgreSQL database made for one test; dropped (with its connections) at the end.
pub(crate) struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub(crate) async fn create() -> PgDatabase {
        let mut admin = admin_connection().await;
        let name = format!("sara_it_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        PgDatabase { name }
    }

    /// The database's URL on `port` (5432, or a proxy in front of it).
    pub(crate) fn url_on(&self, port: u16) -> String {
        let options = PgConnectOptions::from_str(&postgres_url()).expect("a PostgreSQL URL");
        format!(
            "postgres://{}@127.0.0.1:{port}/{}",
            options.get_username(),
            self.name
        )
    }
}

async fn admin_connection() -> PgConnection {
    let options = PgConnectOptions::from_str(&postgres_url()).expect("a PostgreSQL URL");
    PgConnection::connect_with(&options)
        .await
        .expect("PostgreSQL must be reachable at SARA_TEST_POSTGRES_URL")
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            });
        })
        .join();
    }
}

/// A `redis-server` of the test's own (no persistence), stopped when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts on `port` (0 = a free one) and returns once it accepts connections.
    fn start(port: u16) -> RedisServer {
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        } else {
            port
        };
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        assert!(ready, "redis-server on port {port} did not start");
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        RedisServer { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` instances on one PostgreSQL database and one Redis under a fresh prefix.
pub(crate) async fn cluster(
    n: usize,
    db_url: &str,
    redis_url: &str,
    extra: &[(&str, &str)],
) -> Vec<Sara> {
    let prefix = format!("sara-it-{}", uuid::Uuid::new_v4().simple());
    let mut env = vec![
        ("SARA_STORAGE__REDIS_URL", redis_url),
        ("SARA_STORAGE__REDIS_PREFIX", prefix.as_str()),
    ];
    env.extend_from_slice(extra);
    let mut instances = Vec::with_capacity(n);
    for _ in 0..n {
        let dir = crate::helpers::temp_dir();
        instances.push(Sara::launch(dir, db_url.to_string(), &env).await);
    }
    instances
}

/// Posts a signed SMS to `sara` and, like a provider, delivers it again (same MessageSid)
/// while the answer is a 503; returns the reply text.
async fn deliver(sara: &Sara, from: &str, body: &str, retries: &AtomicU64) -> String {
    let id = sid();
    for _ in 0..50 {
        let (status, xml) = sara.sms_with_sid(from, body, &id).await;
        match status {
            200 => return message_of(&xml),
            503 => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("webhook answered {other}: {xml}"),
        }
    }
    panic!("still 503 after 50 deliveries");
}

fn pick(instances: &[Sara]) -> &Sara {
    &instances[(uuid::Uuid::new_v4().as_u128() % instances.len() as u128) as usize]
}

fn caller_name(i: usize) -> String {
    const FIRST: [&str; 10] = [
        "Ann", "Ben", "Cara", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ida", "Jon",
    ];
    const LAST: [&str; 10] = [
        "Lee", "Ray", "Moss", "Hart", "Cole", "West", "Reed", "Lane", "Ford", "Shaw",
    ];
    format!("{} {}", FIRST[i % 10], LAST[(i / 10) % 10])
}

fn interval(b: &serde_json::Value) -> (DateTime<FixedOffset>, DateTime<FixedOffset>) {
    let at = |k: &str| {
        DateTime::parse_from_rfc3339(b[k].as_str().expect("a time string")).expect("RFC 3339")
    };
    (at("start"), at("end"))
}

fn assert_no_overlap(bookings: &[serde_json::Value]) {
    let mut confirmed: Vec<_> = bookings
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .map(interval)
        .collect();
    confirmed.sort();
    for pair in confirmed.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping bookings: {pair:?}");
    }
}

/// The conversation's turn log has seqs 1..=n, the texts in send order, no provider id twice.
async fn assert_log(sara: &Sara, from: &str, sent: &[String]) {
    let (status, log) = sara.admin_get(&format!("/logs/{from}")).await;
    assert_eq!(status, 200, "log of a caller");
    let turns = log["turns"].as_array().expect("turns");
    let seqs: Vec<i64> = turns
        .iter()
        .map(|t| t["seq"].as_i64().expect("seq"))
        .collect();
    let expected: Vec<i64> = (1..=sent.len() as i64).collect();
    assert_eq!(seqs, expected, "gapless, no duplicate");
    let texts: Vec<&str> = turns
        .iter()
        .map(|t| t["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, sent, "in send order");
    let ids: HashSet<&str> = turns
        .iter()
        .filter_map(|t| t["provider_id"].as_str())
        .collect();
    assert_eq!(ids.len(), sent.len(), "one provider id per turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_fifty_callers_book_once_each_with_gapless_ordered_logs() {
    let db = PgDatabase::create().await;
    let instances = Arc::new(cluster(3, &db.url_on(5432), &shared_redis_url(), &[]).await);
    let callers = 50;
    let slots = distinct_slots(callers, 30);
    let retries = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(12));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, (_, day, time)) in slots.into_iter().enumerate() {
        let (instances, retries, in_flight) =
            (instances.clone(), retries.clone(), in_flight.clone());
        tasks.spawn(async move {
            let _slot = in_flight.acquire_owned().await.expect("semaphore open");
            let me = phone(100 + i as u32);
            let dialog = vec![
                "hello".to_string(),
                format!("my name is {}", caller_name(i)),
                format!("could I come in on {day} at {time}?"),
                "a consultation please".to_string(),
                "yes please".to_string(),
            ];
            let mut last = String::new();
            for text in &dialog {
                last = deliver(pick(&instances), &me, text, &retries).await;
            }
            assert!(
                last.to_lowercase().contains("you're booked"),
                "{me}: {last}"
            );
            (me, dialog)
        });
    }
    let mut sent = Vec::new();
    while let Some(done) = tasks.join_next().await {
        sent.push(done.expect("caller task"));
    }
    let took = started.elapsed();
    let turns = (callers * 5) as f64;
    eprintln!(
        "3 instances: {turns} turns in {:.2}s = {:.0} turns/s; {} retried deliveries (503)",
        took.as_secs_f64(),
        turns / took.as_secs_f64(),
        retries.load(Ordering::Relaxed)
    );
    for (me, dialog) in &sent {
        assert_log(pick(&instances), me, dialog).await;
    }
    let bookings = pick(&instances).bookings().await;
    let mut per_phone: HashMap<&str, usize> = HashMap::new();
    for b in bookings.iter().filter(|b| b["status"] == "confirmed") {
        *per_phone
            .entry(b["phone"].as_str().expect("phone"))
            .or_default() += 1;
    }
    assert_eq!(per_phone.len(), callers, "every caller booked");
    assert!(per_phone.values().all(|&n| n == 1), "exactly one each");
    assert_no_overlap(&bookings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_callers_racing_for_five_slots_get_exactly_five_bookings() {
    let db = PgDatabase::create().await;
    let instances = Arc::new(cluster(3, &db.url_on(5432), &shared_redis_url(), &[]).await);
    let slots = distinct_slots(5, 30);
    let retries = Arc::new(AtomicU64::new(0));
    // Everyone asks first (each sees the slot free), then everyone confirms at once.
    let mut asks = JoinSet::new();
    for i in 0..100usize {
        let (instances, retries) = (instances.clone(), retries.clone());
        let (_, day, time) = slots[i % 5].clone();
        asks.spawn(async move {
            let me = phone(300 + i as u32);
            let ask = format!(
                "I'd like a consultation on {day} at {time}, my name is {}",
                caller_name(i)
            );
            let reply = deliver(pick(&instances), &me, &ask, &retries).await;
            assert!(reply.contains("M"), "offered a time: {reply}");
            me
        });
    }
    let mut callers = Vec::new();
    while let Some(me) = asks.join_next().await {
        callers.push(me.expect("ask task"));
    }
    let mut confirms = JoinSet::new();
    for me in callers {
        let (instances, retries) = (instances.clone(), retries.clone());
        confirms.spawn(async move {
            let reply = deliver(pick(&instances), &me, "yes", &retries).await;
            (me, reply)
        });
    }
    let mut told_booked = HashSet::new();
    while let Some(done) = confirms.join_next().await {
        let (me, reply) = done.expect("confirm task");
        if reply.to_lowercase().contains("you're booked") {
            told_booked.insert(me);
        }
    }
    let bookings = pick(&instances).bookings().await;
    let confirmed: Vec<_> = bookings
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .collect();
    assert_eq!(confirmed.len(), 5, "exactly five bookings: {confirmed:?}");
    assert_no_overlap(&bookings);
    let booked: HashSet<String> = confirmed
        .iter()
        .map(|b| b["phone"].as_str().expect("phone").to_string())
        .collect();
    assert_eq!(
        told_booked, booked,
        "\"booked\" is said to exactly the winners"
    );
}

/// Reads the fencing counter Redis holds for `phone` (0 when there is none).
async fn epoch_in_redis(redis_url: &str, prefix: &str, phone: &str) -> i64 {
    let client = redis::Client::open(redis_url).expect("a Redis URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test's Redis answers");
    // Redis keys name phones by the store's keyed hash, never in clear.
    let key_of_db = sara::store::EncryptionKey::from_base64(crate::helpers::TEST_ENCRYPTION_KEY)
        .expect("the test key is valid");
    let id = sara::store::CacheSealer::from_key(&key_of_db).pseudonym(phone);
    let key = format!("{prefix}:epoch:{id}");
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<i64>>(&mut con)
        .await
        .expect("GET")
        .unwrap_or(0)
}

async fn ready(sara: &Sara) -> (u16, serde_json::Value) {
    let resp = sara
        .client
        .get(format!("{}/ready", sara.base))
        .send()
        .await
        .expect("ready answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// An SMS opt-out is held by the number's conversation: the instance whose actor has the
/// conversation in memory learns of a STOP sent through another instance (the lease's epoch
/// moved on past its own, so it reads the conversation again) and answers nothing until a
/// START, wherever that arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_through_one_instance_silences_the_number_on_the_other() {
    let db = PgDatabase::create().await;
    let instances = cluster(2, &db.url_on(5432), &shared_redis_url(), &[]).await;
    let (a, b) = (&instances[0], &instances[1]);
    let me = phone(7301);
    let hello = a.text(&me, "hello").await;
    assert!(hello.contains("Sara"), "{hello}");
    let (code, xml) = b.sms_with_sid(&me, "STOP", &sid()).await;
    assert_eq!((code, message_of(&xml)), (200, String::new()), "{xml}");
    for instance in [a, b] {
        let (code, xml) = instance
            .sms_with_sid(&me, "can I book a cleaning tomorrow?", &sid())
            .await;
        assert_eq!(code, 200, "{xml}");
        assert_eq!(message_of(&xml), "", "opted out on both instances: {xml}");
    }
    let (code, xml) = a.sms_with_sid(&me, "START", &sid()).await;
    assert_eq!((code, message_of(&xml)), (200, String::new()), "{xml}");
    let again = b.text(&me, "hello").await;
    assert!(
        again.contains("Sara"),
        "answered again after START: {again}"
    );
    let (status, log) = b.admin_get(&format!("/logs/{me}")).await;
    assert_eq!(status, 200, "{log}");
    let texts: Vec<&str> = (log["turns"].as_array().expect("turns").iter())
        .filter_map(|t| t["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["hello", "hello"],
        "the messages while opted out were neither answered nor applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_are_answered_while_redis_is_down_and_leases_return_with_it() {
    let db = PgDatabase::create().await;
    let redis = RedisServer::start(0);
    let prefix = format!("sara-it-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("SARA_STORAGE__REDIS_URL", redis.url()),
        ("SARA_STORAGE__REDIS_PREFIX", prefix.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let dir = crate::helpers::temp_dir();
        instances.push(Sara::launch(dir, db.url_on(5432), &env).await);
    }
    let me = phone(500);
    let retries = AtomicU64::new(0);
    let mut sent = Vec::new();
    let say = async |text: &str, sent: &mut Vec<String>| {
        let reply = deliver(pick(&instances), &me, text, &retries).await;
        sent.push(text.to_string());
        reply
    };
    say("hello", &mut sent).await;
    say("what are your opening hours?", &mut sent).await;
    let before = epoch_in_redis(&redis.url(), &prefix, &me).await;
    assert!(before >= 2, "each turn took the lease: epoch {before}");
    let (status, body) = ready(&instances[0]).await;
    assert_eq!((status, body["redis"].as_str()), (200, Some("up")));

    // A provider retry reaching another instance is answered from Redis, not the engine.
    let retried = sid();
    let (status, first) = instances[0]
        .sms_with_sid(&me, "do you have parking?", &retried)
        .await;
    assert_eq!(status, 200);
    sent.push("do you have parking?".to_string());
    let (status, again) = instances[1]
        .sms_with_sid(&me, "do you have parking?", &retried)
        .await;
    assert_eq!((status, message_of(&again)), (200, message_of(&first)));
    assert_eq!(
        instances[1].metric("sara_duplicate_webhooks_total").await,
        1.0,
        "answered from the processed-webhook cache"
    );

    let port = redis.stop();
    // Without Redis the same retry misses the cache; the store's unique id still answers it
    // with the stored reply and applies nothing.
    let (status, third) = instances[1]
        .sms_with_sid(&me, "do you have parking?", &retried)
        .await;
    assert_eq!((status, message_of(&third)), (200, message_of(&first)));
    for text in ["where are you?", "do you take insurance?"] {
        let reply = say(text, &mut sent).await;
        assert!(!reply.is_empty(), "answered without Redis");
    }
    let (status, body) = ready(&instances[1]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], "down");
    assert_eq!(body["database"], "up");

    // Back on the same port, empty (no persistence): the instances reconnect by themselves.
    let redis = RedisServer::start(port);
    for sara in &instances {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ready(sara).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "instance did not reconnect to Redis"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    say("what is your cancellation policy?", &mut sent).await;
    say("thanks", &mut sent).await;
    let after = epoch_in_redis(&redis.url(), &prefix, &me).await;
    // The new Redis started its counter from nothing; the store remembered a larger token,
    // so the counter was lifted past it rather than handing out stale epochs.
    assert!(
        after > before,
        "leases are used again, above the old epochs: {after} vs {before}"
    );
    assert_log(&instances[0], &me, &sent).await;
}

/// A TCP relay in front of PostgreSQL that the test can cut (dropping every open connection
/// and refusing new ones) and restore.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (is_open, all) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                all.lock().expect("relay lock").push(link.abort_handle());
            }
        });
        Relay { port, open, links }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("relay lock").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_a_fast_503_and_a_retry_after_it_returns_succeeds() {
    let db = PgDatabase::create().await;
    let pg: SocketAddr = "127.0.0.1:5432".parse().expect("an address");
    let relay = Relay::start(pg).await;
    let dir = crate::helpers::temp_dir();
    let sara = Sara::launch(
        dir,
        db.url_on(relay.port),
        &[("SARA_STORAGE__ACQUIRE_TIMEOUT_MS", "1000")],
    )
    .await;
    let me = phone(600);
    assert!(!sara.text(&me, "hello").await.is_empty());

    relay.cut();
    let id = sid();
    let asked = Instant::now();
    let (status, body) = sara.sms_with_sid(&me, "where are you?", &id).await;
    eprintln!(
        "webhook with PostgreSQL down answered {status} in {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    let (status, body) = ready(&sara).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "down");

    relay.restore();
    // The provider's retry of the same message, once the database is back.
    let (status, body) = sara.sms_with_sid(&me, "where are you?", &id).await;
    assert_eq!(status, 200, "{body}");
    assert!(message_of(&body).contains("Harbor Street"), "{body}");
    assert_eq!(ready(&sara).await.0, 200);
    assert_log(
        &sara,
        &me,
        &["hello".to_string(), "where are you?".to_string()],
    )
    .await;
}
