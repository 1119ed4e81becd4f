//! Mirror segment physics: reflectivity loss, cleaning, recoating, glass
//! temperature and the residual figure errors.
//!
//! # Reflectivity (the ground truth the health model learns)
//!
//! Loss is tracked at the reference wavelength λ₀ = 650 nm in five buckets
//! (points = percentage points of reflectivity), integrated on every
//! sub-step `dt` (hours), with `f` = fraction of the dome open, `D` = dust
//! µg/m³, `s` = the segment's dust susceptibility:
//!
//! ```text
//! dose       = D·f·dt                                          µg/m³·h
//! dust      += (1 − φ)·k_d·s·dose                               recoverable
//! ingrained += φ·k_d·s·dose                                     permanent
//! w          = c + (1 − c)·f                                    moisture weight (closed dome: c)
//! m          = k_h·w·[RH > 80 %]·dt + k_w·w·[T_glass − T_dew < 2 °C]·dt
//! film      += ψ·m                                              recoverable
//! haze      += (1 − ψ)·m + k_a·dt                               permanent (+ ageing)
//! corrosion += k_c·dust·([dew risk] + 0.3·[RH > 80 %])·dt        permanent (dust AND moisture)
//! ```
//!
//! Reflectivity at wavelength λ: `R(λ) = R_fresh(λ) − Σ_b L_b·(650/λ)^α_b`,
//! with α = 0.5 for dust and ingrained dust (large grains scatter almost
//! grey), 1.0 for film and haze, 2.0 for corrosion (microroughness scatter,
//! TIS ∝ λ⁻²): shorter wavelengths lose more.
//!
//! Susceptibility: `s = (1 + 0.06·(ring − 1))·(1 + 0.01·(σ_Å − 20))·LogN(1, 0.05)`
//! (outer rings, rougher coatings and chance make segments differ).
//!
//! Calibration against DOMAIN.md (defaults below):
//! * `k_d = 3.5e-4` points per µg/m³·h: a dusty-site month (≈ 230 open hours at
//!   ≈ 7.5 µg/m³, the dome closing at 12) gives 0.5–1 point at 650 nm.
//! * La Palma background (~2–3 µg/m³, ~2900 open hours a year) deposits ~2.5
//!   points a year; with CO₂ cleanings every 30–60 days the net yearly loss is
//!   φ = 30 % of it plus ageing `k_a` = 0.2 pt/yr plus humidity
//!   (`k_h` = 1e-4 /h, `k_w` = 5e-4 /h, ψ = 0.5, c = 0.3) and corrosion
//!   (`k_c` = 1e-3 /h per point of dust): ~1–2 points a year.
//!
//! # Cleaning and recoating
//!
//! A cleaning recovers `min(cap, η·(dust + film))` at 650 nm with
//! `cap ~ U(2.5, 3.0)` and efficiency `η ~ U(0.80, 0.92)`, removing the same
//! fraction of both recoverable buckets; permanent buckets are untouched, so a
//! cleaning never returns a used segment to fresh. A recoat zeroes every
//! bucket: reflectivity = fresh values of the coating.
//!
//! # Glass temperature and figure
//!
//! `T_glass → T_air − 0.8 °C·f + offset` with time constant τ ≈ 3 h
//! (radiative cooling to the sky when open). Piston and tip/tilt residuals
//! are static offsets + a thermal term `3 nm/°C·(T_glass − T_air)` (tip/tilt
//! 0.02 µrad/°C) + wind shake `0.05 nm·v²·f` (0.004 µrad·v²·f) oscillating
//! with a 7.3 s period.

use serde::{Deserialize, Serialize};

use super::dome::DEW_RISK_MARGIN_C;
use super::rng::SimRng;
use super::state::{
    Exposure, LossBreakdown, Reflectivity, SegmentState, SegmentTraits, WAVELENGTHS_NM,
};
use super::sun::{DAY_S, YEAR_DAYS};

/// Constants of the degradation model (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorPhysics {
    /// `k_d`: loss at 650 nm per unit dust dose, points per µg/m³·h.
    pub dust_loss_per_dose: f64,
    /// `φ`: fraction of deposited dust that bonds (permanent until recoat).
    pub ingrained_fraction: f64,
    /// `k_a`: ageing haze, points per year.
    pub ageing_per_year: f64,
    /// `k_h`: humidity loss per hour with RH > 80 %, points.
    pub humid_loss_per_hour: f64,
    /// `k_w`: extra loss per hour at dew risk, points.
    pub dew_loss_per_hour: f64,
    /// `c`: weight of moisture damage while the dome is closed.
    pub closed_moisture_weight: f64,
    /// `ψ`: fraction of moisture damage a cleaning can remove.
    pub film_recoverable_fraction: f64,
    /// `k_c`: corrosion per hour per point of loose dust at dew risk, points.
    pub corrosion_per_dust_hour: f64,
    /// Wavelength exponent of dust and ingrained dust.
    pub dust_alpha: f64,
    /// Wavelength exponent of film and haze.
    pub film_alpha: f64,
    /// Wavelength exponent of corrosion.
    pub corrosion_alpha: f64,
    /// Cleaning recovery cap at 650 nm drawn from `[min, max]`, points.
    pub cleaning_cap_points: [f64; 2],
    /// Cleaning efficiency drawn from `[min, max]`.
    pub cleaning_efficiency: [f64; 2],
    /// Extra dust susceptibility per ring outside the first.
    pub ring_susceptibility_step: f64,
    /// Extra dust susceptibility per Å of microroughness above 20 Å.
    pub roughness_susceptibility_per_angstrom: f64,
    /// Log-space sigma of the random per-segment susceptibility.
    pub susceptibility_log_sigma: f64,
    /// Thermal time constant of the glass, hours.
    pub thermal_tau_hours: f64,
    /// Radiative cooling of the glass with the dome fully open, °C.
    pub radiative_cooling_c: f64,
    /// Standard deviation of a reflectometer reading, points.
    pub reflectometer_noise_points: f64,
}

impl Default for MirrorPhysics {
    fn default() -> Self {
        Self {
            dust_loss_per_dose: 3.5e-4,
            ingrained_fraction: 0.30,
            ageing_per_year: 0.20,
            humid_loss_per_hour: 1.0e-4,
            dew_loss_per_hour: 5.0e-4,
            closed_moisture_weight: 0.3,
            film_recoverable_fraction: 0.5,
            corrosion_per_dust_hour: 1.0e-3,
            dust_alpha: 0.5,
            film_alpha: 1.0,
            corrosion_alpha: 2.0,
            cleaning_cap_points: [2.5, 3.0],
            cleaning_efficiency: [0.80, 0.92],
            ring_susceptibility_step: 0.06,
            roughness_susceptibility_per_angstrom: 0.01,
            susceptibility_log_sigma: 0.05,
            thermal_tau_hours: 3.0,
            radiative_cooling_c: 0.8,
            reflectometer_noise_points: 0.05,
        }
    }
}

/// Initial state of one segment, e.g. from its manufacturing record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentInit {
    /// Fresh reflectivity of its coating, %.
    pub fresh: Reflectivity,
    /// Age of the coating at the start, days.
    pub coating_age_days: f64,
    /// Days since its last cleaning at the start (capped at the coating age).
    pub days_since_cleaning: f64,
    /// Microroughness, Å RMS (10–30 fresh).
    pub microroughness_angstrom: f64,
    /// Loss from fresh at 650 nm at the start, points; `None` estimates it from the ages.
    pub initial_loss_650: Option<f64>,
}

impl Default for SegmentInit {
    fn default() -> Self {
        Self {
            fresh: Reflectivity::FRESH_ALUMINIUM,
            coating_age_days: 0.0,
            days_since_cleaning: 0.0,
            microroughness_angstrom: 20.0,
            initial_loss_650: None,
        }
    }
}

/// Hexagonal ring (1-based) of segment `index` (0-based): 6, 12, 18, ... per ring.
pub fn ring_of(index: usize) -> u32 {
    let mut ring = 1u32;
    let mut first_of_next = 6usize;
    while index >= first_of_next {
        ring += 1;
        first_of_next += 6 * ring as usize;
    }
    ring
}

/// `(650/λ)^α` for the four wavelengths.
fn weights(alpha: f64) -> [f64; 4] {
    WAVELENGTHS_NM.map(|l| (650.0 / f64::from(l)).powf(alpha))
}

/// Wavelength weights of the buckets, precomputed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BandWeights {
    dust: [f64; 4],
    film: [f64; 4],
    corrosion: [f64; 4],
}

impl BandWeights {
    pub(crate) fn new(p: &MirrorPhysics) -> Self {
        Self {
            dust: weights(p.dust_alpha),
            film: weights(p.film_alpha),
            corrosion: weights(p.corrosion_alpha),
        }
    }

    /// Reflectivity of `fresh` after `loss`.
    pub(crate) fn reflectivity(&self, fresh: &Reflectivity, loss: &LossBreakdown) -> Reflectivity {
        let f = fresh.to_array();
        let d = loss.dust + loss.ingrained;
        let h = loss.film + loss.haze;
        let mut out = [0.0; 4];
        for i in 0..4 {
            out[i] =
                f[i] - d * self.dust[i] - h * self.film[i] - loss.corrosion * self.corrosion[i];
        }
        Reflectivity::from_array(out)
    }
}

/// Builds segment `index` (0-based) from its init record at `now_s`.
pub(crate) fn new_segment(
    index: usize,
    init: &SegmentInit,
    physics: &MirrorPhysics,
    weights: &BandWeights,
    rng: &mut SimRng,
    now_s: f64,
    air_temperature_c: f64,
) -> SegmentState {
    let ring = ring_of(index);
    let roughness = init.microroughness_angstrom;
    let susceptibility = (1.0 + physics.ring_susceptibility_step * f64::from(ring - 1))
        * (1.0 + physics.roughness_susceptibility_per_angstrom * (roughness - 20.0)).max(0.5)
        * rng.lognormal(1.0, physics.susceptibility_log_sigma);
    let shake_phase = std::f64::consts::TAU * rng.uniform();
    let traits = SegmentTraits {
        ring,
        dust_susceptibility: susceptibility,
        microroughness_angstrom: roughness,
        thermal_tau_hours: physics.thermal_tau_hours * rng.lognormal(1.0, 0.05),
        thermal_offset_c: 0.1 * rng.normal(),
        piston_offset_nm: 3.0 * rng.normal(),
        tip_offset_urad: 0.03 * rng.normal(),
        tilt_offset_urad: 0.03 * rng.normal(),
        shake_phase_sin: shake_phase.sin(),
        shake_phase_cos: shake_phase.cos(),
    };
    let age_days = init.coating_age_days.max(0.0);
    let since_clean_days = init.days_since_cleaning.clamp(0.0, age_days);
    // Typical La Palma split when the caller gives no loss: ~1 pt/yr permanent
    // plus ~2 pt/yr of loose dust since the last cleaning.
    let years = age_days / YEAR_DAYS;
    let mut loss = LossBreakdown {
        dust: 2.0 * since_clean_days / YEAR_DAYS,
        film: 0.0,
        ingrained: 0.55 * years,
        haze: 0.35 * years,
        corrosion: 0.10 * years,
    };
    if let Some(total) = init.initial_loss_650.filter(|t| t.is_finite() && *t >= 0.0) {
        let current = loss.total();
        if current > 0.0 {
            let k = total / current;
            loss = LossBreakdown {
                dust: loss.dust * k,
                film: loss.film * k,
                ingrained: loss.ingrained * k,
                haze: loss.haze * k,
                corrosion: loss.corrosion * k,
            };
        } else {
            loss.dust = total;
        }
    }
    SegmentState {
        position: index as u32 + 1,
        reflectivity: weights.reflectivity(&init.fresh, &loss),
        fresh: init.fresh,
        loss,
        glass_temperature_c: air_temperature_c,
        piston_nm: traits.piston_offset_nm,
        tip_urad: traits.tip_offset_urad,
        tilt_urad: traits.tilt_offset_urad,
        since_cleaning: Exposure::default(),
        since_recoat: Exposure::default(),
        last_cleaning_unix_s: now_s - since_clean_days * DAY_S,
        last_recoat_unix_s: now_s - age_days * DAY_S,
        days_since_cleaning: since_clean_days,
        days_since_recoat: age_days,
        cleanings_since_recoat: 0,
        dew_risk: false,
        traits,
    }
}

/// Site conditions over one sub-step, shared by all segments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MirrorStep {
    pub dt_s: f64,
    pub open_fraction: f64,
    pub dust_ug_m3: f64,
    pub humid: bool,
    pub air_temperature_c: f64,
    pub dew_point_c: f64,
}

/// Per-segment glass relaxation factors for a step size, cached.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThermalCache {
    dt_s: f64,
    relax: Vec<f64>,
}

/// Integrates the physics of every segment over one sub-step.
pub(crate) fn advance_segments(
    segments: &mut [SegmentState],
    physics: &MirrorPhysics,
    cache: &mut ThermalCache,
    step: &MirrorStep,
) {
    if cache.dt_s.to_bits() != step.dt_s.to_bits() || cache.relax.len() != segments.len() {
        cache.dt_s = step.dt_s;
        cache.relax = segments
            .iter()
            .map(|s| 1.0 - (-step.dt_s / (s.traits.thermal_tau_hours * 3600.0)).exp())
            .collect();
    }
    let p = physics;
    let dt_h = step.dt_s / 3600.0;
    let f = step.open_fraction;
    let dose = step.dust_ug_m3 * f * dt_h;
    let open_h = f * dt_h;
    let w = p.closed_moisture_weight + (1.0 - p.closed_moisture_weight) * f;
    let humid_h = if step.humid { dt_h } else { 0.0 };
    let ageing = p.ageing_per_year / (YEAR_DAYS * 24.0) * dt_h;
    let glass_target = step.air_temperature_c - p.radiative_cooling_c * f;

    for (seg, relax) in segments.iter_mut().zip(&cache.relax) {
        let target = glass_target + seg.traits.thermal_offset_c;
        seg.glass_temperature_c += (target - seg.glass_temperature_c) * relax;
        let dew = seg.glass_temperature_c - step.dew_point_c < DEW_RISK_MARGIN_C;
        seg.dew_risk = dew;
        let dew_h = if dew { dt_h } else { 0.0 };

        let deposit = p.dust_loss_per_dose * seg.traits.dust_susceptibility * dose;
        let moisture = w * (p.humid_loss_per_hour * humid_h + p.dew_loss_per_hour * dew_h);
        let l = &mut seg.loss;
        l.corrosion += p.corrosion_per_dust_hour * l.dust * (dew_h + 0.3 * humid_h);
        l.dust += (1.0 - p.ingrained_fraction) * deposit;
        l.ingrained += p.ingrained_fraction * deposit;
        l.film += p.film_recoverable_fraction * moisture;
        l.haze += (1.0 - p.film_recoverable_fraction) * moisture + ageing;

        for e in [&mut seg.since_cleaning, &mut seg.since_recoat] {
            e.open_dome_hours += open_h;
            e.dust_dose_ug_m3_h += dose;
            e.humid_hours += humid_h;
            e.dew_risk_hours += dew_h;
        }
    }
}

/// Site-wide inputs of [`refresh_segment`], computed once per step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FigureDrivers {
    air_c: f64,
    /// `v²·f`: wind-shake amplitude driver.
    shake: f64,
    /// `(sin, cos)` of the 7.3 s and 5.1 s shake phases (argument reduced first:
    /// `sin(2π·t/7.3)` with t ~ 1.7e9 s would be slow and imprecise).
    phase_a: (f64, f64),
    phase_b: (f64, f64),
}

impl FigureDrivers {
    pub(crate) fn new(now_s: f64, air_c: f64, wind_m_s: f64, open_fraction: f64) -> Self {
        let tau = std::f64::consts::TAU;
        Self {
            air_c,
            shake: wind_m_s * wind_m_s * open_fraction,
            phase_a: (tau * (now_s / 7.3).fract()).sin_cos(),
            phase_b: (tau * (now_s / 5.1).fract()).sin_cos(),
        }
    }
}

/// Updates the derived fields (reflectivity, ages, figure) at `now_s`.
pub(crate) fn refresh_segment(
    seg: &mut SegmentState,
    weights: &BandWeights,
    now_s: f64,
    d: &FigureDrivers,
) {
    seg.reflectivity = weights.reflectivity(&seg.fresh, &seg.loss);
    seg.days_since_cleaning = (now_s - seg.last_cleaning_unix_s) / DAY_S;
    seg.days_since_recoat = (now_s - seg.last_recoat_unix_s) / DAY_S;
    let t = &seg.traits;
    let dt = seg.glass_temperature_c - d.air_c;
    let (sin_p, cos_p) = (t.shake_phase_sin, t.shake_phase_cos);
    // sin(a + p) and cos(b + p) by angle addition
    let shake_a = (d.phase_a.0 * cos_p + d.phase_a.1 * sin_p) * d.shake;
    let shake_b = (d.phase_b.1 * cos_p - d.phase_b.0 * sin_p) * d.shake;
    seg.piston_nm = t.piston_offset_nm + 3.0 * dt + 0.05 * shake_a;
    seg.tip_urad = t.tip_offset_urad + 0.02 * dt + 0.004 * shake_a;
    seg.tilt_urad = t.tilt_offset_urad - 0.02 * dt + 0.004 * shake_b;
}

/// Cleans a segment; returns (before, after) true reflectivity.
pub(crate) fn clean(
    seg: &mut SegmentState,
    physics: &MirrorPhysics,
    weights: &BandWeights,
    rng: &mut SimRng,
    now_s: f64,
) -> (Reflectivity, Reflectivity) {
    let before = weights.reflectivity(&seg.fresh, &seg.loss);
    let [cap_lo, cap_hi] = physics.cleaning_cap_points;
    let [eta_lo, eta_hi] = physics.cleaning_efficiency;
    let cap = rng.range(cap_lo, cap_hi);
    let eta = rng.range(eta_lo, eta_hi);
    let recoverable = seg.loss.recoverable();
    if recoverable > 0.0 {
        let recovered = (eta * recoverable).min(cap);
        let keep = 1.0 - recovered / recoverable;
        seg.loss.dust *= keep;
        seg.loss.film *= keep;
    }
    seg.since_cleaning = Exposure::default();
    seg.last_cleaning_unix_s = now_s;
    seg.days_since_cleaning = 0.0;
    seg.cleanings_since_recoat += 1;
    seg.reflectivity = weights.reflectivity(&seg.fresh, &seg.loss);
    debug_assert!(seg.reflectivity.nm650 <= seg.fresh.nm650);
    (before, seg.reflectivity)
}

/// Recoats a segment: fresh coating, every exposure counter reset.
pub(crate) fn recoat(
    seg: &mut SegmentState,
    weights: &BandWeights,
    now_s: f64,
) -> (Reflectivity, Reflectivity) {
    let before = weights.reflectivity(&seg.fresh, &seg.loss);
    seg.loss = LossBreakdown::default();
    seg.since_cleaning = Exposure::default();
    seg.since_recoat = Exposure::default();
    seg.last_cleaning_unix_s = now_s;
    seg.last_recoat_unix_s = now_s;
    seg.days_since_cleaning = 0.0;
    seg.days_since_recoat = 0.0;
    seg.cleanings_since_recoat = 0;
    seg.reflectivity = seg.fresh;
    (before, seg.fresh)
}

/// A reflectometer reading of a segment: true value plus Gaussian noise.
pub(crate) fn measure(
    seg: &SegmentState,
    physics: &MirrorPhysics,
    weights: &BandWeights,
    rng: &mut SimRng,
) -> Reflectivity {
    let r = weights.reflectivity(&seg.fresh, &seg.loss).to_array();
    let sigma = physics.reflectometer_noise_points;
    Reflectivity::from_array(r.map(|v| v + sigma * rng.normal()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Stream;
    use crate::sim::state::REF_BAND;

    #[test]
    fn rings_follow_hexagonal_packing() {
        let rings: Vec<u32> = (0..36).map(ring_of).collect();
        assert!(rings[..6].iter().all(|&r| r == 1));
        assert!(rings[6..18].iter().all(|&r| r == 2));
        assert!(rings[18..36].iter().all(|&r| r == 3));
    }

    #[test]
    fn shorter_wavelengths_lose_more() {
        let p = MirrorPhysics::default();
        let w = BandWeights::new(&p);
        let loss = LossBreakdown {
            dust: 1.0,
            film: 0.5,
            ingrained: 0.5,
            haze: 0.3,
            corrosion: 0.2,
        };
        let fresh = Reflectivity::FRESH_ALUMINIUM;
        let r = w.reflectivity(&fresh, &loss);
        let drop: Vec<f64> = fresh
            .to_array()
            .iter()
            .zip(r.to_array())
            .map(|(f, v)| f - v)
            .collect();
        assert!((drop[REF_BAND] - loss.total()).abs() < 1e-12);
        assert!(
            drop[0] > drop[1] && drop[1] > drop[2] && drop[2] > drop[3],
            "{drop:?}"
        );
    }

    #[test]
    fn initial_loss_is_respected() {
        let p = MirrorPhysics::default();
        let w = BandWeights::new(&p);
        let mut rng = SimRng::new(1, Stream::Segments);
        let init = SegmentInit {
            coating_age_days: 500.0,
            days_since_cleaning: 40.0,
            initial_loss_650: Some(2.2),
            ..SegmentInit::default()
        };
        let s = new_segment(7, &init, &p, &w, &mut rng, 1.0e9, 5.0);
        assert!((s.loss_650() - 2.2).abs() < 1e-9);
        assert_eq!(s.position, 8);
        assert_eq!(s.traits.ring, 2);
        assert!((s.days_since_recoat - 500.0).abs() < 1e-9);
    }
}
