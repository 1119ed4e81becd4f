//! Maintenance policy and its scheduler: periodic cleanings of the whole
//! mirror, reflectometer campaigns, and recoats of single segments.
//!
//! * Cleaning (optional): every `interval_days ± jitter_days` (uniform), all
//!   segments, in daytime with the dome closed; each cleaning is followed by
//!   a reflectometer reading when `measure_after_maintenance` is set.
//! * Reflectometer campaign every `reflectometer_interval_days` (default
//!   42 ≈ 6 weeks): every segment is measured; a segment whose measured loss
//!   from fresh at 650 nm reaches `loss_threshold_points` (default 3, the MMT
//!   rule) or whose coating is older than `max_coating_age_years` is
//!   scheduled for a recoat `lead_days` later (at most `max_per_review` per
//!   campaign, worst first).
//! * Maintenance waits for daytime (sun above `min_sun_elevation_deg`) with
//!   the dome fully closed.

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::mirror::{self, BandWeights, MirrorPhysics};
use super::rng::SimRng;
use super::state::{REF_BAND, SegmentState};
use super::sun::{DAY_S, YEAR_DAYS};

/// How segments are cleaned (informative: both follow the same recovery law).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleaningMethod {
    /// CO₂ snow, in situ.
    Co2Snow,
    /// Washing.
    Wash,
}

/// Periodic cleaning of the whole mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningPolicy {
    /// Cleaning method.
    pub method: CleaningMethod,
    /// Mean days between cleanings.
    pub interval_days: f64,
    /// Each interval is drawn uniformly from `interval ± jitter`, days.
    pub jitter_days: f64,
}

impl Default for CleaningPolicy {
    fn default() -> Self {
        Self {
            method: CleaningMethod::Co2Snow,
            interval_days: 45.0,
            jitter_days: 15.0,
        }
    }
}

/// When a segment is recoated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoatPolicy {
    /// Recoat when the measured loss from fresh at 650 nm reaches this, points.
    pub loss_threshold_points: f64,
    /// Recoat when the coating is older than this, years; `None` = no age limit.
    pub max_coating_age_years: Option<f64>,
    /// Days between the decision and the recoat.
    pub lead_days: f64,
    /// At most this many recoats are decided per review (worst segments
    /// first), so a mirror whose segments age together is recoated in
    /// batches, as segment exchange programmes do.
    pub max_per_review: u32,
}

impl Default for RecoatPolicy {
    fn default() -> Self {
        Self {
            loss_threshold_points: 3.0,
            max_coating_age_years: Some(4.0),
            lead_days: 7.0,
            max_per_review: 4,
        }
    }
}

/// Maintenance of the mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenancePolicy {
    /// Periodic cleaning; `None` never cleans on its own.
    pub cleaning: Option<CleaningPolicy>,
    /// Recoat rules; `None` never recoats on its own.
    pub recoat: Option<RecoatPolicy>,
    /// Days between reflectometer campaigns; `None` = no routine measurements
    /// (recoat decisions then use the true loss on the same cadence, 42 days).
    pub reflectometer_interval_days: Option<f64>,
    /// Measure a segment right after cleaning or recoating it.
    pub measure_after_maintenance: bool,
    /// Maintenance happens only with the sun above this elevation, degrees.
    pub min_sun_elevation_deg: f64,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        Self {
            cleaning: Some(CleaningPolicy::default()),
            recoat: Some(RecoatPolicy::default()),
            reflectometer_interval_days: Some(42.0),
            measure_after_maintenance: true,
            min_sun_elevation_deg: 5.0,
        }
    }
}

impl MaintenancePolicy {
    /// No automatic maintenance at all (scripted hooks still work).
    pub fn none() -> Self {
        Self {
            cleaning: None,
            recoat: None,
            reflectometer_interval_days: None,
            ..Self::default()
        }
    }

    fn review_interval_days(&self) -> f64 {
        self.reflectometer_interval_days.unwrap_or(42.0)
    }
}

/// A recoat that has been decided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PendingRecoat {
    /// Segment position, 1-based.
    pub segment: u32,
    /// Not before this Unix time, seconds.
    pub due_unix_s: f64,
}

/// What maintenance is due next (inspectable).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MaintenanceSchedule {
    /// Next whole-mirror cleaning, Unix seconds.
    pub next_cleaning_unix_s: Option<f64>,
    /// Next reflectometer campaign / recoat review, Unix seconds.
    pub next_review_unix_s: f64,
    /// Recoats decided but not done yet.
    pub pending_recoats: Vec<PendingRecoat>,
}

impl MaintenanceSchedule {
    /// First schedule: phases spread at random so sites do not run in lockstep.
    pub(crate) fn new(policy: &MaintenancePolicy, rng: &mut SimRng, start_s: f64) -> Self {
        let next_cleaning_unix_s = policy
            .cleaning
            .as_ref()
            .map(|c| start_s + rng.range(0.25, 1.0) * c.interval_days * DAY_S);
        Self {
            next_cleaning_unix_s,
            next_review_unix_s: start_s
                + rng.range(0.1, 1.0) * policy.review_interval_days() * DAY_S,
            pending_recoats: Vec::new(),
        }
    }

    /// The earliest time anything is due.
    fn next_due(&self) -> f64 {
        let mut t = self.next_review_unix_s;
        if let Some(c) = self.next_cleaning_unix_s {
            t = t.min(c);
        }
        for p in &self.pending_recoats {
            t = t.min(p.due_unix_s);
        }
        t
    }
}

/// Everything maintenance touches.
pub(crate) struct MaintenanceCtx<'a> {
    pub policy: &'a MaintenancePolicy,
    pub physics: &'a MirrorPhysics,
    pub weights: &'a BandWeights,
    pub rng: &'a mut SimRng,
    pub measure_rng: &'a mut SimRng,
    pub events: &'a mut Vec<Event>,
}

fn ns(t_s: f64) -> i64 {
    (t_s * 1e9).round() as i64
}

impl MaintenanceCtx<'_> {
    /// Cleans one segment (and measures it if the policy says so).
    pub(crate) fn clean(&mut self, seg: &mut SegmentState, now_s: f64) {
        let (before, after) = mirror::clean(seg, self.physics, self.weights, self.rng, now_s);
        self.events.push(Event::Cleaning {
            at_unix_ns: ns(now_s),
            segment: seg.position,
            before,
            after,
        });
        if self.policy.measure_after_maintenance {
            self.measure(seg, now_s);
        }
    }

    /// Recoats one segment (and measures it if the policy says so).
    pub(crate) fn recoat(&mut self, seg: &mut SegmentState, now_s: f64) {
        let (before, after) = mirror::recoat(seg, self.weights, now_s);
        self.events.push(Event::Recoat {
            at_unix_ns: ns(now_s),
            segment: seg.position,
            before,
            after,
        });
        if self.policy.measure_after_maintenance {
            self.measure(seg, now_s);
        }
    }

    /// Measures one segment with the reflectometer.
    pub(crate) fn measure(&mut self, seg: &SegmentState, now_s: f64) -> f64 {
        let values = mirror::measure(seg, self.physics, self.weights, self.measure_rng);
        self.events.push(Event::ReflectometerMeasurement {
            at_unix_ns: ns(now_s),
            segment: seg.position,
            values,
        });
        values.to_array()[REF_BAND]
    }

    /// Runs whatever is due at `now_s`.
    pub(crate) fn run_due(
        &mut self,
        schedule: &mut MaintenanceSchedule,
        segments: &mut [SegmentState],
        now_s: f64,
        sun_elevation_deg: f64,
        dome_closed: bool,
    ) {
        if now_s < schedule.next_due()
            || sun_elevation_deg < self.policy.min_sun_elevation_deg
            || !dome_closed
        {
            return;
        }
        if let (Some(due), Some(c)) = (schedule.next_cleaning_unix_s, self.policy.cleaning.as_ref())
            && now_s >= due
        {
            for seg in segments.iter_mut() {
                self.clean(seg, now_s);
            }
            let days = (c.interval_days + self.rng.range(-c.jitter_days, c.jitter_days)).max(1.0);
            schedule.next_cleaning_unix_s = Some(now_s + days * DAY_S);
        }
        if now_s >= schedule.next_review_unix_s {
            let mut candidates = Vec::new();
            for seg in segments.iter() {
                let r650 = if self.policy.reflectometer_interval_days.is_some() {
                    self.measure(seg, now_s)
                } else {
                    self.weights.reflectivity(&seg.fresh, &seg.loss).nm650
                };
                if let Some(urgency) = self.recoat_urgency(schedule, seg, r650, now_s) {
                    candidates.push((urgency, seg.position));
                }
            }
            // most urgent first; ties by position for determinism
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if let Some(rp) = self.policy.recoat.as_ref() {
                for &(_, segment) in candidates.iter().take(rp.max_per_review as usize) {
                    schedule.pending_recoats.push(PendingRecoat {
                        segment,
                        due_unix_s: now_s + rp.lead_days * DAY_S,
                    });
                }
            }
            schedule.next_review_unix_s = now_s + self.policy.review_interval_days() * DAY_S;
        }
        let mut k = 0;
        while k < schedule.pending_recoats.len() {
            let p = schedule.pending_recoats[k];
            if now_s >= p.due_unix_s
                && let Some(seg) = p
                    .segment
                    .checked_sub(1)
                    .and_then(|i| segments.get_mut(i as usize))
            {
                schedule.pending_recoats.remove(k);
                self.recoat(seg, now_s);
            } else {
                k += 1;
            }
        }
    }

    /// `Some(urgency)` when `seg` needs a recoat: measured loss in points,
    /// or +∞ when the coating is past its age limit.
    fn recoat_urgency(
        &self,
        schedule: &MaintenanceSchedule,
        seg: &SegmentState,
        r650: f64,
        now_s: f64,
    ) -> Option<f64> {
        let rp = self.policy.recoat.as_ref()?;
        if schedule
            .pending_recoats
            .iter()
            .any(|p| p.segment == seg.position)
        {
            return None;
        }
        let age_years = (now_s - seg.last_recoat_unix_s) / DAY_S / YEAR_DAYS;
        let loss = seg.fresh.nm650 - r650;
        if rp.max_coating_age_years.is_some_and(|max| age_years >= max) {
            Some(f64::INFINITY)
        } else if loss >= rp.loss_threshold_points {
            Some(loss)
        } else {
            None
        }
    }
}
