//! The cache: processed-webhook replies, rate limits and per-conversation leases, in process
//! (one instance, the default) or in Redis (`SARA_STORAGE__REDIS_URL`, several instances).
//!
//! Nothing here is an authority. The store's unique provider id decides whether a turn was
//! applied, its version and fencing columns decide whether a commit may land; the cache only
//! saves work (a remembered reply) and conflicts (a lease). So every Redis failure degrades
//! to "carry on without it": a miss, no limit, no lease.

pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sara_actors::dialogue::Reply;
use sara_actors::model::Phone;
use sara_actors::ports::Leases;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::CacheSealer;

/// How long a processed webhook's reply is remembered: providers retry for days.
pub const REPLY_TTL: Duration = Duration::from_secs(72 * 3600);
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("bad Redis URL")]
    BadUrl,
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
}

/// A request over its limit: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// What `/ready` reports about the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheHealth {
    /// In-process: nothing to reach.
    InProcess,
    Up,
    Down,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<memory::MemoryCache>),
    Redis(Arc<redis::RedisCache>),
}

/// The cache the service uses; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    /// Seals cached replies and keys phone numbers and addresses with the store's key.
    sealer: CacheSealer,
    phone_limit: u32,
    ip_limit: u32,
}

impl Cache {
    /// Redis when `storage.redis_url` is set (connecting lazily: Sara starts while Redis is
    /// down and connects when it comes), in process otherwise.
    pub fn from_config(config: &Config, sealer: CacheSealer) -> Result<Cache, CacheError> {
        let storage = &config.storage;
        let lease_ttl = Duration::from_millis(storage.lease_ttl_ms.max(100));
        let backend = match storage.redis_url() {
            Some(url) => Backend::Redis(Arc::new(
                redis::RedisCache::new(
                    url,
                    &storage.redis_prefix,
                    Duration::from_millis(storage.redis_timeout_ms.max(1)),
                    lease_ttl,
                )?
                .with_sealer(sealer.clone()),
            )),
            None => Backend::Memory(Arc::new(memory::MemoryCache::new(lease_ttl))),
        };
        Ok(Cache {
            backend,
            sealer,
            phone_limit: config.limits.phone_per_minute,
            ip_limit: config.limits.bad_signature_per_ip_per_minute,
        })
    }

    /// The leases the engine runs turns under.
    pub fn leases(&self) -> Arc<dyn Leases> {
        match &self.backend {
            Backend::Memory(m) => m.clone(),
            Backend::Redis(r) => r.clone(),
        }
    }

    /// The reply, whole, of a webhook already processed, when the cache remembers it. A miss
    /// (or Redis down) only means the engine and the store decide.
    pub async fn processed_reply(&self, provider_id: &str) -> Option<Reply> {
        let sealed = match &self.backend {
            Backend::Memory(m) => m.processed_reply(provider_id),
            Backend::Redis(r) => r.processed_reply(provider_id).await,
        }?;
        // A value that does not open (another key) is a miss: the store decides.
        self.sealer.open_reply(&sealed)
    }

    /// Remembers a committed turn's whole reply (its buttons, hand-over and hang-up too) for
    /// [`REPLY_TTL`]. Called only after the commit, so nothing is ever claimed before it is
    /// done (no "claimed, then crashed" id that would swallow the provider's retries).
    /// Forgets the replies remembered for these provider ids (a caller's erasure).
    pub async fn forget_replies(&self, provider_ids: &[String]) -> Result<(), CacheError> {
        for id in provider_ids {
            match &self.backend {
                Backend::Memory(m) => m.forget_reply(id),
                Backend::Redis(r) => r.forget_reply(id).await?,
            }
        }
        Ok(())
    }

    pub async fn remember_reply(&self, provider_id: &str, reply: &Reply) {
        // Sealed: replies hold names.
        let sealed = self.sealer.seal_reply(reply);
        match &self.backend {
            Backend::Memory(m) => m.remember_reply(provider_id, &sealed),
            Backend::Redis(r) => r.remember_reply(provider_id, &sealed).await,
        }
    }

    /// Counts a signed webhook from `phone`; `Err` when it is over the per-phone limit.
    pub async fn hit_phone(&self, phone: &Phone) -> Result<(), Limited> {
        let key = format!("phone:{}", self.sealer.pseudonym(phone.as_str()));
        self.hit(&key, self.phone_limit).await
    }

    /// Counts a request from `ip` that failed the signature check.
    pub async fn hit_bad_signature(&self, ip: IpAddr) -> Result<(), Limited> {
        let key = format!("badsig:{}", self.sealer.pseudonym(&ip.to_string()));
        self.hit(&key, self.ip_limit).await
    }

    async fn hit(&self, key: &str, limit: u32) -> Result<(), Limited> {
        if limit == 0 {
            return Ok(());
        }
        match &self.backend {
            Backend::Memory(m) => m.hit(key, limit),
            Backend::Redis(r) => r.hit(key, limit).await,
        }
    }

    pub async fn health(&self) -> CacheHealth {
        match &self.backend {
            Backend::Memory(_) => CacheHealth::InProcess,
            Backend::Redis(r) => {
                if r.ping().await.is_ok() {
                    CacheHealth::Up
                } else {
                    CacheHealth::Down
                }
            }
        }
    }
}

/// An unkeyed stand-in for a value in Redis keys, only for a `RedisCache` built without the
/// store's sealer (its unit tests): a plain hash of a phone number can be brute-forced.
pub fn pseudonym(value: &str) -> String {
    digest128(value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first 128 bits of `value`'s SHA-256.
fn digest128(value: &str) -> [u8; 16] {
    let digest = Sha256::digest(value.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// The seconds left in the current window of `now_ms` (at least 1).
fn window_left_secs(now_ms: u128) -> u64 {
    let window = WINDOW.as_millis();
    let left = window - now_ms % window;
    (left.div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests;
