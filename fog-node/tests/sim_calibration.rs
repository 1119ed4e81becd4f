//! Calibration and speed reports of the environment model. Ignored by
//! default (they print, they do not assert); run in release:
//!
//! ```text
//! cargo test --release -p fog-node --test sim_calibration -- --ignored --nocapture
//! ```

mod sim {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use fog_node::sim::{Environment, EnvironmentConfig, Event, MaintenancePolicy, SiteClimate};

    fn report(name: &str, climate: SiteClimate, maintenance: MaintenancePolicy, days: usize) {
        let config = EnvironmentConfig {
            seed: 11,
            climate,
            maintenance,
            ..EnvironmentConfig::default()
        };
        let mut env = Environment::new(config).expect("valid config");
        let mut closed_by = BTreeMap::<&'static str, f64>::new();
        let mut events = BTreeMap::<&'static str, usize>::new();
        let mut monthly = Vec::new();
        for minute in 0..days * 1440 {
            env.step(60.0);
            let s = env.state();
            if let (true, Some(r)) = (s.is_night, s.dome.closed_reason) {
                *closed_by.entry(r.as_str()).or_default() += 1.0 / 60.0;
            }
            if minute % (30 * 1440) == 0 {
                monthly.push(format!("{:.2}", s.segments[0].reflectivity.nm650));
            }
            for e in env.drain_events() {
                let kind = match e {
                    Event::DomeOpened { .. } => "dome_opened",
                    Event::DomeClosed { .. } => "dome_closed",
                    Event::CalimaStarted { .. } => "calima",
                    Event::CalimaEnded { .. } => "calima_ended",
                    Event::Cleaning { .. } => "cleaning",
                    Event::Recoat { .. } => "recoat",
                    Event::ReflectometerMeasurement { .. } => "measurement",
                };
                *events.entry(kind).or_default() += 1;
            }
        }
        let s = env.state();
        let t = s.totals;
        let losses: Vec<String> = s
            .segments
            .iter()
            .map(|g| format!("{:.2}", g.loss_650()))
            .collect();
        println!("== {name}, {days} days");
        println!(
            "   night {:.0} h, weather downtime {:.1} %, open {:.0} h, dust dose {:.0} ug/m3 h, calima {}",
            t.night_hours,
            100.0 * t.weather_downtime_fraction(),
            t.open_hours,
            t.dust_dose_ug_m3_h,
            t.calima_events
        );
        println!("   night hours closed by reason {closed_by:?}");
        println!("   events {events:?}");
        println!("   segment 1 R650 every 30 days {monthly:?}");
        println!("   segment 1 loss {:?}", s.segments[0].loss);
        println!("   loss at 650 nm per segment {losses:?}");
    }

    #[test]
    #[ignore = "prints a calibration report; run with --ignored --nocapture"]
    fn sim_calibration_report() {
        report(
            "la_palma maintained",
            SiteClimate::la_palma(),
            MaintenancePolicy::default(),
            365,
        );
        report(
            "la_palma unmaintained",
            SiteClimate::la_palma(),
            MaintenancePolicy::none(),
            365,
        );
        report(
            "dusty_desert unmaintained",
            SiteClimate::dusty_desert(),
            MaintenancePolicy::none(),
            365,
        );
        report(
            "humid_coastal maintained",
            SiteClimate::humid_coastal(),
            MaintenancePolicy::default(),
            365,
        );
        report(
            "la_palma maintained",
            SiteClimate::la_palma(),
            MaintenancePolicy::default(),
            3 * 365,
        );
    }

    #[test]
    #[ignore = "prints the speed; run in release with --ignored --nocapture"]
    fn sim_perf_three_years_of_18_segments_at_one_minute() {
        let mut env = Environment::new(EnvironmentConfig::default()).expect("valid config");
        let started = Instant::now();
        let mut events = 0;
        for _ in 0..3 * 365 * 1440 {
            env.step(60.0);
            events += env.drain_events().count();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "3 simulated years x 18 segments at 60 s steps: {secs:.2} s, {:.1} segment-years/s, {events} events",
            3.0 * 18.0 / secs
        );
    }
}
