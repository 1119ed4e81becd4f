//! From a prediction to a risk level an engineer acts on.
//!
//! The rule, in order:
//! 1. **recoat** — even a cleaning would not bring the segment back above
//!    its threshold: predicted reflectivity + [`CLEANING_GAIN_POINTS`] is
//!    below the threshold, or the coating is older than
//!    [`MAX_COATING_AGE_DAYS`];
//! 2. **clean soon** — the threshold is predicted within
//!    [`CLEAN_SOON_DAYS`] days (or already crossed);
//! 3. **watch** — within [`WATCH_DAYS`] days;
//! 4. **ok** — otherwise.
//!
//! The threshold is `max(fresh − 3 points, 80 %)` at 650 nm
//! ([`obs_ml::threshold_650_pct`]); a cleaning recovers 2.5–3 points
//! (DOMAIN.md), so the conservative 2.5 is used.

use obs_proto::v1::Risk;

/// Points a cleaning is assumed to recover.
pub const CLEANING_GAIN_POINTS: f64 = 2.5;
/// A coating older than this is due for a recoat whatever its reflectivity.
pub const MAX_COATING_AGE_DAYS: f64 = 4.0 * 365.25;
pub const CLEAN_SOON_DAYS: f64 = 14.0;
pub const WATCH_DAYS: f64 = 60.0;

/// The risk level and the reason, in words.
pub fn assess(
    reflectivity_650_pct: f64,
    days_to_threshold: f64,
    threshold_650_pct: f64,
    coating_age_days: Option<f64>,
) -> (Risk, String) {
    if reflectivity_650_pct + CLEANING_GAIN_POINTS < threshold_650_pct {
        return (
            Risk::Recoat,
            format!(
                "predicted {reflectivity_650_pct:.2} % at 650 nm: a cleaning (+{CLEANING_GAIN_POINTS} points) stays below the {threshold_650_pct:.2} % threshold"
            ),
        );
    }
    if let Some(age) = coating_age_days.filter(|age| *age > MAX_COATING_AGE_DAYS) {
        return (
            Risk::Recoat,
            format!("coating is {:.1} years old", age / 365.25),
        );
    }
    if days_to_threshold <= CLEAN_SOON_DAYS {
        let when = if days_to_threshold <= 0.0 {
            "already below".to_string()
        } else {
            format!("in {days_to_threshold:.0} days")
        };
        return (
            Risk::CleanSoon,
            format!("reaches the {threshold_650_pct:.2} % threshold {when}"),
        );
    }
    if days_to_threshold <= WATCH_DAYS {
        return (
            Risk::Watch,
            format!(
                "reaches the {threshold_650_pct:.2} % threshold in {days_to_threshold:.0} days"
            ),
        );
    }
    (
        Risk::Ok,
        format!("{days_to_threshold:.0} days to the {threshold_650_pct:.2} % threshold"),
    )
}

/// The stored name of a risk level.
pub fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Unspecified => "unspecified",
        Risk::Ok => "ok",
        Risk::Watch => "watch",
        Risk::CleanSoon => "clean_soon",
        Risk::Recoat => "recoat",
    }
}

/// The risk level of a stored name.
pub fn risk_of_name(name: &str) -> Risk {
    match name {
        "ok" => Risk::Ok,
        "watch" => Risk::Watch,
        "clean_soon" => Risk::CleanSoon,
        "recoat" => Risk::Recoat,
        _ => Risk::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_of_the_rule() {
        assert_eq!(assess(85.0, 0.0, 88.4, Some(300.0)).0, Risk::Recoat);
        assert_eq!(assess(90.0, 200.0, 88.4, Some(1600.0)).0, Risk::Recoat);
        assert_eq!(assess(88.0, 0.0, 88.4, Some(300.0)).0, Risk::CleanSoon);
        assert_eq!(assess(89.0, 10.0, 88.4, Some(300.0)).0, Risk::CleanSoon);
        assert_eq!(assess(90.0, 45.0, 88.4, None).0, Risk::Watch);
        assert_eq!(assess(91.0, 200.0, 88.4, None).0, Risk::Ok);
        let (_, reason) = assess(88.0, 0.0, 88.4, None);
        assert!(reason.contains("already below"), "{reason}");
    }
}
