//! `GetSegmentLifecycle`: a segment's record and versions, its installations
//! across telescopes with the exposure accumulated in each, its
//! maintenance, and the health model's predictions for it.
//!
//! Exposure comes from the telemetry pipeline's cumulative totals per
//! `(site, position)` ([`TelemetryStore::exposure_at`]): the exposure of an
//! installation is the total at its end (its removal, or the site's latest
//! sample time while it is installed) minus the total at its start. Totals
//! are stored per hour; inside an hour they are interpolated (see
//! [`ExposureReader`]).

use std::collections::HashMap;

use obs_proto::v1::{InstallationPeriod, SegmentLifecycle};

use super::convert;
use super::error::ManufacturingError;
use crate::ingest::ExposureTotals;
use crate::store::predictions::PredictionStore;
use crate::store::segments::{Installation, SegmentStore};
use crate::store::{StoreResult, TelemetryStore};

const NS_PER_S: i64 = 1_000_000_000;
/// Most predictions a lifecycle shows (the newest).
const MAX_PREDICTIONS: usize = 1000;
const SECONDS_PER_HOUR: i64 = 3600;

/// `a + (b − a) × fraction`, field by field (counts rounded).
fn interpolate(a: &ExposureTotals, b: &ExposureTotals, fraction: f64) -> ExposureTotals {
    let f = |x: f64, y: f64| x + (y - x) * fraction;
    let n = |x: u32, y: u32| f(f64::from(x), f64::from(y)).round() as u32;
    ExposureTotals {
        open_dome_hours: f(a.open_dome_hours, b.open_dome_hours),
        dust_dose_ug_m3_h: f(a.dust_dose_ug_m3_h, b.dust_dose_ug_m3_h),
        calima_events: n(a.calima_events, b.calima_events),
        humid_hours: f(a.humid_hours, b.humid_hours),
        dew_risk_hours: f(a.dew_risk_hours, b.dew_risk_hours),
        days_with_data: n(a.days_with_data, b.days_with_data),
    }
}

/// Reads exposure over periods, caching each site's latest sample time.
pub struct ExposureReader<'a> {
    telemetry: &'a dyn TelemetryStore,
    latest: HashMap<String, Option<i64>>,
}

impl<'a> ExposureReader<'a> {
    pub fn new(telemetry: &'a dyn TelemetryStore) -> Self {
        ExposureReader {
            telemetry,
            latest: HashMap::new(),
        }
    }

    /// The site's latest sample time (Unix ns), if it sent any.
    pub async fn site_latest(&mut self, site: &str) -> StoreResult<Option<i64>> {
        if let Some(latest) = self.latest.get(site) {
            return Ok(*latest);
        }
        let latest = self
            .telemetry
            .load_site_state(site)
            .await?
            .map(|s| s.counters.last_sample_ts_ns)
            .filter(|ts| *ts > 0);
        self.latest.insert(site.to_owned(), latest);
        Ok(latest)
    }

    /// The cumulative totals of a position at `at_ns`. The store keeps one
    /// row per hour (the totals at the last data of that hour); inside the
    /// hour holding `at_ns` the totals are interpolated linearly between the
    /// previous hour's row and that hour's row, over the part of the hour
    /// the site has sent data for.
    async fn totals_at(
        &mut self,
        site: &str,
        position: u32,
        at_ns: i64,
    ) -> StoreResult<ExposureTotals> {
        let at_s = at_ns.div_euclid(NS_PER_S);
        let Some(row) = self.telemetry.exposure_at(site, position, at_s).await? else {
            return Ok(ExposureTotals::default());
        };
        let hour = at_s.div_euclid(SECONDS_PER_HOUR) * SECONDS_PER_HOUR;
        let before = self
            .telemetry
            .exposure_at(site, position, hour - 1)
            .await?
            .unwrap_or_default();
        if before == row {
            // No row for the hour of `at_ns`: nothing changed since.
            return Ok(row);
        }
        let latest_s = self
            .site_latest(site)
            .await?
            .map_or(i64::MAX, |ns| ns.div_euclid(NS_PER_S) + 1);
        let span = (hour + SECONDS_PER_HOUR).min(latest_s) - hour;
        let fraction = if span > 0 {
            ((at_s - hour) as f64 / span as f64).clamp(0.0, 1.0)
        } else {
            1.0
        };
        Ok(interpolate(&before, &row, fraction))
    }

    /// The end of `installation` for exposure: its removal, or the site's
    /// latest sample time while installed; `None` when the site sent nothing.
    pub async fn end_of(&mut self, installation: &Installation) -> StoreResult<Option<i64>> {
        let latest = self.site_latest(&installation.site).await?;
        Ok(match installation.removed_at_unix_ns {
            Some(removed) => Some(removed.min(latest.unwrap_or(removed))),
            None => latest,
        })
    }

    /// Exposure of `installation` between `from_ns` and `to_ns` (clipped to
    /// the installation; `to_ns = None` = its end).
    pub async fn during(
        &mut self,
        installation: &Installation,
        from_ns: i64,
        to_ns: Option<i64>,
    ) -> StoreResult<ExposureTotals> {
        let Some(end) = self.end_of(installation).await? else {
            return Ok(ExposureTotals::default());
        };
        let end = to_ns.map_or(end, |to| to.min(end));
        let start = from_ns.max(installation.installed_at_unix_ns);
        if end <= start {
            return Ok(ExposureTotals::default());
        }
        let (site, position) = (installation.site.as_str(), installation.position);
        let at_end = self.totals_at(site, position, end).await?;
        let at_start = self.totals_at(site, position, start).await?;
        Ok(at_end.since(&at_start))
    }
}

/// The lifecycle of `serial`.
pub async fn lifecycle(
    segments: &dyn SegmentStore,
    telemetry: &dyn TelemetryStore,
    predictions: Option<&dyn PredictionStore>,
    serial: &str,
) -> Result<SegmentLifecycle, ManufacturingError> {
    if serial.is_empty() {
        return Err(ManufacturingError::invalid("serial", "is required"));
    }
    let mut versions = segments.segment_versions(serial).await?;
    let Some(current) = versions.pop() else {
        return Err(ManufacturingError::NotFound(format!(
            "segment {serial} has no manufacturing record; upload it first"
        )));
    };
    let mut reader = ExposureReader::new(telemetry);
    let mut installations = Vec::new();
    for installation in segments.installations_of(serial).await? {
        let exposure = reader.during(&installation, i64::MIN, None).await?;
        installations.push(InstallationPeriod {
            installation: Some(convert::installation(&installation)),
            exposure: Some(convert::exposure(&exposure)),
        });
    }
    let maintenance = segments
        .maintenance_of(serial)
        .await?
        .iter()
        .map(convert::maintenance)
        .collect();
    let predictions = match predictions {
        Some(store) => store
            .predictions_of(serial, MAX_PREDICTIONS)
            .await?
            .iter()
            .map(|p| crate::api::fleet::prediction_message(p, true))
            .collect(),
        None => Vec::new(),
    };
    Ok(SegmentLifecycle {
        record: Some(convert::stored_segment(&current)),
        previous_versions: versions.iter().map(convert::stored_segment).collect(),
        installations,
        maintenance,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_is_linear_and_rounds_counts() {
        let a = ExposureTotals {
            open_dome_hours: 1.0,
            calima_events: 1,
            ..Default::default()
        };
        let b = ExposureTotals {
            open_dome_hours: 2.0,
            calima_events: 2,
            days_with_data: 1,
            ..Default::default()
        };
        let mid = interpolate(&a, &b, 0.25);
        assert_eq!((mid.open_dome_hours, mid.calima_events), (1.25, 1));
        assert_eq!(interpolate(&a, &b, 1.0), b);
        assert_eq!(interpolate(&a, &b, 0.0), a);
    }
}
