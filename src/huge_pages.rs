//! Transparent huge pages off for the ipgate process, before the store opens.
//!
//! mimalloc marks its arena for huge pages (`madvise`) and hands freed
//! memory back to the kernel about 10 ms after it is freed. The next touch
//! of that memory then has the kernel zero a whole fresh 2 MiB page in the
//! thread that touched it. sled takes a fresh 512 KiB log buffer each time a
//! log segment fills, so now and then an approval paid for several such
//! pages: 5-7 ms before it went live instead of about 0.3 ms (`cargo bench
//! --bench million`; `perf record -g` shows `clear_page_erms` under
//! `do_huge_pmd_anonymous_page`). With huge pages off the same faults zero
//! 4 KiB pages. The proxy's decision path allocates nothing (the `no_alloc`
//! test), and the load bench saw the same req/s and under one page fault per
//! 1,000 requests with huge pages on or off (docs/performance.md).

/// Asks the kernel not to back this process's memory with transparent huge
/// pages from now on (`prctl(PR_SET_THP_DISABLE)`). Only a latency tail
/// depends on it, so a kernel that refuses is logged, not fatal.
pub fn turn_off() {
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => tracing::debug!("transparent huge pages off for this process"),
        Err(e) => {
            tracing::warn!(error = %e, "could not turn transparent huge pages off; approvals may now and then take a few ms longer to go live")
        }
    }
}
