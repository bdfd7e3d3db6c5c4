//! The in-process cache: the same behaviour as Redis for a single instance. Bounded: old
//! replies and stale rate-limit windows are dropped (the store stays the authority).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sara_actors::model::Phone;
use sara_actors::ports::{BoxFuture, Lease, LeaseError, Leases};

use super::{Limited, REPLY_TTL, WINDOW, window_left_secs};

/// Most replies remembered; beyond it the oldest go first (the conversation's memory and the
/// store still answer them). A provider re-delivers within minutes, which at a clinic's pace
/// is far fewer than this; at 1,000 turns/s 100,000 entries held ~27 MiB (heap profile,
/// BENCHMARKS.md), this bound holds ~3 MiB.
const MAX_REPLIES: usize = 10_000;
/// Most rate-limit counters kept before stale windows are swept.
const MAX_COUNTERS: usize = 100_000;

/// A key of the maps below, held inline: the first 128 bits of the key's SHA-256 (no two
/// keys share one in practice). With `String` keys every phone, provider id and counter
/// left a small allocation behind that outlived the conversation that made it; scattered
/// among the actors' memory, they kept glibc from giving pages back after passivation
/// (a heap profile: one per phone in the lease map, ~310 MiB pinned after 100,000).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Key(u128);

impl Key {
    fn of(value: &str) -> Key {
        Key(u128::from_le_bytes(super::digest128(value)))
    }
}

pub struct MemoryCache {
    replies: Mutex<Replies>,
    counters: Mutex<HashMap<Key, (u128, u32)>>,
    leases: Mutex<LeaseSlots>,
    lease_ttl: Duration,
}

#[derive(Default)]
struct Replies {
    by_id: HashMap<Key, (String, Instant)>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
}

/// A free lease slot unused for this long is forgotten when the map is swept: the engine's
/// default idle timeout, after which the conversation's actor has left memory anyway and
/// reloads on its next turn. A forgotten slot costs that turn a `raise`.
const LEASE_FORGET_AFTER: Duration = Duration::from_secs(600);
/// The lease map is first swept when it holds this many phones.
const LEASE_SWEEP_FROM: usize = 1024;

/// One phone's lease state: the epoch counter and the current holder, if any.
struct Slot {
    epoch: i64,
    holder: Option<(String, Instant)>,
    last_used: Instant,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            epoch: 0,
            holder: None,
            last_used: Instant::now(),
        }
    }
}

/// Every phone's lease slot. Slots of phones gone quiet are forgotten, so the map does not
/// keep every phone ever seen. That is safe: a forgotten epoch restarts at 1, and the
/// conversation that next takes the lease finds the store's token larger, lifts the counter
/// past it (`raise`) and takes it again, as after a Redis restart.
#[derive(Default)]
struct LeaseSlots {
    slots: HashMap<Key, Slot>,
    /// The size at which the next sweep runs (doubles with what survives a sweep).
    sweep_at: usize,
}

impl LeaseSlots {
    fn slot(&mut self, phone: &str) -> &mut Slot {
        let key = Key::of(phone);
        if self.slots.len() >= self.sweep_at.max(LEASE_SWEEP_FROM) && !self.slots.contains_key(&key)
        {
            let now = Instant::now();
            self.slots.retain(|_, slot| {
                slot.holder.is_some() || now.duration_since(slot.last_used) < LEASE_FORGET_AFTER
            });
            self.sweep_at = self.slots.len() * 2;
        }
        let slot = self.slots.entry(key).or_default();
        slot.last_used = Instant::now();
        slot
    }
}

impl MemoryCache {
    pub fn new(lease_ttl: Duration) -> MemoryCache {
        MemoryCache {
            replies: Mutex::new(Replies::default()),
            counters: Mutex::new(HashMap::new()),
            leases: Mutex::new(LeaseSlots::default()),
            lease_ttl,
        }
    }

    pub fn processed_reply(&self, provider_id: &str) -> Option<String> {
        let replies = self.replies.lock().expect("reply cache lock poisoned");
        replies
            .by_id
            .get(&Key::of(provider_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(reply, _)| reply.clone())
    }

    pub fn forget_reply(&self, provider_id: &str) {
        let mut replies = self.replies.lock().expect("reply cache lock poisoned");
        replies.by_id.remove(&Key::of(provider_id));
    }

    pub fn remember_reply(&self, provider_id: &str, reply: &str) {
        let mut replies = self.replies.lock().expect("reply cache lock poisoned");
        let expires = Instant::now() + REPLY_TTL;
        let key = Key::of(provider_id);
        if replies
            .by_id
            .insert(key, (reply.to_string(), expires))
            .is_none()
        {
            replies.order.push_back(key);
        }
        while replies.order.len() > MAX_REPLIES {
            if let Some(old) = replies.order.pop_front() {
                replies.by_id.remove(&old);
            }
        }
    }

    pub fn hit(&self, key: &str, limit: u32) -> Result<(), Limited> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let window = now_ms / WINDOW.as_millis();
        let mut counters = self.counters.lock().expect("rate limit lock poisoned");
        if counters.len() > MAX_COUNTERS {
            counters.retain(|_, (w, _)| *w == window);
        }
        let entry = counters.entry(Key::of(key)).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > limit {
            Err(Limited {
                retry_after_secs: window_left_secs(now_ms),
            })
        } else {
            Ok(())
        }
    }

    /// One attempt: the lease if it is free (or its holder's time is up).
    fn try_acquire(&self, key: &str) -> Option<Lease> {
        let mut leases = self.leases.lock().expect("lease lock poisoned");
        let slot = leases.slot(key);
        let now = Instant::now();
        if slot.holder.as_ref().is_some_and(|(_, until)| *until > now) {
            return None;
        }
        slot.epoch += 1;
        let token = uuid::Uuid::new_v4().to_string();
        slot.holder = Some((token.clone(), now + self.lease_ttl));
        Some(Lease {
            epoch: slot.epoch,
            token,
        })
    }
}

impl Leases for MemoryCache {
    fn acquire<'a>(
        &'a self,
        phone: &'a Phone,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Lease, LeaseError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            let mut pause = Duration::from_millis(1);
            loop {
                if let Some(lease) = self.try_acquire(phone.as_str()) {
                    return Ok(lease);
                }
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(LeaseError::Busy);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        })
    }

    fn release<'a>(&'a self, phone: &'a Phone, lease: &'a Lease) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut leases = self.leases.lock().expect("lease lock poisoned");
            if let Some(slot) = leases.slots.get_mut(&Key::of(phone.as_str()))
                && slot
                    .holder
                    .as_ref()
                    .is_some_and(|(token, _)| *token == lease.token)
            {
                slot.holder = None;
            }
        })
    }

    fn raise<'a>(&'a self, phone: &'a Phone, epoch: i64) -> BoxFuture<'a, Result<(), LeaseError>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().expect("lease lock poisoned");
            let slot = leases.slot(phone.as_str());
            slot.epoch = slot.epoch.max(epoch);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_free_lease_slots_are_forgotten_and_held_ones_kept() {
        let Some(long_ago) = Instant::now().checked_sub(LEASE_FORGET_AFTER * 2) else {
            return; // the machine has not been up long enough to have a "long ago"
        };
        let mut leases = LeaseSlots::default();
        let held = leases.slot("held");
        held.holder = Some(("token".into(), Instant::now()));
        held.last_used = long_ago;
        for i in 1..LEASE_SWEEP_FROM {
            let slot = leases.slot(&format!("quiet-{i}"));
            slot.epoch = 7;
            slot.last_used = long_ago;
        }
        assert_eq!(leases.slots.len(), LEASE_SWEEP_FROM);
        // The map is full: the next new phone sweeps it.
        leases.slot("recent").epoch = 3;

        assert!(leases.slot("newcomer").epoch == 0);
        let kept: std::collections::HashSet<Key> = leases.slots.keys().copied().collect();
        let expected = ["held", "newcomer", "recent"].map(Key::of);
        assert_eq!(kept, expected.into_iter().collect());
        assert_eq!(
            leases.slot("recent").epoch,
            3,
            "a recent slot keeps its epoch"
        );
    }
}
