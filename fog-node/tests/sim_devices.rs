//! Simulated devices driven by the environment (`cargo test -p fog-node devices`).

mod devices {
    use std::collections::BTreeMap;

    use fog_node::devices::{DeviceConfig, Devices, fits};
    use fog_node::sim::{Environment, EnvironmentConfig, Event, SiteClimate};
    use obs_proto::v1::{Quality, Sample, sample::Value};

    const S: i64 = 1_000_000_000;
    /// 2025-06-15 00:00 UTC: night at La Palma.
    const JUNE_NIGHT: i64 = 1_749_945_600;

    /// A site where nothing keeps the dome closed at night.
    fn clear_site() -> EnvironmentConfig {
        let mut climate = SiteClimate::la_palma();
        climate.humidity.humid_episodes_per_year = 0.0;
        climate.humidity.fair_rh_median_pct = 20.0;
        climate.dust.calima_rate_per_day_summer = 0.0;
        climate.dust.calima_rate_per_day_other = 0.0;
        climate.wind.median_m_s = 3.0;
        climate.wind.log_sigma = 0.1;
        EnvironmentConfig {
            start_unix_s: JUNE_NIGHT,
            climate,
            ..EnvironmentConfig::default()
        }
    }

    /// Steps `seconds` one second at a time and collects every sample.
    fn run(env: &mut Environment, devices: &mut Devices, seconds: usize) -> Vec<Sample> {
        let mut out = Vec::new();
        for _ in 0..seconds {
            env.step(1.0);
            let events: Vec<Event> = env.drain_events().collect();
            let now = env.state().time_unix_ns;
            out.extend(devices.sample(env.state(), &events, now));
        }
        out
    }

    fn count(samples: &[Sample]) -> BTreeMap<(String, String), usize> {
        let mut m = BTreeMap::new();
        for s in samples {
            *m.entry((s.device.clone(), s.attribute.clone()))
                .or_default() += 1;
        }
        m
    }

    fn is_tango_name(name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        parts.len() == 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    })
            })
    }

    fn new_devices(config: DeviceConfig) -> Devices {
        Devices::new(config).expect("valid device config")
    }

    #[test]
    fn devices_weather_station_gives_60_samples_per_attribute_in_60_seconds() {
        let mut env = Environment::new(EnvironmentConfig::default()).expect("env");
        let mut devices = new_devices(DeviceConfig::default());
        let samples = run(&mut env, &mut devices, 60);
        let counts = count(&samples);
        let attrs = [
            ("wind_speed", "m/s"),
            ("wind_gust", "m/s"),
            ("wind_direction", "deg"),
            ("relative_humidity", "%"),
            ("air_temperature", "degC"),
            ("dew_point", "degC"),
            ("pressure", "hPa"),
            ("dust_concentration", "ug/m3"),
            ("dust_counts", "m-3"),
        ];
        for (attr, unit) in attrs {
            assert_eq!(
                counts.get(&("weather/station/1".to_owned(), attr.to_owned())),
                Some(&60),
                "{attr}"
            );
            let s = samples
                .iter()
                .find(|s| s.device == "weather/station/1" && s.attribute == attr)
                .expect("sample");
            assert_eq!(s.unit, unit, "{attr}");
        }
        // timestamps one second apart
        let ts: Vec<i64> = samples
            .iter()
            .filter(|s| s.device == "weather/station/1" && s.attribute == "pressure")
            .map(|s| s.ts_unix_ns)
            .collect();
        assert!(ts.windows(2).all(|w| w[1] - w[0] == S));
        let pressure = samples
            .iter()
            .find(|s| s.attribute == "pressure")
            .and_then(|s| s.value.clone());
        assert!(
            matches!(pressure, Some(Value::DoubleValue(p)) if (740.0..810.0).contains(&p)),
            "{pressure:?}"
        );
        assert_eq!(
            counts.get(&("dome/shutter/1".to_owned(), "percentage_open".to_owned())),
            Some(&60)
        );
        assert_eq!(
            counts.get(&("dome/shutter/1".to_owned(), "state".to_owned())),
            Some(&1)
        );
    }

    #[test]
    fn devices_18_segments_times_4_attributes_and_36_for_keck() {
        for segments in [18u32, 36] {
            let mut env = Environment::new(EnvironmentConfig {
                segments,
                ..EnvironmentConfig::default()
            })
            .expect("env");
            let mut devices = new_devices(DeviceConfig {
                segments,
                ..DeviceConfig::default()
            });
            let samples = run(&mut env, &mut devices, 60);
            let counts = count(&samples);
            let mut seen = 0;
            for n in 1..=segments {
                let device = format!("m1/segment/{n:02}");
                for (attr, unit) in [
                    ("piston", "nm"),
                    ("tip", "urad"),
                    ("tilt", "urad"),
                    ("glass_temperature", "degC"),
                ] {
                    assert_eq!(
                        counts.get(&(device.clone(), attr.to_owned())),
                        Some(&60),
                        "{device} {attr}"
                    );
                    let s = samples
                        .iter()
                        .find(|s| s.device == device && s.attribute == attr)
                        .expect("sample");
                    assert_eq!(s.unit, unit);
                    seen += 1;
                }
            }
            assert_eq!(seen, 4 * segments as usize);
            let segment_devices = counts
                .keys()
                .filter(|(d, _)| d.starts_with("m1/segment/"))
                .count();
            assert_eq!(
                segment_devices,
                5 * segments as usize,
                "4 attributes + state per segment"
            );
        }
    }

    #[test]
    fn devices_names_are_tango_style_units_are_set_and_rates_decimate() {
        let mut env = Environment::new(clear_site()).expect("env");
        let mut devices = new_devices(DeviceConfig {
            mount_hz: 10.0,
            segment_hz: 0.5,
            ..DeviceConfig::default()
        });
        let samples = run(&mut env, &mut devices, 600);
        for name in devices.device_names() {
            assert!(is_tango_name(&name), "{name}");
        }
        let dimensionless = [
            "state",
            "close_reason",
            "filter",
            "airmass",
            "exposure_started",
            "fits_file",
            "event",
        ];
        for s in &samples {
            assert!(is_tango_name(&s.device), "{}", s.device);
            assert!(!s.attribute.is_empty());
            assert!(s.value.is_some());
            assert_ne!(s.quality, Quality::Unspecified as i32);
            if !dimensionless.contains(&s.attribute.as_str()) {
                assert!(
                    !s.unit.is_empty(),
                    "{}/{} has no unit",
                    s.device,
                    s.attribute
                );
            }
        }
        let counts = count(&samples);
        assert_eq!(
            counts.get(&("mount/azimuth/1".to_owned(), "position".to_owned())),
            Some(&(1 + 599 * 10))
        );
        assert_eq!(
            counts.get(&("m1/segment/07".to_owned(), "piston".to_owned())),
            Some(&300)
        );
        assert_eq!(devices.stats().skipped, 0);
    }

    #[test]
    fn devices_maintenance_event_becomes_one_json_sample() {
        let mut env = Environment::new(EnvironmentConfig::default()).expect("env");
        let mut devices = new_devices(DeviceConfig::default());
        run(&mut env, &mut devices, 5);
        env.clean_now(7).expect("segment 7");
        let samples = run(&mut env, &mut devices, 1);
        let maintenance: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.device == "m1/maintenance/1" && s.attribute == "event")
            .collect();
        assert_eq!(maintenance.len(), 1);
        let Some(Value::StringValue(json)) = &maintenance[0].value else {
            panic!("maintenance event is a string: {:?}", maintenance[0].value);
        };
        let v: serde_json::Value = serde_json::from_str(json).expect("valid json");
        assert_eq!(v["kind"], "cleaning");
        assert_eq!(v["segment"], 7);
        for key in ["470nm", "530nm", "650nm", "880nm"] {
            let before = v["before"][key].as_f64().expect("before value");
            let after = v["after"][key].as_f64().expect("after value");
            assert!(
                after >= before && after <= 92.0,
                "{key}: {before} -> {after}"
            );
        }
        assert!(!json.contains('\n'), "compact json");

        // the measurement after the cleaning reaches the reflectometer device
        let refl: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.device == "m1/reflectometer/1")
            .collect();
        let attrs: Vec<&str> = refl
            .iter()
            .map(|s| s.attribute.as_str())
            .filter(|a| *a != "state")
            .collect();
        assert_eq!(
            attrs,
            vec!["seg07_470nm", "seg07_530nm", "seg07_650nm", "seg07_880nm"]
        );
        assert!(
            refl.iter()
                .filter(|s| s.attribute != "state")
                .all(|s| s.unit == "%")
        );

        env.recoat_now(3).expect("segment 3");
        let samples = run(&mut env, &mut devices, 1);
        let json = samples
            .iter()
            .find(|s| s.device == "m1/maintenance/1" && s.attribute == "event")
            .and_then(|s| match &s.value {
                Some(Value::StringValue(j)) => Some(j.clone()),
                _ => None,
            })
            .expect("recoat sample");
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid json");
        assert_eq!(v["kind"], "recoat");
        assert_eq!(v["segment"], 3);
    }

    #[test]
    fn devices_dome_state_events_and_changing_quality() {
        let mut env = Environment::new(clear_site()).expect("env");
        let mut devices = new_devices(DeviceConfig::default());
        let samples = run(&mut env, &mut devices, 300);
        let states: Vec<String> = samples
            .iter()
            .filter(|s| s.device == "dome/shutter/1" && s.attribute == "state")
            .filter_map(|s| match &s.value {
                Some(Value::StringValue(v)) => Some(v.clone()),
                _ => None,
            })
            .collect();
        // night from the first second: the shutter starts moving at once, open after 120 s
        assert_eq!(states, vec!["MOVING", "OPEN"]);
        let pct: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.attribute == "percentage_open")
            .collect();
        assert!(pct.iter().any(|s| s.quality == Quality::Changing as i32));
        let last = pct.last().expect("percentage samples");
        assert_eq!(last.value, Some(Value::DoubleValue(100.0)));
        assert_eq!(last.quality, Quality::Valid as i32);
    }

    #[test]
    fn devices_quality_flags_follow_thresholds() {
        let env = Environment::new(EnvironmentConfig::default()).expect("env");
        let mut devices = new_devices(DeviceConfig {
            sensor_noise: false,
            ..DeviceConfig::default()
        });
        let mut state = env.state().clone();
        state.weather.wind_speed_m_s = 25.0;
        state.weather.wind_gust_m_s = 30.0;
        state.weather.relative_humidity_pct = 85.0;
        state.weather.dust_ug_m3 = 15.0;
        let samples = devices.sample(&state, &[], state.time_unix_ns);
        let q = |attr: &str| {
            samples
                .iter()
                .find(|s| s.device == "weather/station/1" && s.attribute == attr)
                .map(|s| s.quality)
                .expect("sample")
        };
        assert_eq!(q("wind_speed"), Quality::Alarm as i32);
        assert_eq!(q("wind_gust"), Quality::Alarm as i32);
        assert_eq!(q("relative_humidity"), Quality::Warning as i32);
        assert_eq!(q("dust_concentration"), Quality::Warning as i32);
        assert_eq!(q("pressure"), Quality::Valid as i32);
        let weather_state = samples
            .iter()
            .find(|s| s.device == "weather/station/1" && s.attribute == "state")
            .and_then(|s| s.value.clone());
        assert_eq!(weather_state, Some(Value::StringValue("ALARM".to_owned())));
    }

    #[test]
    fn devices_camera_exposes_on_open_nights_and_writes_valid_fits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = Environment::new(clear_site()).expect("env");
        let mut config = DeviceConfig::default();
        config.camera.fits_dir = Some(dir.path().join("fits"));
        config.camera.exposure_times_s = vec![30.0];
        config.camera.overhead_s = 30.0;
        let mut devices = new_devices(config);
        let samples = run(&mut env, &mut devices, 15 * 60);
        let started: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.attribute == "exposure_started")
            .collect();
        // the dome is open after 2 minutes; then one exposure a minute
        assert!(
            (12..=14).contains(&started.len()),
            "exposures {}",
            started.len()
        );
        for attr in [
            "exptime",
            "filter",
            "airmass",
            "ccd_temperature",
            "photometric_zero_point",
            "fits_file",
        ] {
            let n = samples
                .iter()
                .filter(|s| s.device == "instrument/camera/1" && s.attribute == attr)
                .count();
            assert_eq!(n, started.len(), "{attr}");
        }
        for s in samples
            .iter()
            .filter(|s| s.attribute == "photometric_zero_point")
        {
            let Some(Value::DoubleValue(zp)) = s.value else {
                panic!("zero point is a double")
            };
            assert!((24.5..25.5).contains(&zp), "fresh mirror zero point {zp}");
        }
        for s in samples.iter().filter(|s| s.attribute == "airmass") {
            let Some(Value::DoubleValue(x)) = s.value else {
                panic!("airmass is a double")
            };
            assert!((1.0..2.0).contains(&x), "airmass {x}");
        }
        assert_eq!(devices.stats().fits_written, started.len() as u64);
        assert_eq!(devices.stats().fits_failed, 0);
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join("fits"))
            .expect("fits folder")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert_eq!(files.len(), started.len());
        for path in &files {
            let bytes = std::fs::read(path).expect("read fits");
            assert_eq!(bytes.len() % fits::BLOCK, 0);
            let header = std::str::from_utf8(&bytes[..fits::BLOCK]).expect("ascii header");
            assert!(header.starts_with("SIMPLE  =                    T"));
            for key in [
                "BITPIX  =                   16",
                "NAXIS   =                    2",
                "NAXIS1  =                   32",
            ] {
                assert!(header.contains(key), "{key} in {}", path.display());
            }
            for key in [
                "DATE-OBS= '2025-06-15T",
                "EXPTIME =",
                "FILTER  = '",
                "AIRMASS =",
                "TELESCOP= 'OBS-4M",
                "INSTRUME= 'OBSCAM",
            ] {
                assert!(header.contains(key), "{key} in {}", path.display());
            }
            let end = header.find("END     ").expect("END card");
            assert_eq!(end % fits::CARD, 0);
        }

        // a folder that cannot be created is counted, never a panic
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").expect("write");
        let mut config = DeviceConfig::default();
        config.camera.fits_dir = Some(blocker.join("fits"));
        let mut env = Environment::new(clear_site()).expect("env");
        let mut devices = new_devices(config);
        run(&mut env, &mut devices, 300);
        assert!(devices.stats().exposures > 0);
        assert_eq!(devices.stats().fits_failed, devices.stats().exposures);
    }

    #[test]
    fn devices_zero_point_drifts_with_mirror_reflectivity() {
        let mut fresh_env = Environment::new(clear_site()).expect("env");
        let mut dirty_cfg = clear_site();
        dirty_cfg.initial_segments = vec![
            fog_node::sim::SegmentInit {
                coating_age_days: 700.0,
                days_since_cleaning: 200.0,
                initial_loss_650: Some(5.0),
                ..Default::default()
            };
            18
        ];
        let mut dirty_env = Environment::new(dirty_cfg).expect("env");
        let zp = |env: &mut Environment| {
            let mut devices = new_devices(DeviceConfig {
                sensor_noise: false,
                ..DeviceConfig::default()
            });
            let samples = run(env, &mut devices, 600);
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| s.attribute == "photometric_zero_point")
                .filter_map(|s| match s.value {
                    Some(Value::DoubleValue(v)) => Some(v),
                    _ => None,
                })
                .collect();
            assert!(!v.is_empty());
            v[0]
        };
        let (fresh, dirty) = (zp(&mut fresh_env), zp(&mut dirty_env));
        // the first exposure uses filter B in both runs; 5 points of loss ≈ 0.06–0.08 mag
        let drop = fresh - dirty;
        assert!((0.04..0.12).contains(&drop), "zero point drop {drop}");
    }
}
