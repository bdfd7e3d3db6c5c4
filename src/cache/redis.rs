//! The Redis cache, shared by every instance. Keys (all under the configured prefix):
//!
//! - `{p}:reply:{provider id}` → reply text, 72 h: set only after the turn committed.
//! - `{p}:rl:{kind}:{hash}` → counter of the current one-minute window.
//! - `{p}:lease:{hash}` → the holder's random token, with the lease TTL (`SET NX PX`).
//! - `{p}:epoch:{hash}` → the fencing counter; bumped in the same script that grants the
//!   lease, so epochs of one phone are handed out one by one, in grant order.
//!
//! Every call has a deadline (`redis_timeout_ms`). The `ConnectionManager` reconnects in the
//! background; after a failure the cache skips Redis for a short pause instead of making
//! every request wait for the deadline again, then tries again on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use sara_actors::model::Phone;
use sara_actors::ports::{BoxFuture, Lease, LeaseError, Leases};

use super::{CacheError, Limited, REPLY_TTL, WINDOW, pseudonym};
use crate::store::CacheSealer;

/// After a failed call, Redis is skipped for this long (then the next call tries it again).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The fencing counters outlive any lease by far; an expired counter is lifted back past the
/// store's token by `raise` when a turn notices it.
const EPOCH_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// `SET lease token NX PX ttl`, and only when that succeeded `INCR epoch`: a refused attempt
/// does not consume an epoch. Returns the epoch, or 0 when the lease is held.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return epoch
end
return 0
";

/// Deletes the lease only if it is still ours (it may have expired and been granted again).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Lifts the epoch counter to at least ARGV[1].
const RAISE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

/// `INCR` the window's counter, setting its expiry on the first hit; returns the count and
/// the milliseconds left in the window.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
";

pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    lease_ttl: Duration,
    /// Milliseconds since `started` until which Redis is skipped (0 = not paused).
    paused_until: AtomicU64,
    started: Instant,
    acquire: Script,
    release: Script,
    raise: Script,
    hit: Script,
    /// Keyed pseudonyms for phone numbers in keys (the store's index key); `None` in unit
    /// tests, which then use the unkeyed digest.
    sealer: Option<CacheSealer>,
}

impl RedisCache {
    /// Does not connect: the first call does, so Sara starts (and answers) with Redis down.
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        lease_ttl: Duration,
    ) -> Result<RedisCache, CacheError> {
        let client = redis::Client::open(url).map_err(|_| CacheError::BadUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CacheError::Unavailable(format!("{:?}", e.kind())))?;
        Ok(RedisCache {
            manager,
            prefix: prefix.to_string(),
            timeout,
            lease_ttl,
            paused_until: AtomicU64::new(0),
            started: Instant::now(),
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            raise: Script::new(RAISE),
            hit: Script::new(HIT),
            sealer: None,
        })
    }

    /// Uses the store's keyed hash for phone numbers in Redis keys (every instance shares the
    /// key, so every instance finds the same lease).
    pub fn with_sealer(mut self, sealer: CacheSealer) -> RedisCache {
        self.sealer = Some(sealer);
        self
    }

    fn id(&self, value: &str) -> String {
        match &self.sealer {
            Some(s) => s.pseudonym(value),
            None => pseudonym(value),
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs one Redis call under the deadline, skipping Redis while it is paused after a
    /// failure. Errors are counted and logged once per pause, never with a key (keys hold
    /// pseudonyms, replies hold names).
    async fn call<T, F>(&self, what: &'static str, run: F) -> Result<T, CacheError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.paused_until.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable("paused after a failure".into()));
        }
        let outcome = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => CacheError::Unavailable(format!("{:?}: {e}", e.kind())),
            Err(_) => CacheError::Timeout,
        };
        let until = self.now_ms() + PAUSE_AFTER_FAILURE.as_millis() as u64;
        if self.paused_until.swap(until, Ordering::Relaxed) < self.now_ms() {
            tracing::warn!(error = %outcome, what, "Redis call failed; carrying on without Redis for a moment");
        }
        metrics::counter!("sara_redis_errors_total").increment(1);
        Err(outcome)
    }

    async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, CacheError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(a);
        }
        let mut con = self.manager.clone();
        self.call(what, async move { invocation.invoke_async(&mut con).await })
            .await
    }

    /// A round trip for `/ready`; always tried (it is how a pause ends early).
    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut con = self.manager.clone();
        match tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut con),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.paused_until.store(0, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => Err(CacheError::Unavailable(format!("{:?}", e.kind()))),
            Err(_) => Err(CacheError::Timeout),
        }
    }

    pub async fn processed_reply(&self, provider_id: &str) -> Option<String> {
        let key = self.key("reply", provider_id);
        let mut con = self.manager.clone();
        self.call("get reply", async move {
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut con)
                .await
        })
        .await
        .ok()
        .flatten()
    }

    /// Removes a remembered reply; `Err` when Redis did not do it.
    pub async fn forget_reply(&self, provider_id: &str) -> Result<(), CacheError> {
        let key = self.key("reply", provider_id);
        let mut con = self.manager.clone();
        self.call("forget reply", async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    pub async fn remember_reply(&self, provider_id: &str, reply: &str) {
        let key = self.key("reply", provider_id);
        let mut con = self.manager.clone();
        let _ = self
            .call("set reply", async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(reply)
                    .arg("EX")
                    .arg(REPLY_TTL.as_secs())
                    .query_async::<()>(&mut con)
                    .await
            })
            .await;
    }

    /// Counts a hit; over the limit → `Err`. Redis down → allowed (a flood then meets the
    /// store's and the engine's own bounds instead).
    pub async fn hit(&self, key: &str, limit: u32) -> Result<(), Limited> {
        let key = self.key("rl", key);
        let counted: Result<(i64, i64), CacheError> = self
            .script(
                "rate limit",
                &self.hit,
                &[&key],
                &[WINDOW.as_millis().to_string()],
            )
            .await;
        match counted {
            Ok((n, left_ms)) if n > i64::from(limit) => Err(Limited {
                retry_after_secs: (left_ms.max(1) as u64).div_ceil(1000),
            }),
            _ => Ok(()),
        }
    }
}

impl RedisCache {
    /// Releases a lease we may or may not hold, in the background, once; past the deadline
    /// it simply expires.
    fn abandon(&self, lease_key: String, token: String) {
        let (mut con, script, timeout) = (self.manager.clone(), self.release.clone(), self.timeout);
        tokio::spawn(async move {
            let mut invocation = script.key(lease_key);
            invocation.arg(token);
            let _ =
                tokio::time::timeout(timeout * 4, invocation.invoke_async::<i64>(&mut con)).await;
        });
    }
}

impl Leases for RedisCache {
    /// Polls with a growing pause (1 ms up to 25 ms) until granted or `wait` is over. Redis
    /// failing is `Unavailable` at once: the turn then runs unfenced rather than waiting.
    fn acquire<'a>(
        &'a self,
        phone: &'a Phone,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>> {
        Box::pin(async move {
            let id = self.id(phone.as_str());
            let (lease_key, epoch_key) = (self.key("lease", &id), self.key("epoch", &id));
            let deadline = tokio::time::Instant::now() + wait;
            let mut pause = Duration::from_millis(1);
            loop {
                let token = uuid::Uuid::new_v4().to_string();
                let granted: Result<i64, CacheError> = self
                    .script(
                        "acquire lease",
                        &self.acquire,
                        &[&lease_key, &epoch_key],
                        &[
                            token.clone(),
                            self.lease_ttl.as_millis().to_string(),
                            EPOCH_TTL_MS.to_string(),
                        ],
                    )
                    .await;
                let epoch = match granted {
                    Ok(epoch) => epoch,
                    Err(error) => {
                        // A timed-out script may still have granted the lease: give it back
                        // (we know its token) so the conversation is not blocked until the
                        // lease expires.
                        self.abandon(lease_key, token);
                        return Err(LeaseError::Unavailable(error.to_string()));
                    }
                };
                if epoch > 0 {
                    return Ok(Lease { epoch, token });
                }
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(LeaseError::Busy);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(25));
            }
        })
    }

    fn release<'a>(&'a self, phone: &'a Phone, lease: &'a Lease) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let key = self.key("lease", &self.id(phone.as_str()));
            // Best effort: an unreleased lease simply expires.
            let _: Result<i64, _> = self
                .script(
                    "release lease",
                    &self.release,
                    &[&key],
                    std::slice::from_ref(&lease.token),
                )
                .await;
        })
    }

    fn raise<'a>(&'a self, phone: &'a Phone, epoch: i64) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let key = self.key("epoch", &self.id(phone.as_str()));
            self.script::<i64>(
                "raise epoch",
                &self.raise,
                &[&key],
                &[epoch.to_string(), EPOCH_TTL_MS.to_string()],
            )
            .await
            .map(drop)
            .map_err(|e| LeaseError::Unavailable(e.to_string()))
        })
    }
}
