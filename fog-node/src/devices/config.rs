//! Configuration of the simulated devices (serde, defaults from DOMAIN.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sim::WAVELENGTHS_NM;

/// Errors of the device layer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeviceError {
    /// A configuration value is out of range.
    #[error("invalid device config: {field}: {reason}")]
    InvalidConfig {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// Thresholds that turn readings into WARNING / ALARM quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityThresholds {
    /// Sustained wind WARNING, m/s.
    pub wind_warning_m_s: f64,
    /// Sustained wind ALARM (the dome's close limit), m/s.
    pub wind_alarm_m_s: f64,
    /// Gust WARNING, m/s.
    pub gust_warning_m_s: f64,
    /// Gust ALARM, m/s.
    pub gust_alarm_m_s: f64,
    /// RH WARNING (the dome's reopen limit), %.
    pub humidity_warning_pct: f64,
    /// RH ALARM (the dome's close limit), %.
    pub humidity_alarm_pct: f64,
    /// Dust WARNING: the ~12 µg/m³ safety limit.
    pub dust_warning_ug_m3: f64,
    /// Dust ALARM: the 20 µg/m³ warning level of DOMAIN.md.
    pub dust_alarm_ug_m3: f64,
    /// |piston| above this is a WARNING, nm.
    pub piston_warning_nm: f64,
}

impl Default for QualityThresholds {
    fn default() -> Self {
        Self {
            wind_warning_m_s: 15.0,
            wind_alarm_m_s: 20.0,
            gust_warning_m_s: 18.0,
            gust_alarm_m_s: 22.0,
            humidity_warning_pct: 80.0,
            humidity_alarm_pct: 90.0,
            dust_warning_ug_m3: 12.0,
            dust_alarm_ug_m3: 20.0,
            piston_warning_nm: 25.0,
        }
    }
}

/// One camera filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Name written to `filter` and FITS `FILTER`.
    pub name: String,
    /// Model wavelength the filter's throughput follows, nm (470, 530, 650 or 880).
    pub band_nm: u32,
    /// Zero point with fresh aluminium, mag.
    pub zero_point_mag: f64,
}

/// The science camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// Take exposures on open-dome nights.
    pub enabled: bool,
    /// Exposure times drawn from, s.
    pub exposure_times_s: Vec<f64>,
    /// Readout + slew overhead between exposures, s.
    pub overhead_s: f64,
    /// Filters used in turn.
    pub filters: Vec<FilterConfig>,
    /// Folder for one FITS file per exposure; `None` writes no files.
    pub fits_dir: Option<PathBuf>,
    /// Image width and height, pixels.
    pub image_size: [usize; 2],
    /// FITS `TELESCOP`.
    pub telescope: String,
    /// FITS `INSTRUME`.
    pub instrument: String,
    /// CCD temperature set point, °C.
    pub ccd_setpoint_c: f64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        let filter = |name: &str, band_nm, zero_point_mag| FilterConfig {
            name: name.to_owned(),
            band_nm,
            zero_point_mag,
        };
        Self {
            enabled: true,
            exposure_times_s: vec![30.0, 60.0, 120.0, 300.0],
            overhead_s: 45.0,
            filters: vec![
                filter("B", 470, 25.10),
                filter("V", 530, 25.35),
                filter("R", 650, 25.30),
                filter("I", 880, 24.70),
            ],
            fits_dir: None,
            image_size: [32, 32],
            telescope: "OBS-4M".to_owned(),
            instrument: "OBSCAM".to_owned(),
            ccd_setpoint_c: -100.0,
        }
    }
}

/// Rates and settings of the simulated devices (defaults from DOMAIN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Number of `m1/segment/NN` devices (18; GTC and Keck have 36).
    pub segments: u32,
    /// Seed of the sensor-noise stream.
    pub seed: u64,
    /// Weather station rate, Hz (0 disables).
    pub weather_hz: f64,
    /// Dome `percentage_open` rate, Hz.
    pub dome_hz: f64,
    /// Mount axes rate, Hz (1–10 typical).
    pub mount_hz: f64,
    /// Segment sensors rate, Hz (1–2 typical).
    pub segment_hz: f64,
    /// Add sensor noise to readings.
    pub sensor_noise: bool,
    /// Most samples per periodic device per call.
    pub max_catch_up: u32,
    /// Quality thresholds.
    pub thresholds: QualityThresholds,
    /// Science camera.
    pub camera: CameraConfig,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            segments: 18,
            seed: 1,
            weather_hz: 1.0,
            dome_hz: 1.0,
            mount_hz: 1.0,
            segment_hz: 1.0,
            sensor_noise: true,
            max_catch_up: 60,
            thresholds: QualityThresholds::default(),
            camera: CameraConfig::default(),
        }
    }
}

impl DeviceConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), DeviceError> {
        let bad = |field: &str, reason: String| DeviceError::InvalidConfig {
            field: field.to_owned(),
            reason,
        };
        if self.segments == 0 || self.segments > 99 {
            return Err(bad(
                "segments",
                format!("{} is outside 1..=99", self.segments),
            ));
        }
        for (field, hz) in [
            ("weather_hz", self.weather_hz),
            ("dome_hz", self.dome_hz),
            ("mount_hz", self.mount_hz),
            ("segment_hz", self.segment_hz),
        ] {
            if !(hz.is_finite() && (0.0..=1000.0).contains(&hz)) {
                return Err(bad(field, format!("{hz} Hz is outside 0..=1000")));
            }
        }
        if self.max_catch_up == 0 {
            return Err(bad("max_catch_up", "must be at least 1".to_owned()));
        }
        let cam = &self.camera;
        if cam.enabled {
            if cam.exposure_times_s.is_empty()
                || cam
                    .exposure_times_s
                    .iter()
                    .any(|t| !(t.is_finite() && *t > 0.0))
            {
                return Err(bad(
                    "camera.exposure_times_s",
                    "need at least one positive time".to_owned(),
                ));
            }
            if !(cam.overhead_s.is_finite() && cam.overhead_s >= 0.0) {
                return Err(bad(
                    "camera.overhead_s",
                    format!("{} must be non-negative", cam.overhead_s),
                ));
            }
            if cam.filters.is_empty() {
                return Err(bad("camera.filters", "need at least one filter".to_owned()));
            }
            if let Some(f) = cam
                .filters
                .iter()
                .find(|f| !WAVELENGTHS_NM.contains(&f.band_nm))
            {
                return Err(bad(
                    "camera.filters",
                    format!(
                        "filter {} band {} nm is not one of {WAVELENGTHS_NM:?}",
                        f.name, f.band_nm
                    ),
                ));
            }
            let [w, h] = cam.image_size;
            if !(1..=4096).contains(&w) || !(1..=4096).contains(&h) {
                return Err(bad(
                    "camera.image_size",
                    format!("{w}x{h} is outside 1..=4096"),
                ));
            }
        }
        Ok(())
    }
}
