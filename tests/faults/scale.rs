//! Bounded or full: `make test` runs every case in a bounded form (small batches, few
//! iterations); `make faults` sets `EDGEPURGE_FAULTS=full` for the sizes an operator meets.

/// Whether `EDGEPURGE_FAULTS=full`.
pub fn full() -> bool {
    std::env::var("EDGEPURGE_FAULTS").is_ok_and(|v| v == "full")
}

/// `bounded` in `make test`, `full` under `make faults`.
pub fn pick(bounded: usize, full_size: usize) -> usize {
    if full() {
        full_size
    } else {
        bounded
    }
}

/// The large batch of the kill cases: 200,000 URLs in full, 20,000 bounded.
pub fn large_batch() -> usize {
    pick(20_000, 200_000)
}
