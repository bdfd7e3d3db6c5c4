//! Building and running Sara: config → store → ports → engine → HTTP. `serve` takes an
//! already bound listener so tests can run the real server on port 0.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sara_actors::engine::{Engine, OutboxPorts, Ports};
use sara_actors::ports::{OffsetClock, SystemClock};
use tokio::net::TcpListener;

use crate::ai::knowledge::KnowledgeBase;
use crate::cache::{Cache, CacheError};
use crate::calendar::google::{GoogleCalendar, GoogleSettings};
use crate::calendar::local::LocalCalendar;
use crate::calendar::recorded::{RecordedCalendar, WriteRetry};
use crate::channels::email::EmailNotifier;
use crate::channels::whatsapp::GraphClient;
use crate::config::{CalendarProvider, Config, ConfigError, Secret};
use crate::http::{self, AppState};
use crate::store::Database;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] sara_actors::ports::StoreError),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Ai(#[from] crate::ai::AiError),
    #[error(transparent)]
    Engine(#[from] sara_actors::engine::StartError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("cache: {0}")]
    Cache(#[from] CacheError),
}

/// A built application: the engine running on its ports, ready to serve.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Database,
    pub engine: Engine,
    pub cache: Cache,
    /// The one clock of this process (the engine's, the webhooks', the debug clock's).
    pub clock: Arc<OffsetClock>,
}

/// How often the histograms' recorded samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Bucket bounds (seconds) of the turn latency histograms. Between 100 ms and 1 s too a
/// quantile is read within a bucket a few tens of ms wide: with only 0.1 and 0.25 there,
/// every tail between them read as "about 246 ms".
const TURN_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03,
    0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (there can be only one per process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                // Fine below 100 ms, where the latency goals are, for the whole turn and its
                // stages alike.
                .set_buckets_for_metric(Matcher::Prefix("sara_turn_".into()), TURN_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Histograms keep every sample until they are drained; without a drain between
            // scrapes (a soak nobody scrapes, a Prometheus that is down) they grow for ever,
            // about 80 bytes a turn. `build_recorder` leaves that upkeep to its caller.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread not started; histograms drain only when scraped");
            }
            // Another recorder may already be installed (e.g. by an embedding program); then
            // our handle simply renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            crate::telemetry::metrics::describe_all();
            for name in [
                "sara_turns_total",
                "sara_nlu_fallbacks_total",
                "sara_actor_restarts_total",
                "sara_reminders_sent_total",
            ] {
                metrics::counter!(name).absolute(0);
            }
            for actor in sara_actors::engine::ACTOR_KINDS {
                metrics::counter!("sara_actor_restarts_by_kind_total", "actor" => actor)
                    .absolute(0);
            }
            metrics::gauge!("sara_nlu_breaker_open").set(0.0);
            metrics::gauge!("sara_live_conversations").set(0.0);
            handle
        })
        .clone()
}

impl App {
    /// Connects the store (applying migrations), builds the ports the config names and starts
    /// the engine.
    pub async fn build(config: Config) -> Result<App, AppError> {
        App::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`App::build`] with the model's key given rather than read from `OPENAI_API_KEY`
    /// (`sara bench` and its local model stand-in).
    pub async fn build_with_api_key(config: Config, api_key: String) -> Result<App, AppError> {
        App::build_with(config, Arc::new(SystemClock), Some(api_key)).await
    }

    /// [`App::build`] with the engine's "now" read from `clock` (tests set it).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn sara_actors::ports::Clock>,
    ) -> Result<App, AppError> {
        App::build_with(config, clock, std::env::var("OPENAI_API_KEY").ok()).await
    }

    async fn build_with(
        config: Config,
        clock: Arc<dyn sara_actors::ports::Clock>,
        api_key: Option<String>,
    ) -> Result<App, AppError> {
        // Every part of Sara reads this one clock; the debug clock moves it forward.
        let clock = Arc::new(OffsetClock::new(clock));
        let business = config.business()?;
        if let Some(weakness) = config
            .admin
            .token
            .as_ref()
            .map(crate::config::Secret::expose)
            .filter(|t| !t.is_empty())
            .and_then(http::admin_throttle::weakness)
        {
            return Err(ConfigError::Invalid(weakness).into());
        }
        let db = Database::connect_with(&config.storage).await?;
        db.migrate().await?;
        let nlu = crate::ai::configured(&config.ai, &business, api_key)?;
        let (calendar, mirror) = calendar(&config, &business, &db, clock.clone()).await?;
        let ports = Ports {
            nlu: nlu.primary,
            fallback_nlu: nlu.fallback,
            knowledge: Arc::new(KnowledgeBase::new(&business.faq, &business)),
            calendar,
            store: Arc::new(db.clone()),
            clock: clock.clone(),
            notifier: email_notifier(&config, &business)?,
            outbox: Some(OutboxPorts {
                queue: Arc::new(db.clone()),
                senders: senders(&config, &business, clock.clone())?,
                jobs: Some(Arc::new(db.clone())),
                mirror,
            }),
        };
        // Every turn runs under its conversation's lease: in process on one instance, in
        // Redis across several (see README, "Production mode").
        let cache = Cache::from_config(&config, db.cache_sealer())?;
        let engine = Engine::start_with_leases(
            business,
            config.engine_settings()?,
            ports,
            Some(cache.leases()),
        )
        .await?;
        Ok(App {
            config: Arc::new(config),
            db,
            engine,
            cache,
            clock,
        })
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then lets in-flight turns finish
    /// and stops the engine.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let drain = Arc::new(http::drain::Drain::default());
        let state = AppState {
            engine: self.engine.clone(),
            db: self.db.clone(),
            config: self.config.clone(),
            metrics: metrics_handle(),
            cache: self.cache.clone(),
            read_receipts: graph_client(&self.config)?,
            // Delivery reports move the store's outbox rows.
            delivery: Some(Arc::new(self.db.clone())),
            clock: self.clock.clone(),
            drain: drain.clone(),
        };
        let limits = http::server::ServerLimits::new(
            &self.config.server.connections,
            http::server::raise_fd_limit(),
        );
        // On the signal: drain (not ready, new webhooks 503, the listener still open), wait
        // for the webhooks in flight and send what is due, then stop serving.
        let engine = self.engine.clone();
        let stop = async move {
            shutdown.await;
            drain.start();
            let finished = tokio::time::timeout(grace, async {
                drain.idle().await;
                engine.flush_outbox().await;
            })
            .await;
            if finished.is_err() {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace ran out");
            }
        };
        let heap = tokio::spawn(crate::heap::run(
            self.engine.clone(),
            crate::heap::CHECK_EVERY,
        ));
        let served = http::server::serve(listener, http::router(state), limits, stop, grace).await;
        heap.abort();
        served?;
        let _ = tokio::time::timeout(grace, self.engine.shutdown()).await;
        self.db.close().await;
        Ok(())
    }
}

/// The Graph API client, when an access token and phone number id are set.
fn graph_client(config: &Config) -> Result<Option<GraphClient>, AppError> {
    let wa = &config.whatsapp;
    let (Some(token), Some(number)) = (
        wa.access_token.as_ref().map(Secret::expose),
        wa.phone_number_id.as_deref(),
    ) else {
        return Ok(None);
    };
    GraphClient::new(&wa.graph_base_url, &wa.graph_version, number, token)
        .map(Some)
        .map_err(|e| AppError::Unsupported(format!("whatsapp client: {e}")))
}

/// The senders the outbox relay delivers through, one per channel `config.toml` enables.
fn senders(
    config: &Config,
    business: &sara_actors::business::Business,
    clock: Arc<OffsetClock>,
) -> Result<Vec<Arc<dyn sara_actors::outbound::ChannelSender>>, AppError> {
    let senders = crate::channels::senders::Senders::from_config(config, business, clock)
        .map_err(|e| AppError::Unsupported(e.to_string()))?;
    Ok((senders.channels().into_iter())
        .filter_map(|channel| senders.get(channel))
        .collect())
}

/// The calendar and, for Google, the mirror whose write retries and sync the scheduler
/// runs.
type CalendarPorts = (
    Arc<dyn sara_actors::ports::Calendar>,
    Option<Arc<dyn sara_actors::ports::CalendarMirror>>,
);

/// The calendar `calendar.provider` names: "local" (the bookings table) or "google".
async fn calendar(
    config: &Config,
    business: &sara_actors::business::Business,
    db: &Database,
    clock: Arc<OffsetClock>,
) -> Result<CalendarPorts, AppError> {
    let cal = &config.calendar;
    match cal.provider {
        CalendarProvider::Local => Ok((Arc::new(LocalCalendar::new(db.clone())), None)),
        CalendarProvider::Google => {
            let (Some(calendar_id), Some(credentials)) =
                (cal.calendar_id.clone(), cal.credentials.as_deref())
            else {
                return Err(AppError::Unsupported(
                    "calendar.provider \"google\" needs calendar.calendar_id and calendar.credentials"
                        .into(),
                ));
            };
            let settings = GoogleSettings {
                base_url: cal.google_base_url.clone(),
                calendar_id,
                credentials: credentials.into(),
                timezone: business.timezone,
                // The whole booking horizon, and the day that is already under way.
                lookahead: chrono::Duration::days(i64::from(business.horizon_days) + 2),
                deadline: Duration::from_millis(cal.google_deadline_ms.max(1)),
            };
            let google = GoogleCalendar::connect(settings)
                .await
                .map_err(|e| AppError::Unsupported(e.to_string()))?;
            let retry = WriteRetry {
                give_up_after: chrono::Duration::minutes(
                    i64::try_from(cal.write_give_up_minutes).unwrap_or(i64::MAX / 60_000),
                ),
            };
            let recorded = Arc::new(RecordedCalendar::new(
                db.clone(),
                google.with_store_as_record(),
                clock,
                retry,
            ));
            Ok((recorded.clone(), Some(recorded)))
        }
    }
}

/// Email confirmations, when `email.smtp_url` and `email.from` are set.
fn email_notifier(
    config: &Config,
    business: &sara_actors::business::Business,
) -> Result<Option<Arc<dyn sara_actors::ports::Notifier>>, AppError> {
    let (Some(url), Some(from)) = (
        config.email.smtp_url.as_ref().map(Secret::expose),
        config.email.from.as_deref(),
    ) else {
        return Ok(None);
    };
    let notifier = EmailNotifier::new(
        url,
        from,
        config.email.staff.as_deref(),
        Arc::new(business.clone()),
    )
    .map_err(|e| AppError::Unsupported(e.to_string()))?;
    Ok(Some(Arc::new(notifier)))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight turns");
}
