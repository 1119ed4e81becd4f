//! Solar position and calendar helpers (no time zones, no wall clock).
//!
//! The sun's elevation uses the low-precision formulae of the Astronomical
//! Almanac (accurate to ~0.01° between 1950 and 2050), which is far better
//! than the day/night decision needs:
//!
//! ```text
//! d  = days since J2000.0 (2000-01-01 12:00 UTC)
//! L  = 280.460° + 0.9856474° d          mean longitude
//! g  = 357.528° + 0.9856003° d          mean anomaly
//! λ  = L + 1.915° sin g + 0.020° sin 2g  ecliptic longitude
//! ε  = 23.439° − 4e-7° d                 obliquity
//! α  = atan2(cos ε sin λ, cos λ),  δ = asin(sin ε sin λ)
//! H  = GMST(d) + longitude − α           hour angle
//! elevation = asin(sin φ sin δ + cos φ cos δ cos H)
//! ```

use std::f64::consts::TAU;

/// Seconds in a day.
pub const DAY_S: f64 = 86_400.0;
/// Mean tropical year in days.
pub const YEAR_DAYS: f64 = 365.2425;
/// Unix time of J2000.0, in days.
const J2000_UNIX_DAYS: f64 = 10_957.5;

/// `x` reduced to `[0, m)` (cheaper than `rem_euclid`, which calls `fmod`).
#[inline]
fn wrap(x: f64, m: f64) -> f64 {
    let r = x - m * (x / m).floor();
    if r >= m { 0.0 } else { r }
}

/// Solar elevation above the horizon in degrees (no refraction).
pub fn solar_elevation_deg(unix_s: f64, latitude_deg: f64, longitude_deg: f64) -> f64 {
    let d = unix_s / DAY_S - J2000_UNIX_DAYS;
    // Reduce every angle to [0, 360) before converting: the raw values reach
    // ~10⁷ degrees and full-range trigonometric argument reduction is slow.
    let l = wrap(280.460 + 0.985_647_4 * d, 360.0).to_radians();
    let g = wrap(357.528 + 0.985_600_3 * d, 360.0).to_radians();
    let lambda = l + (1.915 * g.sin() + 0.020 * (2.0 * g).sin()).to_radians();
    let eps = (23.439 - 4.0e-7 * d).to_radians();
    let (sin_l, cos_l) = lambda.sin_cos();
    let ra = (eps.cos() * sin_l).atan2(cos_l);
    let dec = (eps.sin() * sin_l).asin();
    let gmst_deg = 280.460_618_37 + 360.985_647_366_29 * d;
    let hour_angle = wrap(gmst_deg + longitude_deg, 360.0).to_radians() - ra;
    let phi = latitude_deg.to_radians();
    (phi.sin() * dec.sin() + phi.cos() * dec.cos() * hour_angle.cos())
        .clamp(-1.0, 1.0)
        .asin()
        .to_degrees()
}

/// Approximate day of the year in `[0, 365.24)`, 0 = 1 January 00:00 UTC.
///
/// Uses the mean tropical year from 1970, so it drifts by less than a day
/// over a century; plenty for seasonal cycles.
pub fn day_of_year(unix_s: f64) -> f64 {
    wrap(unix_s / DAY_S, YEAR_DAYS)
}

/// Local mean solar time in hours `[0, 24)` at `longitude_deg` (east positive).
pub fn local_solar_hour(unix_s: f64, longitude_deg: f64) -> f64 {
    wrap(unix_s / 3600.0 + longitude_deg / 15.0, 24.0)
}

/// `cos(2π (doy − peak_doy) / year)`: +1 on the peak day, −1 half a year later.
pub fn seasonal_cos(doy: f64, peak_doy: f64) -> f64 {
    (TAU * (doy - peak_doy) / YEAR_DAYS).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAT: f64 = 28.76;
    const LON: f64 = -17.88;

    #[test]
    fn la_palma_noon_and_midnight() {
        // 2024-06-21 13:12 UTC is local solar noon at -17.88° (solstice).
        let noon = 1_718_975_520.0;
        let e = solar_elevation_deg(noon, LAT, LON);
        // 90 - 28.76 + 23.44 = 84.7
        assert!((e - 84.7).abs() < 0.5, "noon elevation {e}");
        let midnight = noon + 12.0 * 3600.0;
        let e = solar_elevation_deg(midnight, LAT, LON);
        assert!((e + 37.8).abs() < 0.7, "midnight elevation {e}");
        // winter solstice noon: 90 - 28.76 - 23.44 = 37.8
        let winter_noon = 1_734_786_720.0; // 2024-12-21 13:12 UTC
        let e = solar_elevation_deg(winter_noon, LAT, LON);
        assert!((e - 37.8).abs() < 0.7, "winter noon elevation {e}");
    }

    #[test]
    fn calendar_helpers() {
        // 2024-03-01 00:00 UTC -> day 60 of a leap year (0-based)
        let doy = day_of_year(1_709_251_200.0);
        assert!((doy - 60.0).abs() < 1.0, "doy {doy}");
        let h = local_solar_hour(1_718_975_520.0, LON);
        assert!((h - 12.0).abs() < 0.1, "solar hour {h}");
        assert!((seasonal_cos(10.0, 10.0) - 1.0).abs() < 1e-12);
        assert!((seasonal_cos(10.0 + YEAR_DAYS / 2.0, 10.0) + 1.0).abs() < 1e-12);
    }
}
