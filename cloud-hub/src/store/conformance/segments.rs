//! The [`SegmentStore`] conformance body: versioned records, installations
//! and maintenance, run against both stores.

use std::collections::BTreeMap;

use crate::store::segments::{
    InstallRefusal, InstallRequest, Installation, MaintenanceKind, MaintenanceOutcome,
    MaintenanceRecord, NewSegmentRecord, PutOutcome, PutPolicy, SegmentStore,
};

fn record(serial: &str, mass_kg: f64) -> NewSegmentRecord {
    let mut record = obs_manufacturing::example_record();
    record.serial = serial.to_owned();
    record.mass_kg = mass_kg;
    NewSegmentRecord {
        record,
        uploaded_at_unix_ns: 1_000,
        uploaded_by: "optics-centre".into(),
        source: "segments.csv".into(),
    }
}

fn install(serial: &str, site: &str, position: u32, at: i64) -> InstallRequest {
    InstallRequest {
        serial: serial.into(),
        site: site.into(),
        position,
        at_unix_ns: at,
    }
}

fn period(serial: &str, site: &str, position: u32, from: i64, to: Option<i64>) -> Installation {
    Installation {
        serial: serial.into(),
        site: site.into(),
        position,
        installed_at_unix_ns: from,
        removed_at_unix_ns: to,
    }
}

const ATOMIC: PutPolicy = PutPolicy {
    replace: false,
    all_or_nothing: true,
    dry_run: false,
};

/// Everything a store must do for segments. `site` must be unused; serials
/// and the second site are derived from it.
pub async fn segment_store_suite<S: SegmentStore>(store: &S, site: &str) {
    let serial = |x: &str| format!("{}-{x}", site.to_uppercase());
    let (a, b, c, d) = (serial("A"), serial("B"), serial("C"), serial("D"));
    let other_site = format!("{site}b");

    // New serials are version 1; an identical re-upload is unchanged.
    let first = vec![record(&a, 100.0), record(&b, 101.0), record(&c, 102.0)];
    let report = store
        .put_segment_records(first.clone(), ATOMIC)
        .await
        .expect("put");
    assert!(report.written);
    assert_eq!(report.outcomes, vec![PutOutcome::Stored { version: 1 }; 3]);
    let report = store.put_segment_records(first, ATOMIC).await.expect("put");
    assert_eq!(
        report.outcomes,
        vec![PutOutcome::Unchanged { version: 1 }; 3]
    );

    // A changed record without replace: all-or-nothing stores nothing (not
    // even the new serial), partial stores the new serial only.
    let mixed = vec![record(&a, 105.0), record(&d, 103.0)];
    let report = store
        .put_segment_records(mixed.clone(), ATOMIC)
        .await
        .expect("put");
    assert!(!report.written);
    let PutOutcome::Conflict { version, changes } = &report.outcomes[0] else {
        panic!("a conflict for {a}: {:?}", report.outcomes)
    };
    assert_eq!(*version, 1);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0].field.as_str(),
            changes[0].stored.as_str(),
            changes[0].uploaded.as_str()
        ),
        ("mass_kg", "100.0", "105.0")
    );
    assert!(
        store.segment(&d).await.expect("get").is_none(),
        "rolled back"
    );
    let partial = PutPolicy {
        all_or_nothing: false,
        ..ATOMIC
    };
    let report = store
        .put_segment_records(mixed, partial)
        .await
        .expect("put");
    assert!(report.written);
    assert_eq!(report.outcomes[1], PutOutcome::Stored { version: 1 });
    assert!(matches!(report.outcomes[0], PutOutcome::Conflict { .. }));
    assert_eq!(
        store
            .segment(&a)
            .await
            .expect("get")
            .expect("a")
            .record
            .mass_kg,
        100.0
    );

    // A dry run decides without writing; replace stores version 2 and keeps 1.
    let replace = PutPolicy {
        replace: true,
        ..ATOMIC
    };
    let dry = PutPolicy {
        dry_run: true,
        ..replace
    };
    let report = store
        .put_segment_records(vec![record(&a, 105.0)], dry)
        .await
        .expect("put");
    assert_eq!(
        (report.written, &report.outcomes[0]),
        (false, &PutOutcome::Stored { version: 2 })
    );
    assert_eq!(store.segment(&a).await.expect("get").expect("a").version, 1);
    let report = store
        .put_segment_records(vec![record(&a, 105.0)], replace)
        .await
        .expect("put");
    assert_eq!(report.outcomes, vec![PutOutcome::Stored { version: 2 }]);
    let current = store.segment(&a).await.expect("get").expect("a");
    assert_eq!((current.version, current.record.mass_kg), (2, 105.0));
    assert_eq!(current.uploaded_by, "optics-centre");
    assert_eq!(current.source, "segments.csv");
    let versions = store.segment_versions(&a).await.expect("versions");
    let masses: Vec<(u32, f64)> = versions
        .iter()
        .map(|v| (v.version, v.record.mass_kg))
        .collect();
    assert_eq!(masses, vec![(1, 100.0), (2, 105.0)]);
    assert_eq!(versions[1], current);
    let all: Vec<String> = store
        .segments()
        .await
        .expect("all")
        .into_iter()
        .map(|s| s.record.serial)
        .filter(|s| s.starts_with(&serial("")))
        .collect();
    assert_eq!(all, vec![a.clone(), b.clone(), c.clone(), d.clone()]);

    // Installations: occupied positions and moved serials are closed.
    let outcome = store
        .record_installation(&install(&a, site, 1, 100))
        .await
        .expect("install")
        .expect("allowed");
    assert!(outcome.created && outcome.closed.is_empty());
    let again = store
        .record_installation(&install(&a, site, 1, 150))
        .await
        .expect("install")
        .expect("allowed");
    assert_eq!(
        (again.created, again.installation.installed_at_unix_ns),
        (false, 100)
    );
    let over = store
        .record_installation(&install(&b, site, 1, 200))
        .await
        .expect("install")
        .expect("allowed");
    assert_eq!(over.closed, vec![period(&a, site, 1, 100, Some(200))]);
    let moved = store
        .record_installation(&install(&b, &other_site, 5, 300))
        .await
        .expect("install")
        .expect("allowed");
    assert_eq!(moved.closed, vec![period(&b, site, 1, 200, Some(300))]);
    assert_eq!(
        store.installations_of(&b).await.expect("installations"),
        vec![
            period(&b, site, 1, 200, Some(300)),
            period(&b, &other_site, 5, 300, None)
        ]
    );
    assert_eq!(
        store.installations_of(&a).await.expect("installations"),
        vec![period(&a, site, 1, 100, Some(200))]
    );
    let at = |position, t| store.installation_at(site, position, t);
    assert_eq!(
        at(1, 150).await.expect("at").map(|i| i.serial),
        Some(a.clone())
    );
    assert_eq!(
        at(1, 250).await.expect("at").map(|i| i.serial),
        Some(b.clone())
    );
    assert_eq!(
        at(1, 350).await.expect("at"),
        None,
        "position 1 is empty again"
    );
    assert_eq!(at(1, 50).await.expect("at"), None, "before anything");
    let refused = store
        .record_installation(&install(&c, &other_site, 5, 250))
        .await
        .expect("install")
        .expect_err("out of order");
    assert!(matches!(
        refused,
        InstallRefusal::PositionHasLaterInstallation { .. }
    ));

    // Maintenance: idempotent by (serial, at, kind), conflicts kept apart.
    let cleaning = MaintenanceRecord {
        serial: b.clone(),
        kind: MaintenanceKind::Cleaning,
        at_unix_ns: 310,
        before: BTreeMap::from([(470, 86.7), (650, 85.5)]),
        after: BTreeMap::from([(470, 89.6), (650, 88.0)]),
        notes: "CO2 snow".into(),
        source: format!("site:{other_site}"),
        site: other_site.clone(),
        position: 5,
        coating_batch: String::new(),
        recorded_at_unix_ns: 400,
    };
    let created = store.record_maintenance(&cleaning).await.expect("maintain");
    assert_eq!(created, MaintenanceOutcome::Created);
    let replay = MaintenanceRecord {
        source: "api:optics-centre".into(),
        recorded_at_unix_ns: 500,
        ..cleaning.clone()
    };
    assert_eq!(
        store.record_maintenance(&replay).await.expect("maintain"),
        MaintenanceOutcome::AlreadyRecorded(cleaning.clone())
    );
    let different = MaintenanceRecord {
        notes: "wash".into(),
        ..cleaning.clone()
    };
    assert_eq!(
        store
            .record_maintenance(&different)
            .await
            .expect("maintain"),
        MaintenanceOutcome::Conflict(cleaning.clone())
    );
    let recoat = MaintenanceRecord {
        kind: MaintenanceKind::Recoat,
        before: BTreeMap::new(),
        after: BTreeMap::from([(650, 91.2)]),
        coating_batch: "AL-2026-07".into(),
        notes: String::new(),
        ..cleaning.clone()
    };
    assert_eq!(
        store.record_maintenance(&recoat).await.expect("maintain"),
        MaintenanceOutcome::Created
    );
    assert_eq!(
        store.maintenance_of(&b).await.expect("maintenance"),
        vec![cleaning, recoat]
    );
    assert!(
        store
            .maintenance_of(&c)
            .await
            .expect("maintenance")
            .is_empty()
    );

    // The batched read gives what the single reads give, in order.
    let missing = format!("{b}-NOPE");
    let serials = vec![c.clone(), missing, b.clone()];
    let batched = store
        .segments_with_maintenance(&serials)
        .await
        .expect("batched");
    let mut expected = Vec::new();
    for serial in &serials {
        expected.push((
            store.segment(serial).await.expect("segment"),
            store.maintenance_of(serial).await.expect("maintenance"),
        ));
    }
    assert_eq!(batched, expected);
    assert!(batched[0].0.is_some() && batched[1].0.is_none());
    assert_eq!(batched[2].1.len(), 2);
}
