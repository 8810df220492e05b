//! Exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

use crate::config::DeliveryConfig;

/// Longest wait a destination's `Retry-After` can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn from_config(config: &DeliveryConfig) -> Backoff {
        Backoff {
            base: Duration::from_millis(config.backoff_base_ms),
            max: Duration::from_millis(config.backoff_max_ms),
        }
    }

    /// The ceiling for the `attempt`-th retry (1-based): `min(max, base · 2^(attempt−1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before the `attempt`-th retry: uniformly random up to the ceiling ("full
    /// jitter", so retrying workers spread out), but never shorter than the destination asked.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered =
            Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64));
        match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (1..=10).map(|a| b.ceiling(a).as_millis() as u64).collect();
        assert_eq!(
            ceilings,
            vec![
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
        for attempt in 1..12 {
            let d = b.delay(attempt, None);
            assert!(d <= b.ceiling(attempt));
        }
        assert!(b.delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(99_999))),
            MAX_RETRY_AFTER
        );
    }
}
