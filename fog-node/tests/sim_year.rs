//! One simulated La Palma year with the default maintenance policy, shared
//! by several tests (`cargo test -p fog-node sim`). The run is recorded once
//! (about 5–8 s in a debug build) and every test asserts on the record.

mod sim {
    use std::sync::OnceLock;
    use std::time::Instant;

    use fog_node::sim::{
        CloseReason, DomeState, Environment, EnvironmentConfig, Event, SiteTotals, sun,
    };

    /// What the tests need from the year.
    struct YearRecord {
        config: EnvironmentConfig,
        totals: SiteTotals,
        /// Steps with the sun above the horizon and the shutter not fully closed.
        daytime_open_steps: usize,
        /// Steps with the dome fully open while not night.
        open_not_night_steps: usize,
        /// Every DomeOpened: (RH now, minutes since RH was last ≥ 90 %,
        /// minutes from that reading to the last reading ≤ 80 %).
        openings: Vec<(f64, f64, f64)>,
        /// Steps with RH ≥ 90 % while the dome was commanded open.
        open_command_at_high_rh: usize,
        humidity_closures: usize,
        /// Local-midnight samples: (in calima season, calima active).
        midnights: Vec<(bool, bool)>,
        /// Loss from fresh at 650 nm per segment after the year.
        losses_650: Vec<f64>,
        events: Vec<Event>,
        cleanings_per_segment: Vec<u32>,
    }

    fn year() -> &'static YearRecord {
        static YEAR: OnceLock<YearRecord> = OnceLock::new();
        YEAR.get_or_init(|| {
            let config = EnvironmentConfig {
                seed: 2025,
                ..EnvironmentConfig::default()
            };
            let mut env = Environment::new(config.clone()).expect("valid config");
            let started = Instant::now();
            let mut rec = YearRecord {
                config: config.clone(),
                totals: SiteTotals::default(),
                daytime_open_steps: 0,
                open_not_night_steps: 0,
                openings: Vec::new(),
                open_command_at_high_rh: 0,
                humidity_closures: 0,
                midnights: Vec::new(),
                losses_650: Vec::new(),
                events: Vec::new(),
                cleanings_per_segment: vec![0; 18],
            };
            let mut last_rh90_s = f64::NEG_INFINITY;
            let mut last_rh80_s = f64::NEG_INFINITY;
            let steps = 365 * 1440;
            for k in 0..steps {
                env.step(60.0);
                let s = env.state();
                let now = s.unix_seconds();
                let rh = s.weather.relative_humidity_pct;
                if s.sun_elevation_deg > 0.0 && s.dome.percent_open > 0.0 {
                    rec.daytime_open_steps += 1;
                }
                if !s.is_night && s.dome.state == DomeState::Open {
                    rec.open_not_night_steps += 1;
                }
                if rh >= 90.0 && s.dome.closed_reason.is_none() {
                    rec.open_command_at_high_rh += 1;
                }
                // the readings the dome decided on in this (single) sub-step
                if rh >= 90.0 {
                    last_rh90_s = now;
                }
                if rh <= 80.0 {
                    last_rh80_s = now;
                }
                for ev in env.drain_events() {
                    match &ev {
                        Event::DomeOpened { .. } => {
                            rec.openings.push((rh, (now - last_rh90_s) / 60.0, (last_rh80_s - last_rh90_s) / 60.0))
                        }
                        Event::DomeClosed {
                            reason: CloseReason::Humidity,
                            ..
                        } => rec.humidity_closures += 1,
                        Event::Cleaning { segment, .. } => rec.cleanings_per_segment[*segment as usize - 1] += 1,
                        _ => {}
                    }
                    rec.events.push(ev);
                }
                // local midnight at La Palma is ~01:12 UTC
                if k % 1440 == 71 {
                    let doy = sun::day_of_year(now);
                    rec.midnights.push((config.climate.in_dust_season(doy), env.state().weather.calima_active));
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            let s = env.state();
            rec.totals = s.totals;
            rec.losses_650 = s.segments.iter().map(|g| g.loss_650()).collect();
            let segment_years = s.segments.len() as f64;
            println!(
                "perf: 1 simulated year x {} segments at 60 s steps in {elapsed:.2} s = {:.1} segment-years/s \
                 ({} build)",
                s.segments.len(),
                segment_years / elapsed,
                if cfg!(debug_assertions) { "debug" } else { "release" }
            );
            rec
        })
    }

    #[test]
    fn sim_year_weather_downtime_is_10_to_35_percent_of_night_hours() {
        let t = year().totals;
        let f = t.weather_downtime_fraction();
        println!(
            "weather downtime {:.1} % of {:.0} night hours",
            100.0 * f,
            t.night_hours
        );
        assert!(
            (3000.0..4500.0).contains(&t.night_hours),
            "night hours {}",
            t.night_hours
        );
        assert!((0.10..=0.35).contains(&f), "weather downtime {f}");
        assert!(
            t.open_hours > 0.6 * t.night_hours,
            "open hours {}",
            t.open_hours
        );
    }

    #[test]
    fn sim_year_dome_never_open_in_daytime() {
        let y = year();
        assert_eq!(y.daytime_open_steps, 0);
        assert_eq!(y.open_not_night_steps, 0);
        assert!(
            y.openings.len() > 300,
            "the dome opens most nights: {}",
            y.openings.len()
        );
    }

    #[test]
    fn sim_year_dome_humidity_rule_close_at_90_reopen_at_80_after_20_minutes() {
        let y = year();
        assert!(
            y.humidity_closures > 5,
            "humidity closures {}",
            y.humidity_closures
        );
        assert_eq!(
            y.open_command_at_high_rh, 0,
            "dome commanded open with RH >= 90 %"
        );
        for &(rh, since_90, low_after_90) in &y.openings {
            assert!(rh < 90.0, "opened at RH {rh:.1}");
            assert!(
                since_90 >= 20.0,
                "opened {since_90:.0} min after RH was >= 90 %"
            );
            // the hold clears only on a reading <= 80 % at least 20 min after the last >= 90 %
            assert!(
                low_after_90 >= 20.0,
                "reopened without RH <= 80 % 20 min after RH >= 90 % ({low_after_90:.0} min)"
            );
        }
        let soon_after_humid = y
            .openings
            .iter()
            .filter(|(_, m, _)| *m < 24.0 * 60.0)
            .count();
        assert!(
            soon_after_humid > 0,
            "some reopenings follow humid spells within a day"
        );
    }

    /// DOMAIN.md: aluminium, well maintained, −1 to −2 points per year.
    #[test]
    fn sim_year_well_maintained_loses_1_to_2_points_at_650() {
        let y = year();
        let mean = y.losses_650.iter().sum::<f64>() / y.losses_650.len() as f64;
        println!(
            "well maintained year: mean loss {mean:.2} points, per segment {:?}",
            y.losses_650
        );
        assert!((1.0..=2.0).contains(&mean), "mean loss {mean}");
        for l in &y.losses_650 {
            assert!((0.8..=2.3).contains(l), "segment loss {l}");
        }
        let recoats = y
            .events
            .iter()
            .filter(|e| matches!(e, Event::Recoat { .. }))
            .count();
        assert_eq!(recoats, 0, "no segment reaches 3 points in its first year");
    }

    #[test]
    fn sim_year_maintenance_follows_the_policy() {
        let y = year();
        let cleaning = y
            .config
            .maintenance
            .cleaning
            .as_ref()
            .expect("default cleans");
        let min = (365.0 / (cleaning.interval_days + cleaning.jitter_days)).floor() as u32 - 1;
        let max = (365.0 / (cleaning.interval_days - cleaning.jitter_days)).ceil() as u32;
        for &n in &y.cleanings_per_segment {
            assert!(
                (min..=max).contains(&n),
                "cleanings {n} outside {min}..={max}"
            );
        }
        let measurements = y
            .events
            .iter()
            .filter(|e| matches!(e, Event::ReflectometerMeasurement { segment: 1, .. }))
            .count() as u32;
        // every ~6 weeks (8–9 a year) plus one after each cleaning
        let routine = measurements - y.cleanings_per_segment[0];
        assert!(
            (7..=10).contains(&routine),
            "routine measurements {routine}"
        );
        // every cleaning happens in daylight: its reflectivity never exceeds fresh
        for e in &y.events {
            if let Event::Cleaning { before, after, .. } = e {
                assert!(after.nm650 >= before.nm650 && after.nm650 < 91.5);
            }
        }
    }

    /// DOMAIN.md: > 75 % of summer nights and > 90 % of other nights are dust free.
    #[test]
    fn sim_year_calima_leaves_most_nights_dust_free() {
        let y = year();
        let frac = |season: bool| {
            let nights: Vec<_> = y.midnights.iter().filter(|(s, _)| *s == season).collect();
            nights.iter().filter(|(_, dusty)| !dusty).count() as f64 / nights.len() as f64
        };
        let (summer, other) = (frac(true), frac(false));
        println!("dust-free nights: summer {summer:.2}, other {other:.2}");
        assert!(summer > 0.75, "summer dust-free fraction {summer}");
        assert!(other > 0.90, "other dust-free fraction {other}");
        assert!(
            y.totals.calima_events >= 2,
            "calima happens: {}",
            y.totals.calima_events
        );
    }
}
