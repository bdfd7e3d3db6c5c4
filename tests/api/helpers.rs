//! Starting Sara as a process and talking to it like Twilio and an operator would.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Once};
use std::time::Duration;

use chrono::{Datelike, Days, NaiveDate, Timelike, Utc, Weekday};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use sara::channels::twilio::TwilioSignature;
use sara::config::{Config, Secret};
use sara_actors::availability::Availability;
use sara_actors::business::Business;

pub const AUTH_TOKEN: &str = "test-twilio-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// base64 of 32 bytes: the personal-data key of the PostgreSQL tests.
pub const TEST_ENCRYPTION_KEY: &str = "c2FyYS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";

/// A running Sara: a `sara serve` process ([`Sara::start`] and friends; killed when dropped),
/// or the same application built in this process ([`spawn_app`]; stopped when dropped).
pub struct Sara {
    pub base: String,
    pub db_url: String,
    child: Option<Child>,
    /// The in-process server's task, with [`spawn_app`].
    served: Option<tokio::task::JoinHandle<()>>,
    /// The engine's clock, with [`spawn_app`]: a test moves "now" instead of waiting.
    pub clock: Option<Arc<TestClock>>,
    pub client: reqwest::Client,
    /// The temporary directory of the database; removed when the last holder drops it.
    dir: Arc<TempDir>,
}

/// A temporary directory shared by the servers started on it (a restart after `kill9`).
pub type TempDir = tempfile::TempDir;

/// A new temporary directory, removed when dropped.
pub fn temp_dir() -> Arc<TempDir> {
    Arc::new(tempfile::tempdir().expect("temp dir"))
}

static SID: AtomicU64 = AtomicU64::new(1);

/// A fresh Twilio-like message id.
pub fn sid() -> String {
    format!(
        "SM{:032x}",
        SID.fetch_add(1, Ordering::Relaxed) + (std::process::id() as u64) * 1_000_000
    )
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The whole minutes from `now` that reach `at` or just past it (0 when `at` is not later),
/// rounded up from the milliseconds: rounding whole seconds up left the clock just short of
/// `at` when `now` was in the 59th second of a minute (CI saw 18:59:59.74 for 19:00, and the
/// reminder due at 19:00 was not yet due).
pub fn minutes_until(now: chrono::DateTime<chrono::FixedOffset>, at: chrono::DateTime<Utc>) -> i64 {
    let millis = (at - now.to_utc()).num_milliseconds();
    (millis.max(0) + 59_999) / 60_000
}

impl Sara {
    /// Starts Sara on a new temporary database.
    pub async fn start() -> Sara {
        let dir = temp_dir();
        let db_url = format!("sqlite://{}", dir.path().join("sara.db").display());
        Sara::start_on(dir, db_url).await
    }

    /// Starts Sara on a new temporary database with extra `SARA_*` settings.
    pub async fn start_with(env: &[(&str, &str)]) -> Sara {
        let dir = temp_dir();
        let db_url = format!("sqlite://{}", dir.path().join("sara.db").display());
        Sara::launch(dir, db_url, env).await
    }

    /// Starts Sara on an existing database (after a crash, say).
    pub async fn start_on(dir: Arc<TempDir>, db_url: String) -> Sara {
        Sara::launch(dir, db_url, &[]).await
    }

    pub async fn launch(dir: Arc<TempDir>, db_url: String, env: &[(&str, &str)]) -> Sara {
        install_crypto();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sara"));
        if db_url.starts_with("postgres") {
            // PostgreSQL needs the key from the environment (every instance the same); SQLite
            // tests leave it unset so the generated key file is exercised.
            command.env("SARA_STORAGE__ENCRYPTION_KEY", TEST_ENCRYPTION_KEY);
        }
        let mut child = command
            .arg("serve")
            .env("SARA_CONFIG", &config)
            .env("SARA_SERVER__BIND", "127.0.0.1:0")
            .env("SARA_SERVER__PUBLIC_URL", "https://sara.example.com")
            .env("SARA_STORAGE__DATABASE_URL", &db_url)
            .env("SARA_TWILIO__AUTH_TOKEN", AUTH_TOKEN)
            .env("SARA_ADMIN__TOKEN", ADMIN_TOKEN)
            .env("SARA_DEBUG__FAULTS", "true")
            .env("SARA_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sara binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // The first stdout line names the bound address; wait for it, not for a timer.
        let line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).map(|_| line)
        })
        .await
        .expect("reader thread")
        .expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("sara listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Sara {
            base: addr,
            db_url,
            child: Some(child),
            served: None,
            clock: None,
            client,
            dir,
        }
    }

    /// Sends SIGTERM, as an orchestrator stopping the instance would.
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("terminate needs a sara process");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (off the runtime) for the process to exit by itself; its exit status.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("exited needs a sara process");
        tokio::task::spawn_blocking(move || child.wait().expect("wait for sara"))
            .await
            .expect("waiting thread")
    }

    /// Kills the process without warning (SIGKILL), as a crash would.
    pub fn kill9(mut self) -> (Arc<TempDir>, String) {
        let mut child = self.child.take().expect("kill9 needs a sara process");
        let _ = child.kill();
        let _ = child.wait();
        (self.dir.clone(), self.db_url.clone())
    }

    /// Posts a signed SMS webhook; returns (status, body).
    pub async fn sms_with_sid(&self, from: &str, body: &str, sid: &str) -> (u16, String) {
        signed_sms(&self.client, &self.base, from, body, sid)
            .await
            .expect("request reaches sara")
    }

    /// Posts form `params` to `path_and_query`, signed as Twilio signs it.
    pub async fn twilio(&self, path_and_query: &str, params: &[(&str, &str)]) -> (u16, String) {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = format!("https://sara.example.com{path_and_query}");
        let signature = TwilioSignature::new(AUTH_TOKEN).sign(&url, &params);
        self.post_form(path_and_query, &params, Some(&signature))
            .await
    }

    pub async fn post_form(
        &self,
        path: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> (u16, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        self.post_raw(path, body.into_bytes(), signature).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> (u16, String) {
        Self::send(&self.client, &self.base, path, body, signature)
            .await
            .expect("request reaches sara")
    }

    /// Like `post_raw` on a connection of its own (the server may close it early, as it
    /// does for an oversized body); that is an `Err`, not a panic.
    pub async fn try_post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<(u16, String), reqwest::Error> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()?;
        Self::send(&client, &self.base, path, body, signature).await
    }

    async fn send(
        client: &reqwest::Client,
        base: &str,
        path: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<(u16, String), reqwest::Error> {
        let mut req = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(s) = signature {
            req = req.header("x-twilio-signature", s);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// Sends a text as `from` and returns Sara's reply text (the TwiML `<Message>`).
    pub async fn text(&self, from: &str, body: &str) -> String {
        let (status, xml) = self.sms_with_sid(from, body, &sid()).await;
        assert_eq!(status, 200, "webhook answered {status}: {xml}");
        message_of(&xml)
    }

    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .get(format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request reaches sara");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `POST /admin/debug/clock`: moves this Sara's clock `minutes` forward and returns once
    /// what became due has run (reminders written and sent, due outbox rows tried); its new
    /// "now". `advance(0)` only runs what is due ([`Sara::settle`]).
    pub async fn advance(&self, minutes: i64) -> chrono::DateTime<chrono::FixedOffset> {
        let (status, body) = self.clock_request(minutes).await;
        assert_eq!(status, 200, "debug clock: {body}");
        let now = body["now"].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(now).unwrap_or_else(|_| panic!("now: {body}"))
    }

    /// Runs the scheduler and the outbox until neither has anything due; Sara's "now".
    pub async fn settle(&self) -> chrono::DateTime<chrono::FixedOffset> {
        self.advance(0).await
    }

    /// Moves this Sara's clock to `at` (a whole minute past it; never back); its new now.
    pub async fn advance_to(
        &self,
        at: chrono::DateTime<Utc>,
    ) -> chrono::DateTime<chrono::FixedOffset> {
        let now = self.settle().await;
        match minutes_until(now, at) {
            0 => now,
            minutes => self.advance(minutes).await,
        }
    }

    /// The debug clock's raw answer: (status, JSON body).
    pub async fn clock_request(&self, minutes: i64) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .post(format!("{}/admin/debug/clock", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "advance_minutes": minutes }))
            .send()
            .await
            .expect("request reaches sara");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn bookings(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.admin_get("/admin/bookings").await;
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }

    /// A counter or gauge from `/metrics`: one series when `name` carries its labels
    /// (`name{label="…"}`, written as Prometheus renders it), else the sum over every series of
    /// the metric; 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        // The sum over every series of the metric (`name` and `name{label="…"}`).
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                let series = if name.contains('{') {
                    k
                } else {
                    k.split_once('{').map_or(k, |(n, _)| n)
                };
                (series == name).then(|| v.parse::<f64>().ok()).flatten()
            })
            .sum()
    }
}

impl Drop for Sara {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(served) = &self.served {
            served.abort();
        }
    }
}

/// A clock a test sets: the engine's "now" (minimum notice, form expiry, hand-over time).
pub struct TestClock {
    now: std::sync::Mutex<chrono::DateTime<Utc>>,
}

impl TestClock {
    pub fn new(now: chrono::DateTime<Utc>) -> TestClock {
        TestClock {
            now: std::sync::Mutex::new(now),
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock().expect("test clock") += by;
    }
}

impl sara_actors::ports::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        *self.now.lock().expect("test clock")
    }
}

/// The configuration every test server gets: `config.toml` as the binary reads it, on a
/// fresh SQLite database in `dir`, with the test tokens and fault injection.
fn test_config(dir: &TempDir) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::file(&path))
        .extract()
        .expect("config.toml loads");
    let db = format!("sqlite://{}", dir.path().join("sara.db").display());
    config.server.bind = "127.0.0.1:0".into();
    config.server.public_url = "https://sara.example.com".into();
    config.storage.database_url = Secret::new(db);
    config.twilio.auth_token = Some(Secret::new(AUTH_TOKEN));
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    config.debug.faults = true;
    config
}

/// Sara built in this process on a port-0 listener, its engine on a [`TestClock`]
/// (starting at the real now, as the messages' own times are). Cheaper than a process; the
/// binary tests stay for the CLI contract, kill -9 and several instances.
pub async fn spawn_app() -> Sara {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with the configuration changed first (as an operator would edit
/// `config.toml`).
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> Sara {
    install_crypto();
    let dir = temp_dir();
    let mut config = test_config(&dir);
    change(&mut config);
    let db_url = config.storage.database_url.expose().to_string();
    let clock = Arc::new(TestClock::new(Utc::now()));
    let app = sara::app::App::build_with_clock(config, clock.clone())
        .await
        .expect("the app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("bound address");
    let served = tokio::spawn(async move {
        app.serve(listener, std::future::pending())
            .await
            .expect("the app serves");
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    Sara {
        base: format!("http://{addr}"),
        db_url,
        child: None,
        served: Some(served),
        clock: Some(clock),
        client,
        dir,
    }
}

/// Posts a Twilio-signed SMS webhook to the Sara at `base`, as Twilio would (and re-would).
pub async fn signed_sms(
    client: &reqwest::Client,
    base: &str,
    from: &str,
    body: &str,
    sid: &str,
) -> Result<(u16, String), reqwest::Error> {
    let params = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("Body", body),
        ("From", from),
        ("MessageSid", sid),
        ("To", "+15550100000"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let signature =
        TwilioSignature::new(AUTH_TOKEN).sign("https://sara.example.com/webhook/sms", &params);
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let resp = client
        .post(format!("{base}/webhook/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(form)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// The text inside `<Message>…</Message>`, unescaped; empty when Sara stayed quiet.
pub fn message_of(xml: &str) -> String {
    let Some(start) = xml.find("<Message>") else {
        return String::new();
    };
    let rest = &xml[start + "<Message>".len()..];
    let end = rest.find("</Message>").unwrap_or(rest.len());
    quick_xml::escape::unescape(&rest[..end])
        .map(|s| s.into_owned())
        .unwrap_or_default()
}

/// The business of `config.toml`, as every server these tests start reads it (the file
/// alone: no `SARA_*` variable of the test process can change it).
pub fn business() -> &'static Business {
    static BUSINESS: LazyLock<Business> = LazyLock::new(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&path))
            .extract()
            .expect("config.toml loads");
        config
            .business()
            .expect("config.toml names a valid business")
    });
    &BUSINESS
}

/// Every business-local day a test may book on, in order: open (its weekday has hours and
/// it is no closure), at least three days and the minimum notice ahead of now (the server
/// under test reads the same real clock), and within the booking horizon. The one place
/// test dates come from, so no test depends on the day it runs.
pub fn open_days() -> impl Iterator<Item = NaiveDate> {
    let b = business();
    let hours = Availability::new(b);
    let now = Utc::now();
    let today = hours.local_date(now);
    let notice = now + chrono::Duration::minutes(i64::from(b.min_notice_minutes));
    let first = hours
        .local_date(notice)
        .max(today + Days::new(3))
        .succ_opt()
        .expect("date in range");
    let last = today + Days::new(u64::from(b.horizon_days));
    first
        .iter_days()
        .take_while(move |d| *d <= last)
        .filter(move |d| !hours.opening(*d).is_empty())
}

/// How a caller writes a date: "Dec 1".
pub fn day_text(day: NaiveDate) -> String {
    day.format("%b %-d").to_string()
}

/// The first open day (see [`open_days`]) that is a `weekday`, as (date, "Dec 1").
pub fn upcoming(weekday: Weekday) -> (NaiveDate, String) {
    let day = open_days()
        .find(|d| d.weekday() == weekday)
        .unwrap_or_else(|| panic!("no open {weekday} within the booking horizon"));
    (day, day_text(day))
}

/// The first `n` open days that follow each other without a closed day between them.
pub fn consecutive_open_days(n: usize) -> Vec<NaiveDate> {
    let mut run: Vec<NaiveDate> = Vec::with_capacity(n);
    for day in open_days() {
        if run.last().is_some_and(|l| l.succ_opt() != Some(day)) {
            run.clear();
        }
        run.push(day);
        if run.len() == n {
            return run;
        }
    }
    panic!("no {n} consecutive open days within the booking horizon");
}

/// `n` distinct starts for appointments of `minutes` on open days, `minutes` apart inside
/// the opening hours, as (date, "Dec 1", "9:30am").
pub fn distinct_slots(n: usize, minutes: u32) -> Vec<(NaiveDate, String, String)> {
    let b = business();
    let hours = Availability::new(b);
    let length = chrono::Duration::minutes(i64::from(minutes));
    let mut out = Vec::with_capacity(n);
    for day in open_days() {
        for range in hours.opening(day) {
            let mut at = range.start;
            while at + length <= range.end && out.len() < n {
                let local = at.with_timezone(&b.timezone);
                let time = if local.minute() == 0 {
                    local.format("%-I%P").to_string()
                } else {
                    local.format("%-I:%M%P").to_string()
                };
                out.push((day, day_text(day), time));
                at += length;
            }
        }
        if out.len() == n {
            return out;
        }
    }
    panic!("fewer than {n} slots of {minutes} minutes within the booking horizon");
}

/// A distinct test phone number.
pub fn phone(n: u32) -> String {
    format!("+1555{:07}", n + (std::process::id() % 1000) * 1000)
}

/// A local stand-in for Twilio's Messages API that accepts every message for `account` (201,
/// queued, with `sid`), and a Sara binary that sends its SMS there (Twilio REST configured).
pub async fn sara_with_twilio_rest(account: &str, sid: &str) -> (Sara, wiremock::MockServer) {
    sara_with_twilio_rest_and(account, sid, &[]).await
}

/// [`sara_with_twilio_rest`] with more `SARA_*` settings.
pub async fn sara_with_twilio_rest_and(
    account: &str,
    sid: &str,
    env: &[(&str, &str)],
) -> (Sara, wiremock::MockServer) {
    let twilio = twilio_rest_stand_in(account, sid).await;
    let sara = Sara::start_with(&twilio_rest_env(account, &twilio.uri(), env)).await;
    (sara, twilio)
}

/// The Twilio REST settings pointing Sara at a stand-in at `base`, followed by `env`.
pub fn twilio_rest_env<'a>(
    account: &'a str,
    base: &'a str,
    env: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("SARA_TWILIO__ACCOUNT_SID", account),
        ("SARA_TWILIO__FROM", "+15550100000"),
        ("SARA_TWILIO__API_BASE", base),
    ];
    all.extend_from_slice(env);
    all
}

/// The Twilio Messages API stand-in of [`sara_with_twilio_rest`].
pub async fn twilio_rest_stand_in(account: &str, sid: &str) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{account}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "account_sid": account, "sid": sid, "status": "queued",
            "to": "+15550001111", "from": "+15550100000", "body": "x", "num_segments": "1",
            "error_code": null
        })))
        .mount(&twilio)
        .await;
    twilio
}

/// `(To, Body)` of every message a Twilio REST stand-in was asked to send, in order.
pub async fn sms_sent(twilio: &wiremock::MockServer) -> Vec<(String, String)> {
    let requests = twilio.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| {
            let form: std::collections::HashMap<String, String> =
                form_urlencoded::parse(&r.body).into_owned().collect();
            let field = |k: &str| form.get(k).cloned().unwrap_or_default();
            (field("To"), field("Body"))
        })
        .collect()
}

#[test]
fn minutes_until_reaches_the_target_from_any_second_of_a_minute() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T19:00:00Z")
        .expect("a time")
        .to_utc();
    for now in [
        "2026-12-04T02:55:59.742-05:00",
        "2026-12-04T02:55:00.000-05:00",
        "2026-12-04T02:55:00.001-05:00",
    ] {
        let now = chrono::DateTime::parse_from_rfc3339(now).expect("a time");
        let minutes = minutes_until(now, at);
        let reached = now.to_utc() + chrono::Duration::minutes(minutes);
        assert!(reached >= at, "{now}: {minutes} min reach {reached}");
        assert!(
            reached - at < chrono::Duration::minutes(1),
            "{now}: overshoots"
        );
    }
    assert_eq!(minutes_until(at.fixed_offset(), at), 0);
}
