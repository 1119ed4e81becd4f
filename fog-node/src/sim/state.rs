//! The inspectable state of the environment: what [`super::Environment::state`] returns.
//!
//! Everything here is plain data (serde-serialisable, comparable) so a caller
//! can log it, diff it, or write it into a training table.

use serde::{Deserialize, Serialize};

use super::dome::DomeStatus;
use super::weather::Weather;

/// Wavelengths at which reflectivity is modelled and measured, nm.
pub const WAVELENGTHS_NM: [u32; 4] = [470, 530, 650, 880];

/// Index of 650 nm (the reference wavelength of the model) in [`WAVELENGTHS_NM`].
pub const REF_BAND: usize = 2;

/// Reflectivity of a segment at the four model wavelengths, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reflectivity {
    /// At 470 nm, %.
    #[serde(rename = "470nm")]
    pub nm470: f64,
    /// At 530 nm, %.
    #[serde(rename = "530nm")]
    pub nm530: f64,
    /// At 650 nm (the reference wavelength), %.
    #[serde(rename = "650nm")]
    pub nm650: f64,
    /// At 880 nm, % (below the others for aluminium: its interband dip at ~830 nm).
    #[serde(rename = "880nm")]
    pub nm880: f64,
}

impl Reflectivity {
    /// Fresh bare aluminium (DOMAIN.md: ≈ 91 % at 500, 91.7 % at 670, ~86 % at 880 nm).
    pub const FRESH_ALUMINIUM: Self = Self {
        nm470: 91.3,
        nm530: 91.0,
        nm650: 91.5,
        nm880: 86.0,
    };

    /// From values ordered as [`WAVELENGTHS_NM`].
    pub fn from_array(v: [f64; 4]) -> Self {
        Self {
            nm470: v[0],
            nm530: v[1],
            nm650: v[2],
            nm880: v[3],
        }
    }

    /// Values ordered as [`WAVELENGTHS_NM`].
    pub fn to_array(self) -> [f64; 4] {
        [self.nm470, self.nm530, self.nm650, self.nm880]
    }
}

impl Default for Reflectivity {
    fn default() -> Self {
        Self::FRESH_ALUMINIUM
    }
}

/// Exposure of a segment accumulated since an instant (last cleaning or
/// last recoat): the model's input features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Hours with the dome open, weighted by the fraction open.
    pub open_dome_hours: f64,
    /// Dust dose while open: ∫ dust·(fraction open) dt, µg/m³·h.
    pub dust_dose_ug_m3_h: f64,
    /// Calima episodes that started.
    pub calima_events: u32,
    /// Hours with RH > 80 % (dome open or closed).
    pub humid_hours: f64,
    /// Hours with the segment's glass within 2 °C of the dew point.
    pub dew_risk_hours: f64,
}

/// Reflectivity loss of a segment at 650 nm, split by mechanism, in points
/// (percentage points). See the module docs of [`super::mirror`] for the
/// wavelength scaling of each term.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossBreakdown {
    /// Loose dust: recoverable by cleaning.
    pub dust: f64,
    /// Water-spot / humidity film: recoverable by cleaning.
    pub film: f64,
    /// Dust bonded to the coating: only a recoat removes it.
    pub ingrained: f64,
    /// Oxidation / ageing haze plus the unrecoverable part of humidity damage.
    pub haze: f64,
    /// Corrosion where dust and moisture coincided: permanent until recoat.
    pub corrosion: f64,
}

impl LossBreakdown {
    /// Loss a cleaning can act on, at 650 nm.
    pub fn recoverable(&self) -> f64 {
        self.dust + self.film
    }

    /// Loss only a recoat removes, at 650 nm.
    pub fn permanent(&self) -> f64 {
        self.ingrained + self.haze + self.corrosion
    }

    /// Total loss at 650 nm.
    pub fn total(&self) -> f64 {
        self.recoverable() + self.permanent()
    }
}

/// Fixed properties of a segment drawn (or derived) when the environment is built.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentTraits {
    /// Hexagonal ring, 1 = innermost (6 segments), 2 = next (12), ...
    pub ring: u32,
    /// Multiplier of the dust deposition rate (ring, microroughness, random).
    pub dust_susceptibility: f64,
    /// Microroughness of the coating, Å RMS.
    pub microroughness_angstrom: f64,
    /// Thermal time constant of the glass, hours.
    pub thermal_tau_hours: f64,
    /// Static offset of the glass temperature from its driver, °C.
    pub thermal_offset_c: f64,
    /// Static piston residual of the control loop, nm.
    pub piston_offset_nm: f64,
    /// Static tip residual, µrad.
    pub tip_offset_urad: f64,
    /// Static tilt residual, µrad.
    pub tilt_offset_urad: f64,
    /// Sine of the phase of the wind-shake oscillation.
    pub shake_phase_sin: f64,
    /// Cosine of the phase of the wind-shake oscillation.
    pub shake_phase_cos: f64,
}

/// One mirror segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentState {
    /// Position in the mirror, 1-based (device `m1/segment/NN`).
    pub position: u32,
    /// True reflectivity now, %.
    pub reflectivity: Reflectivity,
    /// Reflectivity of the current coating when fresh, %.
    pub fresh: Reflectivity,
    /// Loss at 650 nm by mechanism, points.
    pub loss: LossBreakdown,
    /// Glass temperature, °C.
    pub glass_temperature_c: f64,
    /// Piston error, nm.
    pub piston_nm: f64,
    /// Tip error, µrad.
    pub tip_urad: f64,
    /// Tilt error, µrad.
    pub tilt_urad: f64,
    /// Exposure since the last cleaning (or recoat).
    pub since_cleaning: Exposure,
    /// Exposure since the last recoat.
    pub since_recoat: Exposure,
    /// Unix time of the last cleaning (or recoat), seconds.
    pub last_cleaning_unix_s: f64,
    /// Unix time of the last recoat, seconds.
    pub last_recoat_unix_s: f64,
    /// Days since the last cleaning (or recoat).
    pub days_since_cleaning: f64,
    /// Days since the last recoat, i.e. coating age.
    pub days_since_recoat: f64,
    /// Cleanings since the last recoat.
    pub cleanings_since_recoat: u32,
    /// Whether the glass is within 2 °C of the dew point.
    pub dew_risk: bool,
    /// Fixed properties.
    pub traits: SegmentTraits,
}

impl SegmentState {
    /// Loss from fresh at 650 nm, points.
    pub fn loss_650(&self) -> f64 {
        self.fresh.nm650 - self.reflectivity.nm650
    }

    /// Permanent corrosion loss at 650 nm, points.
    pub fn corrosion_loss_650(&self) -> f64 {
        self.loss.corrosion
    }
}

/// Site-wide counters since the environment started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteTotals {
    /// Simulated hours.
    pub hours: f64,
    /// Hours of night (sun below the dome's opening elevation).
    pub night_hours: f64,
    /// Night hours with a weather hold (humidity, dew, wind, dust) active.
    pub weather_closed_night_hours: f64,
    /// Hours the dome was open, weighted by the fraction open.
    pub open_hours: f64,
    /// Dust dose while open, µg/m³·h.
    pub dust_dose_ug_m3_h: f64,
    /// Calima episodes started.
    pub calima_events: u32,
}

impl SiteTotals {
    /// Fraction of night hours lost to weather (0 when no night has passed).
    pub fn weather_downtime_fraction(&self) -> f64 {
        if self.night_hours > 0.0 {
            self.weather_closed_night_hours / self.night_hours
        } else {
            0.0
        }
    }
}

/// The environment at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvState {
    /// Simulated time, Unix nanoseconds (UTC).
    pub time_unix_ns: i64,
    /// Solar elevation, degrees.
    pub sun_elevation_deg: f64,
    /// Sun below the dome's opening elevation.
    pub is_night: bool,
    /// Weather at the site.
    pub weather: Weather,
    /// Dome shutter.
    pub dome: DomeStatus,
    /// Mirror segments, ordered by position (index = position − 1).
    pub segments: Vec<SegmentState>,
    /// Site-wide counters.
    pub totals: SiteTotals,
}

impl EnvState {
    /// Simulated time, Unix seconds.
    pub fn unix_seconds(&self) -> f64 {
        self.time_unix_ns as f64 / 1e9
    }

    /// Mean true reflectivity over the segments, %.
    pub fn mean_reflectivity(&self) -> Reflectivity {
        let n = self.segments.len().max(1) as f64;
        let mut sum = [0.0; 4];
        for s in &self.segments {
            for (acc, v) in sum.iter_mut().zip(s.reflectivity.to_array()) {
                *acc += v;
            }
        }
        Reflectivity::from_array(sum.map(|v| v / n))
    }
}
