//! Gives memory the allocator keeps after a burst of work back to the kernel.
//!
//! glibc's malloc returns the free memory of its per-thread arenas only from
//! their top, so after a pass of thousands of writes (request bodies, parsed
//! answers) most freed pages stay resident. At 1,000 namespaces `malloc_trim(0)`
//! after a full refresh gave back 1.7 of the 2.5 MiB of anonymous memory the
//! refresh had added (docs/benchmarks.md, "This release").

/// Requests in one pass from which trimming is worth its cost (a walk of the
/// allocator's free lists). Passes that large are the initial sync, a refresh, a
/// wide selection change, and the drift-repair batches of a registry that
/// selects more than 6,000 namespaces (60 batches per resync interval).
pub const TRIM_AFTER_REQUESTS: usize = 100;

/// Returns the allocator's free pages to the kernel (glibc only; elsewhere a no-op).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own free lists
    // under their locks, and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
