//! Where each segment sits in the drawing, and what colour it gets.
//!
//! # Hex layout
//! The primary is a honeycomb of flat-topped hexagons around a central hole
//! (no segment 0). Ring `k` holds `6k` segments: positions 1-6 are the inner
//! ring, 7-18 the outer ring of an 18-segment mirror (19-36 a third ring,
//! as on a 36-segment mirror). In each ring the first position is at
//! 12 o'clock and the numbers run **clockwise as seen on the drawing**.
//!
//! With `d` the centre-to-centre distance (flat-to-flat width plus the gap),
//! screen coordinates (x right, y down) and the mirror centre at (0, 0), the
//! six corner segments of ring `k` are
//! `C_j = k·d·(sin 60°j, −cos 60°j)`, `j = 0..6`,
//! and the `i`-th segment of the ring (`i = 0..6k`, `j = i div k`,
//! `s = i mod k`) is at `C_j + (s/k)·(C_{j+1} − C_j)`: every step along a
//! side is one neighbour (distance `d`). Position `p` is in ring
//! `k = min{k : 3k(k+1) ≥ p}` at index `i = p − 1 − 3k(k−1)`.
//!
//! # Colour rule
//! A segment is filled by its predicted days to the maintenance threshold,
//! with the bounds of the risk levels ([`crate::health::risk`]):
//! red ≤ 14 days (or already below), orange ≤ 60 days, green beyond,
//! grey without a prediction. A segment at recoat risk (a cleaning would
//! not bring it back above its threshold, or its coating is too old) keeps
//! that fill and is marked by a thick dashed purple outline and an "R".

use serde::Serialize;

use crate::health::risk::{CLEAN_SOON_DAYS, WATCH_DAYS};

/// A segment's place in the drawing, in units of the centre-to-centre
/// distance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HexCentre {
    /// 1 = inner ring.
    pub ring: u32,
    pub x: f64,
    pub y: f64,
}

/// The ring of 1-based `position` (1-6 → 1, 7-18 → 2, 19-36 → 3, ...);
/// `None` for position 0.
pub fn ring_of(position: u32) -> Option<u32> {
    if position == 0 {
        return None;
    }
    let position = u64::from(position);
    (1u32..).find(|&k| 3 * u64::from(k) * (u64::from(k) + 1) >= position)
}

/// The centre of 1-based `position` (see the module docs); `None` for 0.
pub fn hex_centre(position: u32) -> Option<HexCentre> {
    let ring = ring_of(position)?;
    let k = f64::from(ring);
    let index = position - 1 - 3 * ring * (ring - 1);
    let (side, step) = (index / ring, index % ring);
    let corner = |j: u32| {
        let angle = (60.0 * f64::from(j % 6)).to_radians();
        (k * angle.sin(), -k * angle.cos())
    };
    let (a, b) = (corner(side), corner(side + 1));
    let t = f64::from(step) / k;
    // Rounded so that a point on an axis reads as 0 rather than 1e-16.
    let round = |v: f64| (v * 1e9).round() / 1e9;
    Some(HexCentre {
        ring,
        x: round(a.0 + t * (b.0 - a.0)),
        y: round(a.1 + t * (b.1 - a.1)),
    })
}

/// The colour band of a predicted days-to-threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// ≤ 14 days, or already below the threshold.
    Urgent,
    /// ≤ 60 days.
    Soon,
    /// More than 60 days.
    Later,
    /// No prediction (or not a number).
    Unknown,
}

impl Band {
    /// The band of `days` (see the module docs).
    pub fn of(days: Option<f64>) -> Band {
        match days {
            Some(d) if d.is_nan() => Band::Unknown,
            Some(d) if d <= CLEAN_SOON_DAYS => Band::Urgent,
            Some(d) if d <= WATCH_DAYS => Band::Soon,
            Some(_) => Band::Later,
            None => Band::Unknown,
        }
    }

    /// The fill, `#rrggbb`.
    pub fn colour(self) -> &'static str {
        match self {
            Band::Urgent => "#d73027",
            Band::Soon => "#f28e2b",
            Band::Later => "#1a9850",
            Band::Unknown => "#9e9e9e",
        }
    }

    /// What it means, for the legend.
    pub fn label(self) -> &'static str {
        match self {
            Band::Urgent => "≤ 14 days to threshold (or below)",
            Band::Soon => "≤ 60 days",
            Band::Later => "> 60 days",
            Band::Unknown => "no prediction",
        }
    }
}

/// The outline marking a segment at recoat risk.
pub const RECOAT_OUTLINE: &str = "#6a1b9a";

/// One row of the legend.
#[derive(Debug, Clone, Serialize)]
pub struct LegendEntry {
    pub band: Band,
    pub colour: &'static str,
    pub label: &'static str,
}

/// The legend, in order of urgency.
pub fn legend() -> Vec<LegendEntry> {
    [Band::Urgent, Band::Soon, Band::Later, Band::Unknown]
        .into_iter()
        .map(|band| LegendEntry {
            band,
            colour: band.colour(),
            label: band.label(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: HexCentre, b: HexCentre) -> f64 {
        (a.x - b.x).hypot(a.y - b.y)
    }

    #[test]
    fn positions_fill_rings_of_six_twelve_eighteen() {
        assert_eq!(ring_of(0), None);
        assert!((1..=6).all(|p| ring_of(p) == Some(1)));
        assert!((7..=18).all(|p| ring_of(p) == Some(2)));
        assert!((19..=36).all(|p| ring_of(p) == Some(3)));
        assert_eq!(ring_of(37), Some(4));
    }

    #[test]
    fn the_first_of_each_ring_is_at_twelve_o_clock_and_numbers_run_clockwise() {
        let at = |p| hex_centre(p).expect("a position");
        assert_eq!((at(1).x, at(1).y), (0.0, -1.0));
        assert_eq!((at(7).x, at(7).y), (0.0, -2.0));
        // Clockwise on screen (y down): the second is to the right.
        assert!(at(2).x > 0.0 && at(2).y < 0.0);
        assert!(at(8).x > 0.0 && at(8).y < -1.0);
        assert_eq!((at(4).x, at(4).y), (0.0, 1.0), "6 o'clock");
        assert!(at(6).x < 0.0 && at(6).y < 0.0, "the last is to the left");
    }

    #[test]
    fn eighteen_segments_tile_a_honeycomb_with_a_central_hole() {
        let centres: Vec<HexCentre> = (1..=18).filter_map(hex_centre).collect();
        assert_eq!(centres.len(), 18);
        for (i, a) in centres.iter().enumerate() {
            let radius = a.x.hypot(a.y);
            match a.ring {
                1 => assert!((radius - 1.0).abs() < 1e-9, "{a:?}"),
                // Outer corners at 2, outer mid-sides at √3.
                _ => assert!(
                    (radius - 2.0).abs() < 1e-9 || (radius - 3f64.sqrt()).abs() < 1e-9,
                    "{a:?}"
                ),
            }
            for b in &centres[i + 1..] {
                assert!(distance(*a, *b) > 1.0 - 1e-9, "overlap: {a:?} {b:?}");
            }
            // Every segment touches at least two others (no stray cell).
            let neighbours = centres
                .iter()
                .filter(|b| (distance(*a, **b) - 1.0).abs() < 1e-9)
                .count();
            assert!(neighbours >= 2, "{a:?} has {neighbours} neighbours");
        }
        // Consecutive positions of a ring are neighbours, and so are the
        // last and the first.
        for ring in [1..=6u32, 7..=18] {
            let positions: Vec<u32> = ring.collect();
            for w in positions.windows(2) {
                let (a, b) = (hex_centre(w[0]).unwrap(), hex_centre(w[1]).unwrap());
                assert!((distance(a, b) - 1.0).abs() < 1e-9, "{w:?}");
            }
            let (first, last) = (positions[0], positions[positions.len() - 1]);
            let (a, b) = (hex_centre(first).unwrap(), hex_centre(last).unwrap());
            assert!((distance(a, b) - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn the_colour_follows_the_predicted_days() {
        assert_eq!(Band::of(None), Band::Unknown);
        assert_eq!(Band::of(Some(f64::NAN)), Band::Unknown);
        assert_eq!(Band::of(Some(-3.0)), Band::Urgent);
        assert_eq!(Band::of(Some(0.0)), Band::Urgent);
        assert_eq!(Band::of(Some(14.0)), Band::Urgent);
        assert_eq!(Band::of(Some(14.5)), Band::Soon);
        assert_eq!(Band::of(Some(60.0)), Band::Soon);
        assert_eq!(Band::of(Some(60.1)), Band::Later);
        assert_eq!(Band::of(Some(f64::INFINITY)), Band::Later);
        assert_eq!(Band::of(Some(5.0)).colour(), "#d73027");
        assert_eq!(Band::of(Some(30.0)).colour(), "#f28e2b");
        assert_eq!(Band::of(Some(300.0)).colour(), "#1a9850");
        assert_eq!(Band::of(None).colour(), "#9e9e9e");
        let colours: std::collections::HashSet<&str> = legend().iter().map(|e| e.colour).collect();
        assert_eq!(colours.len(), 4, "four distinct colours");
        assert!(!colours.contains(RECOAT_OUTLINE));
    }
}
