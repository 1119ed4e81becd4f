//! What the demo shows while it runs: a compact fleet-health table every
//! few seconds and a progress bar per telescope. Every number comes from
//! the hub's answers (`GetFleetHealth`, `GetIngestStats`); the table only
//! formats them, in the order the hub sorted them.

use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use obs_proto::v1::{GetFleetHealthResponse, GetIngestStatsResponse, Risk, SiteHealth};

use super::sites::Clock;

/// Segments shown per telescope, most urgent first.
pub const URGENT_SHOWN: usize = 5;

/// The legend printed once before the first table.
pub const LEGEND: &str = "each telescope: simulated date and day, MQTT connection, samples stored, \
node backlog (batches), segments predicted;\n\
then its most urgent segments as position·serial tail, risk (O ok, W watch, C clean soon, \
R recoat), predicted R650 %, days to the cleaning threshold";

/// One reading of the hub.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Wall time since the fog-nodes started.
    pub elapsed: Duration,
    pub fleet: GetFleetHealthResponse,
    pub ingest: GetIngestStatsResponse,
}

/// The risk as one letter.
pub fn risk_letter(risk: i32) -> char {
    match Risk::try_from(risk) {
        Ok(Risk::Ok) => 'O',
        Ok(Risk::Watch) => 'W',
        Ok(Risk::CleanSoon) => 'C',
        Ok(Risk::Recoat) => 'R',
        _ => '-',
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn minutes_seconds(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// `2024-09-04 07:12Z` of Unix seconds.
pub fn short_time(unix_s: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(unix_s) else {
        return unix_s.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `6` or `2.5`.
pub fn days_text(days: f64) -> String {
    if days.fract() == 0.0 {
        format!("{days:.0}")
    } else {
        format!("{days:.1}")
    }
}

/// One urgent segment: `07·0027 W 88.9 42d`.
pub fn segment_entry(segment: &obs_proto::v1::SegmentHealth) -> String {
    let tail: String = {
        let chars: Vec<char> = segment.serial.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    match &segment.prediction {
        Some(p) => format!(
            "{:02}·{tail} {} {:.1} {:.0}d",
            segment.position,
            risk_letter(segment.risk),
            p.reflectivity_650_pct,
            p.days_to_threshold
        ),
        None => format!("{:02}·{tail} - - -", segment.position),
    }
}

/// The header line of one telescope.
fn site_line(site: &SiteHealth, snapshot: &Snapshot, clock: &Clock) -> String {
    let as_of = site.as_of.as_ref().map(|t| t.seconds);
    let when = match as_of {
        Some(s) => format!(
            "{} day {:.1}/{}",
            short_time(s),
            clock.day_of(s),
            days_text(clock.days)
        ),
        None => "no data yet".to_owned(),
    };
    let pipeline = site.pipeline.unwrap_or_default();
    let samples = snapshot
        .ingest
        .sites
        .iter()
        .find(|s| s.site == site.site)
        .map(|s| s.samples_stored)
        .unwrap_or(0);
    let predicted = site
        .segments
        .iter()
        .filter(|s| s.prediction.is_some())
        .count();
    format!(
        "{:<10} {when}  {}  {} samples  backlog {}  {predicted} predicted",
        site.site,
        if pipeline.connected {
            "connected"
        } else {
            "offline"
        },
        thousands(samples),
        pipeline.backlog_batches,
    )
}

/// The table for `snapshot`, titled `title`.
pub fn render(snapshot: &Snapshot, clock: &Clock, title: &str) -> String {
    let fleet = &snapshot.fleet;
    let model = if fleet.model_sha256.is_empty() {
        "no predictions yet".to_owned()
    } else {
        format!(
            "model {} {} (trained on simulated data)",
            fleet.model_version,
            &fleet.model_sha256[..fleet.model_sha256.len().min(12)]
        )
    };
    let mut out = format!(
        "── {title} · wall {} · {model}\n",
        minutes_seconds(snapshot.elapsed)
    );
    for site in &fleet.sites {
        out.push_str(&site_line(site, snapshot, clock));
        out.push('\n');
        let urgent: Vec<String> = site
            .segments
            .iter()
            .take(URGENT_SHOWN)
            .map(segment_entry)
            .collect();
        if urgent.is_empty() {
            out.push_str("  (no predictions yet)\n");
        } else {
            out.push_str("  ");
            out.push_str(&urgent.join("  "));
            out.push('\n');
        }
    }
    out
}

/// Console output: lines on stdout, progress bars on stderr (drawn only on
/// a terminal), or nothing at all for a demo run from code.
pub struct Console {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
    visible: bool,
}

impl Console {
    /// A console that prints when `visible`.
    pub fn new(visible: bool) -> Console {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Console {
            multi: MultiProgress::with_draw_target(target),
            bars: Vec::new(),
            visible,
        }
    }

    /// Prints `text` (one or more lines) above the progress bars.
    pub fn print(&self, text: &str) {
        if !self.visible {
            return;
        }
        self.multi.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (`| head`) must not stop the demo.
            let _ = writeln!(stdout, "{}", text.trim_end_matches('\n'));
            let _ = stdout.flush();
        });
    }

    /// Adds a progress bar per site: simulated days done and samples stored.
    pub fn start_progress(&mut self, sites: &[&str], clock: &Clock) {
        let style = ProgressStyle::with_template("{prefix:<10} [{bar:32}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        for site in sites {
            let bar = self
                .multi
                .add(ProgressBar::new((clock.days * 10.0).round() as u64));
            bar.set_style(style.clone());
            bar.set_prefix(site.to_string());
            bar.set_message(format!(
                "day 0.0/{} · waiting for data",
                days_text(clock.days)
            ));
            self.bars.push((site.to_string(), bar));
        }
    }

    /// Moves the bars to what `ingest` says.
    pub fn update_progress(&self, ingest: &GetIngestStatsResponse, clock: &Clock) {
        for (site, bar) in &self.bars {
            let Some(stats) = ingest.sites.iter().find(|s| &s.site == site) else {
                continue;
            };
            let Some(last) = stats.last_sample_at.as_ref() else {
                continue;
            };
            let day = clock.day_of(last.seconds).clamp(0.0, clock.days);
            bar.set_position((day * 10.0).round() as u64);
            bar.set_message(format!(
                "day {day:.1}/{} · {} samples",
                days_text(clock.days),
                thousands(stats.samples_stored)
            ));
        }
    }

    /// Removes the progress bars.
    pub fn finish_progress(&mut self) {
        for (_, bar) in self.bars.drain(..) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use obs_proto::v1::{PipelineState, Prediction, SegmentHealth, SiteIngestStats};
    use prost_types::Timestamp;

    fn segment(position: u32, risk: Risk, r650: f64, days: f64) -> SegmentHealth {
        SegmentHealth {
            site: "lapalma".into(),
            position,
            serial: format!("CSOA-M1-T2-00{position:02}"),
            risk: risk as i32,
            prediction: Some(Prediction {
                reflectivity_650_pct: r650,
                days_to_threshold: days,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_table_shows_the_hubs_numbers_in_its_order() {
        let clock = Clock::new(1_725_148_800, 6.0, 1.0);
        let snapshot = Snapshot {
            elapsed: Duration::from_secs(75),
            fleet: GetFleetHealthResponse {
                model_sha256: "84f5b4b2a822491b4b2c".into(),
                model_version: "1.0.0".into(),
                sites: vec![SiteHealth {
                    site: "lapalma".into(),
                    as_of: Some(Timestamp {
                        seconds: 1_725_148_800 + 3 * 86_400 + 7 * 3600,
                        nanos: 0,
                    }),
                    pipeline: Some(PipelineState {
                        connected: true,
                        backlog_batches: 2,
                        ..Default::default()
                    }),
                    segments: (1..=6)
                        .map(|p| segment(p, Risk::Watch, 88.94, 41.6 + p as f64))
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ingest: GetIngestStatsResponse {
                sites: vec![SiteIngestStats {
                    site: "lapalma".into(),
                    samples_stored: 1_234_567,
                    ..Default::default()
                }],
            },
        };
        let text = render(&snapshot, &clock, "fleet health");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "── fleet health · wall 1:15 · model 1.0.0 84f5b4b2a822 (trained on simulated data)"
        );
        assert_eq!(
            lines[1],
            "lapalma    2024-09-04 07:00Z day 3.3/6  connected  1,234,567 samples  backlog 2  6 predicted"
        );
        assert_eq!(
            lines[2],
            "  01·0001 W 88.9 43d  02·0002 W 88.9 44d  03·0003 W 88.9 45d  04·0004 W 88.9 46d  05·0005 W 88.9 47d"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
