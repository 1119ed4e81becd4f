//! SegmentRecord ↔ proto ↔ CSV ↔ JSON round trips, for the samples and for
//! arbitrary records.

mod common;

use obs_manufacturing::{
    ExportError, Format, ImportOptions, SAMPLE_SEED, SegmentRecord, generate_samples, read,
    write_csv, write_json, write_json_lines,
};
use obs_proto::v1;
use proptest::prelude::*;
use prost::Message;

fn via_proto(r: &SegmentRecord) -> SegmentRecord {
    let bytes = v1::SegmentRecord::from(r).encode_to_vec();
    let decoded = v1::SegmentRecord::decode(&bytes[..]).expect("decode");
    SegmentRecord::try_from(decoded).expect("from proto")
}

fn via_file(records: &[SegmentRecord], format: Format) -> Vec<SegmentRecord> {
    let bytes = match format {
        Format::Csv => write_csv(Vec::new(), records),
        Format::Json => write_json(Vec::new(), records),
        Format::JsonLines => write_json_lines(Vec::new(), records),
    }
    .expect("write");
    let (ok, errors) = common::split(read(
        &bytes[..],
        "round-trip",
        format,
        &ImportOptions::default(),
    ));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(messages.is_empty(), "{messages:?}");
    ok.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn samples_survive_proto_csv_and_json() {
    let records = generate_samples(SAMPLE_SEED);
    for r in &records {
        assert_eq!(&via_proto(r), r);
    }
    for format in [Format::Csv, Format::Json, Format::JsonLines] {
        assert_eq!(via_file(&records, format), records, "{format:?}");
    }
    // record -> proto -> record -> CSV -> record -> JSON -> record
    let chained: Vec<SegmentRecord> = records.iter().map(via_proto).collect();
    let chained = via_file(&via_file(&chained, Format::Csv), Format::Json);
    assert_eq!(chained, records);
}

#[test]
fn proto_fields_match_the_record() {
    let r = obs_manufacturing::example_record();
    let p = v1::SegmentRecord::from(&r);
    assert_eq!(p.serial, "CSOA-M1-T2-0007");
    assert_eq!(p.substrate, v1::Substrate::Zerodur as i32);
    assert_eq!(p.coating_kind, v1::CoatingKind::BareAluminium as i32);
    assert_eq!(p.zernike_residuals.len(), 15);
    assert_eq!(p.fresh_reflectivity[2].wavelength_nm, 650);
    assert_eq!(p.fresh_reflectivity[2].percent, 90.9);
    // 2023-03-14T00:00:00Z
    assert_eq!(
        p.coated_at.map(|t| (t.seconds, t.nanos)),
        Some((1_678_752_000, 0))
    );
}

#[test]
fn unrepresentable_records_are_refused_by_the_writers() {
    let mut r = obs_manufacturing::example_record();
    r.fresh_reflectivity.push(r.fresh_reflectivity[0]);
    for result in [
        write_csv(Vec::new(), std::slice::from_ref(&r)).map(|_| ()),
        write_json(Vec::new(), std::slice::from_ref(&r)).map(|_| ()),
    ] {
        match result {
            Err(ExportError::NotRepresentable { serial, error }) => {
                assert_eq!(serial, "CSOA-M1-T2-0007");
                assert_eq!(
                    error.to_string(),
                    "fresh_reflectivity_470nm_pct: appears more than once"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_record_survives_proto(r in common::record(false)) {
        // NaN != NaN: compare the encoded bytes instead.
        let back = v1::SegmentRecord::from(&via_proto(&r)).encode_to_vec();
        prop_assert_eq!(back, v1::SegmentRecord::from(&r).encode_to_vec());
    }

    #[test]
    fn any_file_safe_record_survives_csv_and_json(r in common::record(true)) {
        let records = vec![r];
        for format in [Format::Csv, Format::Json, Format::JsonLines] {
            prop_assert_eq!(&via_file(&records, format), &records, "{:?}", format);
        }
    }
}
