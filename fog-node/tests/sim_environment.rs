//! Environment model: determinism, configuration, hooks and the short-term
//! physics of DOMAIN.md (`cargo test -p fog-node sim`).

mod sim {
    use fog_node::sim::{
        Environment, EnvironmentConfig, Event, MaintenancePolicy, Reflectivity, SegmentInit,
        SimError, SiteClimate,
    };

    const JAN_2025: i64 = 1_735_689_600;
    const OCT_2025: i64 = 1_759_276_800;
    const DAY: f64 = 86_400.0;

    fn env(config: EnvironmentConfig) -> Environment {
        Environment::new(config).expect("valid config")
    }

    /// Runs `days` at 60 s steps, returning every event.
    fn run(env: &mut Environment, days: f64) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..(days * 1440.0) as usize {
            env.step(60.0);
            events.extend(env.drain_events());
        }
        events
    }

    fn mean_loss_650(env: &Environment) -> f64 {
        let s = &env.state().segments;
        s.iter().map(|g| g.loss_650()).sum::<f64>() / s.len() as f64
    }

    #[test]
    fn sim_same_seed_gives_identical_state_and_events() {
        let config = EnvironmentConfig {
            seed: 42,
            ..EnvironmentConfig::default()
        };
        let mut a = env(config.clone());
        let mut b = env(config);
        for e in [&mut a, &mut b] {
            e.force_calima(JAN_2025 + 3600, 2.0 * DAY, 80.0)
                .expect("valid calima");
        }
        let ea = run(&mut a, 2.0);
        let eb = run(&mut b, 2.0);
        a.clean_now(3).expect("segment 3 exists");
        b.clean_now(3).expect("segment 3 exists");
        let ea2 = run(&mut a, 1.0);
        let eb2 = run(&mut b, 1.0);
        assert_eq!(a.state(), b.state());
        assert_eq!(ea, eb);
        assert_eq!(ea2, eb2);
        assert!(!ea.is_empty(), "two days produce events (dome, calima)");
        let ja = serde_json::to_string(a.state()).expect("state serialises");
        let jb = serde_json::to_string(b.state()).expect("state serialises");
        assert_eq!(ja, jb);
    }

    #[test]
    fn sim_different_seed_gives_different_state() {
        let mut a = env(EnvironmentConfig {
            seed: 1,
            ..EnvironmentConfig::default()
        });
        let mut b = env(EnvironmentConfig {
            seed: 2,
            ..EnvironmentConfig::default()
        });
        run(&mut a, 1.0);
        run(&mut b, 1.0);
        assert_ne!(a.state().weather, b.state().weather);
        assert_ne!(a.state().segments[0].traits, b.state().segments[0].traits);
        assert_eq!(a.state().time_unix_ns, b.state().time_unix_ns);
    }

    #[test]
    fn sim_step_advances_exact_time_in_substeps() {
        let mut e = env(EnvironmentConfig::default());
        let t0 = e.state().time_unix_ns;
        e.step(3600.0);
        e.step(0.25);
        e.step(-5.0);
        e.step(f64::NAN);
        assert_eq!(e.state().time_unix_ns - t0, 3_600_250_000_000);
        let hours = e.state().totals.hours;
        assert!((hours - 3600.25 / 3600.0).abs() < 1e-9, "{hours}");
    }

    #[test]
    fn sim_config_errors_name_the_field() {
        let bad = EnvironmentConfig {
            segments: 0,
            ..EnvironmentConfig::default()
        };
        let err = Environment::new(bad).expect_err("zero segments rejected");
        assert!(
            matches!(&err, SimError::InvalidConfig { field, .. } if field == "segments"),
            "{err}"
        );

        let bad = EnvironmentConfig {
            initial_segments: vec![SegmentInit::default(); 3],
            ..EnvironmentConfig::default()
        };
        let err = Environment::new(bad).expect_err("wrong init count rejected");
        assert!(err.to_string().contains("initial_segments"), "{err}");

        let mut e = env(EnvironmentConfig::default());
        assert_eq!(
            e.clean_now(0),
            Err(SimError::NoSuchSegment {
                segment: 0,
                segments: 18
            })
        );
        assert_eq!(
            e.recoat_now(19),
            Err(SimError::NoSuchSegment {
                segment: 19,
                segments: 18
            })
        );
        assert!(e.force_calima(JAN_2025, -1.0, 10.0).is_err());

        let keck = env(EnvironmentConfig {
            segments: 36,
            ..EnvironmentConfig::default()
        });
        assert_eq!(keck.state().segments.len(), 36);
        assert_eq!(keck.state().segments[35].traits.ring, 3);

        let json = serde_json::to_string(&EnvironmentConfig::default()).expect("serialise");
        let back: EnvironmentConfig = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, EnvironmentConfig::default());
        let partial: EnvironmentConfig =
            serde_json::from_str(r#"{"seed": 9, "segments": 36}"#).expect("parse");
        assert_eq!(partial.seed, 9);
        assert_eq!(partial.climate, SiteClimate::la_palma());
    }

    /// DOMAIN.md: dusty or poorly maintained, −0.5 to −1 point per month.
    #[test]
    fn sim_dusty_month_loses_half_to_one_point_at_650() {
        for (seed, start) in [(1, JAN_2025), (2, OCT_2025), (3, OCT_2025)] {
            let mut e = env(EnvironmentConfig {
                seed,
                start_unix_s: start,
                climate: SiteClimate::dusty_desert(),
                maintenance: MaintenancePolicy::none(),
                ..EnvironmentConfig::default()
            });
            for _ in 0..30 * 24 {
                e.step(3600.0);
            }
            let mean = mean_loss_650(&e);
            let t = e.state().totals;
            assert!(
                t.open_hours > 150.0,
                "seed {seed}: the dome was open at night: {t:?}"
            );
            assert!(
                (0.5..=1.0).contains(&mean),
                "seed {seed}: dusty month lost {mean:.3} points at 650 nm"
            );
            for s in &e.state().segments {
                assert!(
                    (0.4..=1.1).contains(&s.loss_650()),
                    "segment {} lost {}",
                    s.position,
                    s.loss_650()
                );
            }
            // Shorter wavelengths lose more.
            let s = &e.state().segments[0];
            let drop: Vec<f64> = s
                .fresh
                .to_array()
                .iter()
                .zip(s.reflectivity.to_array())
                .map(|(f, r)| f - r)
                .collect();
            assert!(
                drop[0] > drop[1] && drop[1] > drop[2] && drop[2] > drop[3],
                "{drop:?}"
            );
        }
    }

    /// DOMAIN.md: deposition only matters while the dome is open.
    #[test]
    fn sim_no_dust_deposition_while_the_dome_stays_closed() {
        let mut config = EnvironmentConfig {
            climate: SiteClimate::dusty_desert(),
            maintenance: MaintenancePolicy::none(),
            ..EnvironmentConfig::default()
        };
        config.dome.night_sun_elevation_deg = -91.0; // never night
        let mut e = env(config);
        for _ in 0..10 * 24 {
            e.step(3600.0);
        }
        let s = &e.state().segments[0];
        assert_eq!(e.state().totals.open_hours, 0.0);
        assert_eq!(s.loss.dust, 0.0);
        assert_eq!(s.loss.ingrained, 0.0);
        assert_eq!(s.since_cleaning.dust_dose_ug_m3_h, 0.0);
        assert!(s.loss.haze > 0.0, "ageing goes on");
        assert!(
            s.loss_650() < 0.05,
            "closed dome loses only slowly: {}",
            s.loss_650()
        );
    }

    fn dirty_mirror() -> Environment {
        let init = SegmentInit {
            coating_age_days: 730.0,
            days_since_cleaning: 730.0,
            initial_loss_650: Some(6.0),
            ..SegmentInit::default()
        };
        env(EnvironmentConfig {
            maintenance: MaintenancePolicy::none(),
            initial_segments: vec![init; 18],
            ..EnvironmentConfig::default()
        })
    }

    /// DOMAIN.md: cleaning recovers 2.5–3 points but never to fresh.
    #[test]
    fn sim_cleaning_recovers_2_5_to_3_points_never_to_fresh() {
        let mut e = dirty_mirror();
        e.step(60.0);
        let before_state = e.state().segments.clone();
        for position in 1..=18 {
            e.clean_now(position).expect("segment exists");
        }
        let events: Vec<Event> = e.drain_events().collect();
        let cleanings: Vec<_> = events
            .iter()
            .filter_map(|ev| match ev {
                Event::Cleaning {
                    segment,
                    before,
                    after,
                    ..
                } => Some((*segment, *before, *after)),
                _ => None,
            })
            .collect();
        assert_eq!(cleanings.len(), 18);
        let measurements = events
            .iter()
            .filter(|ev| matches!(ev, Event::ReflectometerMeasurement { .. }))
            .count();
        assert_eq!(
            measurements, 18,
            "each cleaning is followed by a measurement"
        );
        for ((position, before, after), old) in cleanings.iter().zip(&before_state) {
            let seg = &e.state().segments[*position as usize - 1];
            let recovered = after.nm650 - before.nm650;
            assert!(
                (2.5..=3.0).contains(&recovered),
                "segment {position} recovered {recovered:.3}"
            );
            assert!((before.nm650 - old.reflectivity.nm650).abs() < 1e-9);
            for (a, f) in after.to_array().iter().zip(seg.fresh.to_array()) {
                assert!(
                    *a < f,
                    "segment {position}: cleaned {a} must stay below fresh {f}"
                );
            }
            assert_eq!(seg.reflectivity, *after);
            assert_eq!(
                seg.loss.permanent(),
                old.loss.permanent(),
                "cleaning leaves permanent loss"
            );
            assert_eq!(seg.cleanings_since_recoat, 1);
            assert_eq!(seg.days_since_cleaning, 0.0);
            assert_eq!(seg.since_cleaning.open_dome_hours, 0.0);
        }
        // A second cleaning right away recovers less: the easy dust is gone.
        let r = e.state().segments[0].reflectivity.nm650;
        e.clean_now(1).expect("segment exists");
        let gained = e.state().segments[0].reflectivity.nm650 - r;
        assert!(
            gained > 0.0 && gained < 2.5,
            "second cleaning gained {gained}"
        );
    }

    /// DOMAIN.md: recoating restores fresh values.
    #[test]
    fn sim_recoat_restores_fresh_and_resets_counters() {
        let fresh = Reflectivity {
            nm470: 90.1,
            nm530: 90.6,
            nm650: 91.2,
            nm880: 85.7,
        };
        let init = SegmentInit {
            fresh,
            coating_age_days: 900.0,
            days_since_cleaning: 50.0,
            ..SegmentInit::default()
        };
        let mut e = env(EnvironmentConfig {
            initial_segments: vec![init; 18],
            ..EnvironmentConfig::default()
        });
        run(&mut e, 2.0);
        let old = e.state().segments[4].clone();
        assert!(
            old.loss_650() > 2.0,
            "aged segment starts worn: {}",
            old.loss_650()
        );
        e.recoat_now(5).expect("segment exists");
        let events: Vec<Event> = e.drain_events().collect();
        let recoat = events.iter().find_map(|ev| match ev {
            Event::Recoat {
                segment: 5,
                before,
                after,
                ..
            } => Some((*before, *after)),
            _ => None,
        });
        let (before, after) = recoat.expect("recoat event");
        assert_eq!(after, fresh);
        assert_eq!(before, old.reflectivity);
        let seg = &e.state().segments[4];
        assert_eq!(seg.reflectivity, fresh);
        assert_eq!(seg.loss.total(), 0.0);
        assert_eq!(seg.days_since_recoat, 0.0);
        assert_eq!(seg.cleanings_since_recoat, 0);
        assert_eq!(seg.since_recoat, Default::default());
        assert!(
            events
                .iter()
                .any(|ev| matches!(ev, Event::ReflectometerMeasurement { segment: 5, .. }))
        );
    }

    #[test]
    fn sim_forced_calima_is_reported_and_counted() {
        let mut e = env(EnvironmentConfig::default());
        let start = JAN_2025 + 6 * 3600;
        e.force_calima(start, 12.0 * 3600.0, 150.0)
            .expect("valid calima");
        let mut peak = 0.0_f64;
        let mut events = Vec::new();
        for _ in 0..24 * 60 {
            e.step(60.0);
            peak = peak.max(e.state().weather.dust_ug_m3);
            events.extend(e.drain_events());
        }
        let started: Vec<_> = events
            .iter()
            .filter(|ev| matches!(ev, Event::CalimaStarted { forced: true, .. }))
            .map(Event::at_unix_ns)
            .collect();
        assert_eq!(started, vec![start * 1_000_000_000]);
        assert!(
            events
                .iter()
                .any(|ev| matches!(ev, Event::CalimaEnded { .. }))
        );
        assert!(peak > 75.0, "peak dust {peak}");
        let seg = &e.state().segments[0];
        assert!(seg.since_cleaning.calima_events >= 1);
        assert_eq!(
            seg.since_cleaning.calima_events,
            seg.since_recoat.calima_events
        );
        assert!(e.state().totals.calima_events >= 1);
    }

    #[test]
    fn sim_segments_differ_and_outer_rings_collect_more_dust() {
        let e = env(EnvironmentConfig {
            segments: 36,
            ..EnvironmentConfig::default()
        });
        let s = &e.state().segments;
        let mean = |ring: u32| {
            let v: Vec<f64> = s
                .iter()
                .filter(|g| g.traits.ring == ring)
                .map(|g| g.traits.dust_susceptibility)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(
            mean(1) < mean(2) && mean(2) < mean(3),
            "{} {} {}",
            mean(1),
            mean(2),
            mean(3)
        );
        let distinct: std::collections::BTreeSet<u64> = s
            .iter()
            .map(|g| g.traits.dust_susceptibility.to_bits())
            .collect();
        assert_eq!(distinct.len(), 36);

        // Rougher coatings collect slightly more dust.
        let rough = SegmentInit {
            microroughness_angstrom: 30.0,
            ..SegmentInit::default()
        };
        let smooth = SegmentInit {
            microroughness_angstrom: 10.0,
            ..SegmentInit::default()
        };
        let mut inits = vec![smooth; 18];
        inits[0] = rough;
        let e = env(EnvironmentConfig {
            initial_segments: inits,
            ..EnvironmentConfig::default()
        });
        let s = &e.state().segments;
        let ratio = s[0].traits.dust_susceptibility / s[1].traits.dust_susceptibility;
        assert!(
            ratio > 1.05 && ratio < 1.4,
            "rough/smooth susceptibility {ratio}"
        );
    }
}
