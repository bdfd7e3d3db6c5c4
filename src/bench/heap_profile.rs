//! Heap profiles of a bench run, in builds with the `dhat-heap` feature (`cargo build
//! --profile profiling --features dhat-heap`): every allocation made between [`start`] and
//! [`HeapProfile::finish`] is recorded with its backtrace, and `dhat-heap.json` (open it in
//! DHAT's viewer, `dh_view.html`) gives each site's bytes at the peak (`t-gmax`) and what is
//! still held when the profile finishes (`t-end`). In every other build both are no-ops.

/// A running profile; finishing it (or dropping it) writes the file.
#[must_use = "the profile is written when it is finished or dropped"]
pub struct HeapProfile {
    #[cfg(feature = "dhat-heap")]
    _profiler: dhat::Profiler,
}

/// Starts recording, when this build can.
pub fn start() -> HeapProfile {
    #[cfg(feature = "dhat-heap")]
    {
        tracing::info!("heap profile started (dhat-heap.json when it finishes)");
        HeapProfile {
            // Deep enough to get from the allocator past tokio's and ractor's frames to ours.
            _profiler: dhat::Profiler::builder().trim_backtraces(Some(40)).build(),
        }
    }
    #[cfg(not(feature = "dhat-heap"))]
    HeapProfile {}
}

impl HeapProfile {
    /// Stops recording and writes `dhat-heap.json`: what is live now is the profile's `t-end`.
    pub fn finish(self) {
        drop(self);
    }
}
