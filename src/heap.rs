//! Giving freed heap memory back to the OS once conversations have been passivated.
//!
//! glibc keeps what its per-thread arenas free for reuse, so when a busy spell's conversations
//! are passivated the process stays at its high-water mark (BENCHMARKS.md: 977 MiB with
//! 100,000 live conversations and the same after they were passivated, 88 MiB after
//! `malloc_trim`). [`run`] reads the number of live conversations once a minute and asks glibc
//! to return its free pages when that number has fallen well below its peak since the last
//! time. A steady load never triggers it, so the trim (which takes each arena's lock while it
//! walks it) stays out of busy hours; it runs on a blocking thread, not an async one.

use std::time::Duration;

use sara_actors::engine::Engine;
use tokio::time::MissedTickBehavior;

/// How often a server reads the live count.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The smallest fall in live conversations worth a trim (~10 MiB at ~10 KiB each).
const MIN_FALL: usize = 1_000;

/// Watches the engine's live conversations every `every` and trims the heap after a fall,
/// until the task is dropped.
pub async fn run(engine: Engine, every: Duration) {
    let mut watch = Watch::default();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // An unanswered count is not a fall to zero: a busy supervisor must not set off a
        // trim in the middle of the rush.
        let Some(live) = engine.live_conversations().await else {
            continue;
        };
        if !watch.trim_now(live) {
            continue;
        }
        let started = std::time::Instant::now();
        if tokio::task::spawn_blocking(trim).await.unwrap_or(false) {
            tracing::info!(
                live,
                ms = started.elapsed().as_millis() as u64,
                "gave freed heap memory back to the OS"
            );
        }
    }
}

/// The peak of live conversations since the last trim.
#[derive(Debug, Default)]
struct Watch {
    peak: usize,
}

impl Watch {
    /// Records the live count; true when it has fallen far enough below the peak since the
    /// last trim (by a quarter of the peak, and by at least [`MIN_FALL`]) to trim now.
    fn trim_now(&mut self, live: usize) -> bool {
        self.peak = self.peak.max(live);
        let fall = self.peak - live;
        if fall >= MIN_FALL.max(self.peak / 4) {
            self.peak = live;
            true
        } else {
            false
        }
    }
}

/// Asks glibc to return its free heap pages to the OS; `false` where that is not available
/// (another C library). The crate's only unsafe code.
#[allow(unsafe_code)]
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases free memory at the allocator's discretion; it
        // takes no pointers and is safe to call at any time, from any thread.
        unsafe { malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_or_growing_count_never_trims() {
        let mut watch = Watch::default();
        for live in [0, 500, 2_500, 2_480, 2_510, 2_400, 2_000, 7_500, 7_000] {
            assert!(!watch.trim_now(live), "{live}");
        }
    }

    #[test]
    fn a_fall_of_a_quarter_of_the_peak_trims_once() {
        let mut watch = Watch::default();
        assert!(!watch.trim_now(100_000));
        assert!(!watch.trim_now(80_000));
        assert!(watch.trim_now(70_000));
        // The peak starts again from the count at the trim.
        assert!(!watch.trim_now(60_000));
        assert!(watch.trim_now(0));
        assert!(!watch.trim_now(0));
    }

    #[test]
    fn a_small_fall_is_not_worth_a_trim() {
        let mut watch = Watch::default();
        assert!(!watch.trim_now(1_200));
        assert!(!watch.trim_now(300));
        assert!(watch.trim_now(0));
    }

    #[test]
    fn trimming_is_available_on_glibc() {
        assert_eq!(trim(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
