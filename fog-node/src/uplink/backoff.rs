//! Reconnect backoff and the catch-up rate limit.

use std::time::{Duration, Instant};

use rand::Rng;

/// Exponential backoff with full jitter: attempt `n` (from 0) waits a
/// uniformly drawn time in `[min, min(max, min · 2^n)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min` and `max` (`max` is raised to `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// Upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next delay, drawn with `rng`; the ceiling doubles after each.
    pub fn next_delay_with(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let span = ceiling.saturating_sub(self.min);
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        self.min + Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// Back to the shortest delay (after a connection reached CONNACK).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A token bucket over batches and bytes per second; a rate of 0 is
/// unlimited. The bucket holds one second's worth, and a send may take it
/// into debt (so a batch larger than a second's worth still goes out) that
/// the following sends wait for.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    batches: Bucket,
    bytes: Bucket,
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
    }

    fn wait(&mut self, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        // One token (a batch, a byte) must be there; the slack absorbs the
        // rounding of a wait to whole nanoseconds.
        let need = self.rate.min(1.0);
        if self.tokens + 1e-6 >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }
}

impl RateLimiter {
    /// A limiter at `batches_per_s` and `bytes_per_s` (0 = unlimited).
    pub fn new(batches_per_s: f64, bytes_per_s: u64, now: Instant) -> Self {
        RateLimiter {
            batches: Bucket::new(batches_per_s, now),
            bytes: Bucket::new(bytes_per_s as f64, now),
        }
    }

    /// Whether neither rate is limited.
    pub fn is_unlimited(&self) -> bool {
        self.batches.rate <= 0.0 && self.bytes.rate <= 0.0
    }

    /// How long to wait before the next send may go out.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.batches.wait(now).max(self.bytes.wait(now))
    }

    /// Records a send of `bytes` at `now` (call once `wait` returned zero).
    pub fn record(&mut self, bytes: usize, now: Instant) {
        for (bucket, cost) in [(&mut self.batches, 1.0), (&mut self.bytes, bytes as f64)] {
            if bucket.rate > 0.0 {
                bucket.refill(now);
                bucket.tokens -= cost;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn backoff_stays_within_its_bounds_and_resets() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut backoff = Backoff::new(min, max);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut ceilings = Vec::new();
        for _ in 0..40 {
            let ceiling = backoff.ceiling();
            ceilings.push(ceiling);
            let delay = backoff.next_delay_with(&mut rng);
            assert!(
                delay >= min && delay <= ceiling,
                "{delay:?} outside [{min:?}, {ceiling:?}]"
            );
        }
        assert_eq!(ceilings[0], min);
        assert_eq!(ceilings[1], min * 2);
        assert_eq!(ceilings[5], Duration::from_millis(3200));
        assert_eq!(ceilings[6], max, "capped at max");
        assert_eq!(ceilings[39], max, "no overflow after many attempts");
        // full jitter: the draws spread over the range, they are not all at the top
        let draws: Vec<Duration> = (0..200)
            .map(|_| {
                let mut b = Backoff::new(min, max);
                for _ in 0..10 {
                    b.next_delay_with(&mut rng);
                }
                b.next_delay_with(&mut rng)
            })
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_secs(1)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(4)));
        backoff.reset();
        assert_eq!(backoff.ceiling(), min);
    }

    #[test]
    fn rate_limiter_paces_batches_and_bytes() {
        let t0 = Instant::now();
        let mut unlimited = RateLimiter::new(0.0, 0, t0);
        assert!(unlimited.is_unlimited());
        for _ in 0..1000 {
            assert_eq!(unlimited.wait(t0), Duration::ZERO);
            unlimited.record(1 << 20, t0);
        }

        // 10 batches/s: 50 sends take about 4 s after the first second's burst
        let mut limiter = RateLimiter::new(10.0, 0, t0);
        let mut now = t0;
        for _ in 0..50 {
            let wait = limiter.wait(now);
            now += wait;
            assert_eq!(limiter.wait(now), Duration::ZERO);
            limiter.record(100, now);
        }
        let elapsed = now - t0;
        assert!(
            elapsed >= Duration::from_millis(3900) && elapsed <= Duration::from_millis(4100),
            "{elapsed:?}"
        );

        // 1000 bytes/s with 5000-byte batches: the first second's worth
        // goes at once, then each batch waits for the debt of the last
        let mut limiter = RateLimiter::new(0.0, 1000, t0);
        let mut now = t0;
        for _ in 0..4 {
            now += limiter.wait(now);
            limiter.record(5000, now);
        }
        let elapsed = now - t0;
        assert!(
            elapsed >= Duration::from_millis(13_900) && elapsed <= Duration::from_millis(14_100),
            "{elapsed:?}"
        );
    }
}
