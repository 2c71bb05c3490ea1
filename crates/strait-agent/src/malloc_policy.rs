//! How the agent's allocator gives memory back (glibc only).
//!
//! glibc serves a large allocation with its own mapping, returned to the
//! kernel on free, but raises that size threshold (up to 32 MiB) every
//! time such a block is freed; after the first few syncs the compiler's
//! and applier's multi-megabyte vectors and texts then come from the brk
//! heap, where a growing vector leaves its old copy behind as a hole.
//! A fixed threshold keeps them in mappings (grown in place by `mremap`,
//! returned on free): at 10,000 Services about 4 MiB less peak RSS.

/// Allocations from this size on get a mapping of their own.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Sets the fixed threshold; call once at start (no-op off glibc).
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called at
    // start, and glibc serialises it with allocations anyway.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}
