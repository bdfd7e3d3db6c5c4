//! The cache's behaviour on both backends: in process, and on the Redis of the test
//! machine (`SARA_TEST_REDIS_URL`, default redis://127.0.0.1:6379) under a fresh prefix.

use std::time::Duration;

use sara_actors::model::Phone;
use sara_actors::ports::{LeaseError, Leases};

use super::memory::MemoryCache;
use super::redis::RedisCache;

fn redis() -> RedisCache {
    let url = std::env::var("SARA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let prefix = format!("sara-test-{}", uuid::Uuid::new_v4().simple());
    RedisCache::new(
        &url,
        &prefix,
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .expect("a valid Redis URL")
}

fn phone() -> Phone {
    Phone::parse("+15550007001").expect("test phone")
}

/// Grants one holder at a time with growing epochs, refuses a second holder within the wait,
/// and hands the lease on after release and after expiry.
async fn leases_are_exclusive_fenced_and_expire(leases: &dyn Leases) {
    let me = phone();
    let first = leases
        .acquire(&me, Duration::ZERO)
        .await
        .expect("free lease");
    assert_eq!(
        leases.acquire(&me, Duration::from_millis(20)).await,
        Err(LeaseError::Busy)
    );
    leases.release(&me, &first).await;
    let second = leases.acquire(&me, Duration::ZERO).await.expect("released");
    assert_eq!(second.epoch, first.epoch + 1, "no other grant in between");
    // Releasing with a stale token does nothing.
    leases.release(&me, &first).await;
    assert_eq!(
        leases.acquire(&me, Duration::ZERO).await,
        Err(LeaseError::Busy)
    );
    // Not released: the next holder gets it once it expires (300 ms), within its wait.
    let third = leases
        .acquire(&me, Duration::from_secs(5))
        .await
        .expect("expired lease is granted again");
    assert!(third.epoch > second.epoch);
    leases.release(&me, &third).await;
    leases.raise(&me, third.epoch + 100).await.expect("raise");
    let fourth = leases.acquire(&me, Duration::ZERO).await.expect("free");
    assert!(
        fourth.epoch > third.epoch + 100,
        "raised past the store's token"
    );
}

#[tokio::test]
async fn in_process_leases() {
    leases_are_exclusive_fenced_and_expire(&MemoryCache::new(Duration::from_millis(300))).await;
}

#[tokio::test]
async fn redis_leases() {
    leases_are_exclusive_fenced_and_expire(&redis()).await;
}

#[tokio::test]
async fn replies_and_limits_in_process() {
    let cache = MemoryCache::new(Duration::from_secs(1));
    assert_eq!(cache.processed_reply("SM1"), None);
    cache.remember_reply("SM1", "see you then");
    assert_eq!(
        cache.processed_reply("SM1").as_deref(),
        Some("see you then")
    );
    assert!(cache.hit("k", 2).is_ok() && cache.hit("k", 2).is_ok());
    let limited = cache.hit("k", 2).expect_err("third hit is over 2");
    assert!((1..=60).contains(&limited.retry_after_secs));
    assert!(cache.hit("other", 2).is_ok(), "limits are per key");
}

#[tokio::test]
async fn replies_and_limits_in_redis() {
    let cache = redis();
    cache.ping().await.expect("the test Redis answers");
    assert_eq!(cache.processed_reply("SM1").await, None);
    cache.remember_reply("SM1", "see you then").await;
    assert_eq!(
        cache.processed_reply("SM1").await.as_deref(),
        Some("see you then")
    );
    assert!(cache.hit("k", 2).await.is_ok() && cache.hit("k", 2).await.is_ok());
    let limited = cache.hit("k", 2).await.expect_err("third hit is over 2");
    assert!((1..=60).contains(&limited.retry_after_secs));
    assert!(cache.hit("other", 2).await.is_ok(), "limits are per key");
}

#[tokio::test]
async fn an_unreachable_redis_degrades_to_no_cache_at_once() {
    // Port 1 on loopback: nothing listens there.
    let cache = RedisCache::new(
        "redis://127.0.0.1:1",
        "sara-test",
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .expect("a valid URL");
    assert!(cache.ping().await.is_err());
    assert_eq!(cache.processed_reply("SM1").await, None);
    assert!(cache.hit("k", 0).await.is_ok(), "no limit without Redis");
    assert!(matches!(
        cache.acquire(&phone(), Duration::from_secs(1)).await,
        Err(LeaseError::Unavailable(_))
    ));
}

#[tokio::test]
async fn cached_replies_are_sealed_and_phones_keyed_on_redis() {
    let mut config = crate::config::Config::default();
    config.storage.redis_url = Some(crate::config::Secret::new(
        std::env::var("SARA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    ));
    config.storage.redis_prefix = format!("sara-test-{}", uuid::Uuid::new_v4().simple());
    let key = crate::store::EncryptionKey::generate();
    let sealer = crate::store::CacheSealer::from_key(&key);
    let cache = super::Cache::from_config(&config, sealer.clone()).expect("cache");
    // The whole reply comes back: its buttons as well as its text.
    let reply = sara_actors::dialogue::Reply {
        text: "I can book a cleaning for Imogen Radcliffe at 10:00 AM or 11:00 AM.".into(),
        options: vec!["10:00 AM".into(), "11:00 AM".into()],
        ..Default::default()
    };
    cache.remember_reply("SM-sealed-1", &reply).await;
    assert_eq!(cache.processed_reply("SM-sealed-1").await, Some(reply));
    let super::Backend::Redis(redis) = &cache.backend else {
        panic!("configured for Redis");
    };
    let raw = redis
        .processed_reply("SM-sealed-1")
        .await
        .expect("stored in Redis");
    assert!(
        !raw.contains("Imogen"),
        "a reply is never kept in clear: {raw}"
    );
    // Another key cannot open it: a miss, not garbage.
    let other = super::Cache::from_config(
        &config,
        crate::store::CacheSealer::from_key(&crate::store::EncryptionKey::generate()),
    )
    .expect("cache");
    assert_eq!(other.processed_reply("SM-sealed-1").await, None);
}
