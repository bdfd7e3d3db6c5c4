//! Giving freed heap memory back to the OS.
//!
//! glibc keeps what its per-thread arenas free for reuse, so after a peak the process stays at
//! its high-water mark. Two peaks are common in a receptionist's life:
//! - a busy spell whose conversations are then passivated (BENCHMARKS.md: 977 MiB with 100,000
//!   live conversations and the same after they were passivated, 88 MiB after `malloc_trim`);
//! - a stall of a second or two, after which the queued requests all run at once, each with
//!   its own connection and buffers (BENCHMARKS.md: a 2-second stall at 1,000 turns/s left
//!   RSS 89 MiB higher for good; `malloc_trim` gave it back).
//!
//! [`run`] looks once a minute and asks glibc to return its free pages when either shows: the
//! number of live conversations has fallen well below its peak since the last trim, or the
//! process holds well more resident memory beyond the heap in use than it did after the last
//! trim. A steady load triggers neither, so the trim (which takes each arena's lock while it
//! walks it) stays out of busy hours; it runs on a blocking thread, not an async one.

use std::time::Duration;

use sara_actors::engine::Engine;
use tokio::time::MissedTickBehavior;

/// How often a server looks.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The smallest fall in live conversations worth a trim (~10 MiB at ~10 KiB each).
const MIN_FALL: usize = 1_000;

/// The growth of resident memory beyond the heap in use, since the last trim, worth a trim.
const MIN_RETAINED_GROWTH: u64 = 16 << 20;

/// Watches the engine's live conversations and the heap every `every` and trims the heap
/// after a fall in the one or freed memory kept by the other, until the task is dropped.
pub async fn run(engine: Engine, every: Duration) {
    let mut watch = Watch::default();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // An unanswered count is not a fall to zero: a busy supervisor must not set off a
        // trim in the middle of the rush.
        let live = engine.live_conversations().await;
        let before = tokio::task::spawn_blocking(usage).await.ok().flatten();
        let Some(why) = watch.trim_now(live, before.map(Usage::retained)) else {
            continue;
        };
        let started = std::time::Instant::now();
        let after = tokio::task::spawn_blocking(|| trim().then(usage).flatten())
            .await
            .ok()
            .flatten();
        if let Some(after) = after {
            let took = started.elapsed();
            metrics::histogram!("sara_heap_trim_seconds").record(took.as_secs_f64());
            watch.trimmed(after.retained());
            metrics::counter!("sara_heap_trims_total", "why" => why.as_str()).increment(1);
            tracing::info!(
                why = why.as_str(),
                live,
                resident_before_mib = before.map_or(0, |u| u.resident >> 20),
                resident_after_mib = after.resident >> 20,
                ms = took.as_millis() as u64,
                "gave freed heap memory back to the OS"
            );
        }
    }
}

/// Why a trim is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Live conversations fell well below their peak.
    Passivated,
    /// Memory freed after a peak is still resident.
    Retained,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Passivated => "passivated",
            Why::Retained => "retained",
        }
    }
}

/// What the last looks saw since the last trim.
#[derive(Debug, Default)]
struct Watch {
    /// The peak of live conversations.
    peak: usize,
    /// The least resident memory beyond the heap in use (bytes).
    floor: Option<u64>,
}

impl Watch {
    /// Records a look; a reason when the live count has fallen far enough below its peak (by
    /// a quarter of the peak, and by at least [`MIN_FALL`]), or resident memory beyond the
    /// heap in use has grown by [`MIN_RETAINED_GROWTH`] above its floor.
    fn trim_now(&mut self, live: Option<usize>, retained: Option<u64>) -> Option<Why> {
        let mut why = None;
        if let Some(live) = live {
            self.peak = self.peak.max(live);
            let fall = self.peak - live;
            if fall >= MIN_FALL.max(self.peak / 4) {
                self.peak = live;
                why = Some(Why::Passivated);
            }
        }
        if let Some(retained) = retained {
            let floor = *self.floor.get_or_insert(retained);
            self.floor = Some(floor.min(retained));
            if why.is_none() && retained >= floor.saturating_add(MIN_RETAINED_GROWTH) {
                why = Some(Why::Retained);
            }
        }
        why
    }

    /// Records what a trim left: what it could not give back is the new floor, so memory
    /// that no trim can return sets off at most one trim per [`MIN_RETAINED_GROWTH`].
    fn trimmed(&mut self, retained: u64) {
        self.floor = Some(retained);
    }
}

/// The process's anonymous resident memory and the part of it the heap has in use.
#[derive(Debug, Clone, Copy)]
struct Usage {
    resident: u64,
    in_use: u64,
}

impl Usage {
    /// Resident memory beyond the heap in use: freed memory not given back (and stacks and
    /// other mappings, which stay about the same).
    fn retained(self) -> u64 {
        self.resident.saturating_sub(self.in_use)
    }
}

/// Reads [`Usage`]; `None` where glibc's statistics or `/proc` are not available.
fn usage() -> Option<Usage> {
    let in_use = heap_in_use()?;
    let kib = status_kib(None, "RssAnon")?;
    Some(Usage {
        resident: kib << 10,
        in_use,
    })
}

/// One `kB` field of `/proc/PID/status` (`None`: this process), e.g. `VmRSS` or `RssAnon`.
pub fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes the heap has handed out and not had back, in its arenas and in mapped blocks.
#[allow(unsafe_code)]
fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics (under each arena's lock)
        // and returns them by value; it takes no pointers.
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Asks glibc to return its free heap pages to the OS; `false` where that is not available
/// (another C library). With [`heap_in_use`], the crate's only unsafe code.
#[allow(unsafe_code)]
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory at the allocator's discretion; it
        // takes no pointers and is safe to call at any time, from any thread.
        unsafe { libc::malloc_trim(0) };
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

    const MIB: u64 = 1 << 20;

    fn fell(watch: &mut Watch, live: usize) -> bool {
        watch.trim_now(Some(live), None) == Some(Why::Passivated)
    }

    #[test]
    fn a_steady_or_growing_count_never_trims() {
        let mut watch = Watch::default();
        for live in [0, 500, 2_500, 2_480, 2_510, 2_400, 2_000, 7_500, 7_000] {
            assert!(!fell(&mut watch, live), "{live}");
        }
    }

    #[test]
    fn a_fall_of_a_quarter_of_the_peak_trims_once() {
        let mut watch = Watch::default();
        assert!(!fell(&mut watch, 100_000));
        assert!(!fell(&mut watch, 80_000));
        assert!(fell(&mut watch, 70_000));
        // The peak starts again from the count at the trim.
        assert!(!fell(&mut watch, 60_000));
        assert!(fell(&mut watch, 0));
        assert!(!fell(&mut watch, 0));
    }

    #[test]
    fn a_small_fall_is_not_worth_a_trim() {
        let mut watch = Watch::default();
        assert!(!fell(&mut watch, 1_200));
        assert!(!fell(&mut watch, 300));
        assert!(fell(&mut watch, 0));
    }

    #[test]
    fn an_unanswered_count_is_not_a_fall() {
        let mut watch = Watch::default();
        assert!(!fell(&mut watch, 50_000));
        assert_eq!(watch.trim_now(None, None), None);
        assert!(fell(&mut watch, 0));
    }

    #[test]
    fn memory_kept_after_a_peak_trims_and_what_stays_is_the_new_floor() {
        let mut watch = Watch::default();
        // A steady heap: resident beyond the heap in use moves a little, never a trim.
        for retained in [40, 44, 38, 50, 53] {
            assert_eq!(watch.trim_now(Some(2_500), Some(retained * MIB)), None);
        }
        // A stall's requests ran and were freed: 16 MiB above the floor (38) is worth one.
        assert_eq!(
            watch.trim_now(Some(2_500), Some(54 * MIB)),
            Some(Why::Retained)
        );
        // The trim gave back all but 60 MiB (memory no trim can return): that is the floor
        // now, so the same memory does not trim again at the next look.
        watch.trimmed(60 * MIB);
        assert_eq!(watch.trim_now(Some(2_500), Some(61 * MIB)), None);
        assert_eq!(watch.trim_now(Some(2_500), Some(75 * MIB)), None);
        assert_eq!(
            watch.trim_now(Some(2_500), Some(76 * MIB)),
            Some(Why::Retained)
        );
    }

    #[test]
    fn trimming_is_available_on_glibc() {
        assert_eq!(trim(), cfg!(all(target_os = "linux", target_env = "gnu")));
    }

    #[test]
    fn usage_reads_the_heap_and_resident_memory_on_glibc() {
        let usage = usage();
        assert_eq!(
            usage.is_some(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
        if let Some(usage) = usage {
            // A test process has a heap, and its resident memory holds it.
            assert!(usage.in_use > 0 && usage.resident > 0, "{usage:?}");
            // Other tests allocate and free beside this one: only what it holds is certain.
            let held = vec![1u8; 64 << 20];
            let holding = self::usage().expect("read a second time");
            assert!(holding.in_use >= 64 << 20, "{holding:?}");
            assert!(holding.resident >= 64 << 20, "{holding:?}");
            drop(held);
        }
    }
}
