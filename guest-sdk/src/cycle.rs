//! Cycle-slot maths for queue selection (S0.3): where "now" falls in a repeating cycle, and the
//! mean of the fastest fraction of a set of speed samples.

use crate::types::SpeedSample;

/// The slot of `now_ms` in a cycle of `cycle_ms` split into slots of `slot_ms`.
///
/// With 15-minute slots of a day, 00:14:59 is slot 0 and 23:59 is slot 95:
/// ```
/// use edgepurge_sdk::cycle::slot_of;
/// let (slot, day) = (15 * 60 * 1000, 24 * 3600 * 1000);
/// assert_eq!(slot_of(14 * 60 * 1000, slot, day), 0);
/// assert_eq!(slot_of(day - 1, slot, day), 95);
/// assert_eq!(slot_of(day + 20 * 60 * 1000, slot, day), 1);
/// ```
/// A zero `slot_ms` or `cycle_ms` gives slot 0 (no cycle).
pub fn slot_of(now_ms: u64, slot_ms: u64, cycle_ms: u64) -> u32 {
    if slot_ms == 0 || cycle_ms == 0 {
        return 0;
    }
    u32::try_from((now_ms % cycle_ms) / slot_ms).unwrap_or(u32::MAX)
}

/// How many slots a cycle has (rounded up), at least 1.
pub fn slots_per_cycle(slot_ms: u64, cycle_ms: u64) -> u32 {
    if slot_ms == 0 {
        return 1;
    }
    u32::try_from(cycle_ms.div_ceil(slot_ms).max(1)).unwrap_or(u32::MAX)
}

/// The mean of the largest `fraction` of `values` (at least one value), or `None` when empty.
///
/// ```
/// use edgepurge_sdk::cycle::top_fraction_mean;
/// // Top 30 % of 10 values is the 3 largest.
/// let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
/// assert_eq!(top_fraction_mean(&v, 0.3), Some(9.0));
/// // Of 4 values, ceil(1.2) = 2.
/// assert_eq!(top_fraction_mean(&[5.0, 1.0, 4.0, 2.0], 0.3), Some(4.5));
/// assert_eq!(top_fraction_mean(&[], 0.3), None);
/// ```
pub fn top_fraction_mean(values: &[f64], fraction: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(|a, b| b.total_cmp(a));
    let take = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[..take].iter().sum::<f64>() / take as f64)
}

/// The speed estimate of S0.3 from same-slot samples, in bytes per second: the mean of the
/// fastest 30 % of the samples; with no usable sample, `peak_bytes_per_sec`; with neither,
/// `floor_bytes_per_sec`.
pub fn speed_estimate(samples: &[SpeedSample], peak_bytes_per_sec: u64, floor_bytes_per_sec: f64) -> f64 {
    let speeds: Vec<f64> = samples.iter().filter_map(SpeedSample::bytes_per_sec).collect();
    top_fraction_mean(&speeds, 0.3)
        .or((peak_bytes_per_sec > 0).then_some(peak_bytes_per_sec as f64))
        .unwrap_or(floor_bytes_per_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn top_mean_lies_between_median_and_max(values in proptest::collection::vec(0.0f64..1e9, 1..50)) {
            let mean = top_fraction_mean(&values, 0.3).unwrap();
            let max = values.iter().cloned().fold(f64::MIN, f64::max);
            let min = values.iter().cloned().fold(f64::MAX, f64::min);
            prop_assert!(mean <= max + 1e-6 && mean >= min - 1e-6);
        }

        #[test]
        fn slot_is_within_cycle(now in any::<u64>(), slot in 1u64..1_000_000, slots in 1u64..1000) {
            let cycle = slot * slots;
            prop_assert!(u64::from(slot_of(now, slot, cycle)) < slots);
        }
    }

    #[test]
    fn speed_falls_back_to_peak_then_floor() {
        assert_eq!(speed_estimate(&[], 500, 7.0), 500.0);
        assert_eq!(speed_estimate(&[SpeedSample { bytes: 0, millis: 10 }], 0, 7.0), 7.0);
        assert_eq!(speed_estimate(&[SpeedSample { bytes: 1000, millis: 500 }], 500, 7.0), 2000.0);
    }
}
