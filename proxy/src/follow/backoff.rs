//! The pause after a failed poll: exponential from [`MIN`] to [`MAX`],
//! jittered (a random point in the upper half, never under [`MIN`]) so that a fleet of proxies
//! does not come back to a restarted control plane in step. The cap is
//! short so that a proxy cut off catches up within about a second of its
//! link coming back; a failed attempt costs a control plane one refused
//! or unanswered connection, so even a thousand proxies probing a dead
//! one send it only a few thousand SYNs a second.

use std::time::Duration;

pub const MIN: Duration = Duration::from_millis(100);
pub const MAX: Duration = Duration::from_millis(500);

/// Consecutive failures, and the pause the next one earns.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The pause after one more failure.
    pub fn after_failure(&mut self) -> Duration {
        let ceiling = MIN.saturating_mul(1u32 << self.failures.min(16)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        let half = ceiling / 2;
        (half + half.mul_f64(rand::random::<f64>())).max(MIN)
    }

    /// A success: the next failure starts from the bottom again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_within_its_bounds_and_resets() {
        let mut b = Backoff::default();
        let first = b.after_failure();
        assert_eq!(first, MIN, "the first pause is the floor");
        for _ in 0..40 {
            let d = b.after_failure();
            assert!(d <= MAX, "{d:?}");
        }
        let late = b.after_failure();
        assert!(late >= MAX / 2, "{late:?}");
        b.reset();
        assert!(b.after_failure() <= MIN);
    }
}
