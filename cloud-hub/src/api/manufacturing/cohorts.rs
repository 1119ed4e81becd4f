//! `GetCohorts`: segments grouped by coating batch, substrate or
//! figure-error band, with their reflectivity loss at 650 nm per 1000
//! open-dome hours.
//!
//! # The estimator
//!
//! For each segment, the *coating period* starts at its last recoat (or, if
//! it was never recoated, at manufacture). Its reference reflectivity `R0`
//! is the recoat's "after" reading at 650 nm, or the record's fresh
//! reflectivity at 650 nm (what a recoat restores); its coating batch is the
//! recoat's new batch when the recoat named one, else the record's.
//!
//! The measurements of the period are the 650 nm readings taken after its
//! start: the "before" reading of every cleaning, the reading of every
//! inspection ("before", else "after"), and the site's reflectometer
//! (`m1/reflectometer/1`, attribute `segNN_650nm`, hourly means) at the
//! positions where the segment was installed, while it was installed. Each
//! measurement `i` at time `t_i` gives a loss `l_i = R0 − R_i` (points) and
//! the open-dome hours `h_i` the segment lived through between the period's
//! start and `t_i`, summed over its installations (from the exposure
//! totals).
//!
//! The segment's loss rate is the least-squares slope through the origin
//! of loss against open-dome hours, `Σ h_i·l_i / Σ h_i²`, times 1000, over
//! the measurements with `h_i ≥` [`MIN_OPEN_HOURS`]. It is a *net* rate:
//! cleanings in the period recover part of the loss, and readings after a
//! cleaning show it, so cohorts that are cleaned more often show lower
//! rates. A segment with no such measurement counts in `segments` but not
//! in `segments_measured`. A cohort's rate is the mean of its measured
//! segments' rates (0 when none is measured); its `open_dome_hours` the sum
//! of its segments' open-dome hours since their period start.

use std::collections::BTreeMap;

use obs_manufacturing::SegmentRecord;
use obs_proto::v1::{Cohort, CohortGrouping};

use super::error::ManufacturingError;
use super::lifecycle::ExposureReader;
use crate::ingest::Resolution;
use crate::store::segments::{Installation, MaintenanceKind, MaintenanceRecord, SegmentStore};
use crate::store::{SeriesQuery, StoreResult, TelemetryStore};

/// The reference wavelength, nm.
pub const REFERENCE_NM: u32 = 650;
/// Measurements taken after fewer open-dome hours than this are not used.
pub const MIN_OPEN_HOURS: f64 = 1.0;
/// Width of a figure-error band, nm RMS.
pub const FIGURE_ERROR_BAND_NM: f64 = 2.0;
/// The reflectometer device of a site.
pub const REFLECTOMETER: &str = "m1/reflectometer/1";
/// Most reflectometer hours read per installation.
const MAX_READINGS: usize = 100_000;

/// The loss rate of one segment: points per 1000 open-dome hours, from
/// `(open-dome hours, loss in points)` pairs; `None` without a usable pair.
pub fn loss_rate(points: &[(f64, f64)]) -> Option<f64> {
    let used = points
        .iter()
        .filter(|(h, l)| h.is_finite() && l.is_finite() && *h >= MIN_OPEN_HOURS);
    let (hl, hh) = used.fold((0.0, 0.0), |(hl, hh), (h, l)| (hl + h * l, hh + h * h));
    (hh > 0.0).then(|| hl / hh * 1000.0)
}

/// The band of a figure error: `08-10 nm` for 8 ≤ e < 10.
pub fn figure_error_band(nm_rms: f64) -> String {
    let low = (nm_rms / FIGURE_ERROR_BAND_NM).floor() * FIGURE_ERROR_BAND_NM;
    format!(
        "{:02}-{:02} nm",
        low as i64,
        (low + FIGURE_ERROR_BAND_NM) as i64
    )
}

/// One segment's contribution to its cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentLoss {
    pub key: String,
    pub open_dome_hours: f64,
    pub rate_per_1000_h: Option<f64>,
}

/// Cohorts of `segments`, ordered by key.
pub fn summarize(segments: &[SegmentLoss]) -> Vec<Cohort> {
    let mut by_key: BTreeMap<&str, Vec<&SegmentLoss>> = BTreeMap::new();
    for s in segments {
        by_key.entry(&s.key).or_default().push(s);
    }
    by_key
        .into_iter()
        .map(|(key, members)| {
            let rates: Vec<f64> = members.iter().filter_map(|s| s.rate_per_1000_h).collect();
            Cohort {
                key: key.to_owned(),
                segments: members.len() as u32,
                segments_measured: rates.len() as u32,
                open_dome_hours: members.iter().map(|s| s.open_dome_hours).sum(),
                mean_loss_points_per_1000_open_hours: if rates.is_empty() {
                    0.0
                } else {
                    rates.iter().sum::<f64>() / rates.len() as f64
                },
            }
        })
        .collect()
}

/// The 650 nm reading of a maintenance event used as a measurement.
fn measured_650(m: &MaintenanceRecord) -> Option<f64> {
    match m.kind {
        MaintenanceKind::Cleaning => m.before.get(&REFERENCE_NM).copied(),
        MaintenanceKind::Inspection => m
            .before
            .get(&REFERENCE_NM)
            .or_else(|| m.after.get(&REFERENCE_NM))
            .copied(),
        MaintenanceKind::Recoat => None,
    }
}

fn cohort_key(record: &SegmentRecord, grouping: CohortGrouping, batch: &str) -> String {
    match grouping {
        CohortGrouping::Substrate => record.substrate.as_str().to_owned(),
        CohortGrouping::FigureErrorBand => figure_error_band(record.surface_figure_error_nm_rms),
        _ => batch.to_owned(),
    }
}

struct Gatherer<'a> {
    telemetry: &'a dyn TelemetryStore,
    reader: ExposureReader<'a>,
}

impl Gatherer<'_> {
    /// Open-dome hours over `installations` from `start` to `to` (`None`: now).
    async fn open_hours(
        &mut self,
        installations: &[Installation],
        start: i64,
        to: Option<i64>,
    ) -> StoreResult<f64> {
        let mut hours = 0.0;
        for i in installations {
            hours += self.reader.during(i, start, to).await?.open_dome_hours;
        }
        Ok(hours)
    }

    /// Hourly mean reflectometer readings at 650 nm while `i` was there,
    /// from `start`.
    async fn reflectometer(
        &mut self,
        i: &Installation,
        start: i64,
    ) -> StoreResult<Vec<(i64, f64)>> {
        let Some(end) = self.reader.end_of(i).await? else {
            return Ok(Vec::new());
        };
        let query = SeriesQuery {
            site: i.site.clone(),
            device: REFLECTOMETER.into(),
            attribute: format!("seg{:02}_{REFERENCE_NM}nm", i.position),
            from_ns: start.max(i.installed_at_unix_ns),
            to_ns: end.saturating_add(1),
            limit: MAX_READINGS,
        };
        if query.from_ns >= query.to_ns {
            return Ok(Vec::new());
        }
        let points = self
            .telemetry
            .query_rollups(&query, Resolution::Hour)
            .await?;
        Ok(points
            .into_iter()
            .filter(|p| p.aggregate.count > 0)
            .map(|p| {
                let at = p.bucket_start.saturating_mul(1_000_000_000);
                (at, p.aggregate.sum / p.aggregate.count as f64)
            })
            .collect())
    }
}

/// Cohorts of every segment (or of those installed now at one of `sites`).
pub async fn cohorts(
    segments: &dyn SegmentStore,
    telemetry: &dyn TelemetryStore,
    grouping: CohortGrouping,
    sites: &[String],
) -> Result<Vec<Cohort>, ManufacturingError> {
    let mut gatherer = Gatherer {
        telemetry,
        reader: ExposureReader::new(telemetry),
    };
    let mut losses = Vec::new();
    for stored in segments.segments().await? {
        let record = &stored.record;
        let installations = segments.installations_of(&record.serial).await?;
        let installed_now = installations
            .iter()
            .find(|i| i.removed_at_unix_ns.is_none());
        if !sites.is_empty() && !installed_now.is_some_and(|i| sites.contains(&i.site)) {
            continue;
        }
        let maintenance = segments.maintenance_of(&record.serial).await?;
        let last_recoat = maintenance
            .iter()
            .rfind(|m| m.kind == MaintenanceKind::Recoat);
        let start = last_recoat.map_or(i64::MIN, |r| r.at_unix_ns);
        let reference = last_recoat
            .and_then(|r| r.after.get(&REFERENCE_NM).copied())
            .or_else(|| record.fresh_reflectivity_at(REFERENCE_NM));
        let batch = last_recoat
            .map(|r| r.coating_batch.as_str())
            .filter(|b| !b.is_empty())
            .unwrap_or(&record.coating_batch);
        let mut readings: Vec<(i64, f64)> = maintenance
            .iter()
            .filter(|m| m.at_unix_ns > start)
            .filter_map(|m| measured_650(m).map(|r| (m.at_unix_ns, r)))
            .collect();
        for i in &installations {
            readings.extend(gatherer.reflectometer(i, start).await?);
        }
        let mut points = Vec::with_capacity(readings.len());
        if let Some(r0) = reference {
            for (at, reading) in readings {
                let hours = gatherer.open_hours(&installations, start, Some(at)).await?;
                points.push((hours, r0 - reading));
            }
        }
        losses.push(SegmentLoss {
            key: cohort_key(record, grouping, batch),
            open_dome_hours: gatherer.open_hours(&installations, start, None).await?,
            rate_per_1000_h: loss_rate(&points),
        });
    }
    Ok(summarize(&losses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_slope_through_the_origin_per_1000_hours() {
        // 1 point after 500 h and 2 points after 1000 h: exactly 2 / 1000 h.
        assert_eq!(loss_rate(&[(500.0, 1.0), (1000.0, 2.0)]), Some(2.0));
        // Readings before an hour of exposure are not used.
        assert_eq!(loss_rate(&[(0.5, 3.0)]), None);
        assert_eq!(loss_rate(&[]), None);
        let noisy = loss_rate(&[(100.0, 0.3), (200.0, 0.3), (0.0, 5.0)]).unwrap();
        assert!((noisy - 1.8).abs() < 1e-9, "{noisy}");
    }

    #[test]
    fn bands_are_two_nanometres_wide_and_sort_numerically() {
        assert_eq!(figure_error_band(8.0), "08-10 nm");
        assert_eq!(figure_error_band(9.99), "08-10 nm");
        assert_eq!(figure_error_band(12.7), "12-14 nm");
        assert!(figure_error_band(9.0) < figure_error_band(10.0));
    }

    #[test]
    fn cohorts_average_the_measured_segments() {
        let loss = |key: &str, hours: f64, rate: Option<f64>| SegmentLoss {
            key: key.into(),
            open_dome_hours: hours,
            rate_per_1000_h: rate,
        };
        let cohorts = summarize(&[
            loss("AL-2023-02", 100.0, Some(1.0)),
            loss("AL-2023-01", 50.0, None),
            loss("AL-2023-02", 300.0, Some(3.0)),
            loss("AL-2023-02", 0.0, None),
        ]);
        assert_eq!(cohorts.len(), 2);
        assert_eq!(
            (
                cohorts[0].key.as_str(),
                cohorts[0].segments,
                cohorts[0].segments_measured
            ),
            ("AL-2023-01", 1, 0)
        );
        assert_eq!(cohorts[0].mean_loss_points_per_1000_open_hours, 0.0);
        let c = &cohorts[1];
        assert_eq!(
            (c.segments, c.segments_measured, c.open_dome_hours),
            (3, 2, 400.0)
        );
        assert_eq!(c.mean_loss_points_per_1000_open_hours, 2.0);
    }
}
