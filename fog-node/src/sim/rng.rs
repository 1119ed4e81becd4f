//! Seeded random numbers for the environment model.
//!
//! Every subsystem draws from its own ChaCha8 stream derived from the one
//! configured seed, so that a hook call that consumes randomness (a scripted
//! cleaning, say) never shifts the weather sequence.

use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Independent random streams of one environment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Weather = 1,
    Maintenance = 2,
    Segments = 3,
    Measurement = 4,
    Devices = 5,
}

/// A ChaCha8 stream with the few distributions the model needs.
#[derive(Debug, Clone)]
pub(crate) struct SimRng {
    inner: ChaCha8Rng,
    spare_normal: Option<f64>,
}

impl SimRng {
    /// Stream `stream` of seed `seed`.
    pub(crate) fn new(seed: u64, stream: Stream) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream as u64);
        Self {
            inner,
            spare_normal: None,
        }
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub(crate) fn uniform(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Marsaglia polar method, second value cached).
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * f);
                return u * f;
            }
        }
    }

    /// Exponential with the given mean.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Log-normal with the given median and log-space sigma.
    pub(crate) fn lognormal(&mut self, median: f64, log_sigma: f64) -> f64 {
        median * (log_sigma * self.normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = SimRng::new(7, Stream::Weather);
        let n = 200_000;
        let (mut sum, mut sum2) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.normal();
            sum += z;
            sum2 += z * z;
        }
        let mean = sum / n as f64;
        let var = sum2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a: Vec<f64> = {
            let mut r = SimRng::new(1, Stream::Weather);
            (0..4).map(|_| r.uniform()).collect()
        };
        let b: Vec<f64> = {
            let mut r = SimRng::new(1, Stream::Weather);
            (0..4).map(|_| r.uniform()).collect()
        };
        let c: Vec<f64> = {
            let mut r = SimRng::new(1, Stream::Maintenance);
            (0..4).map(|_| r.uniform()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
