//! CSV import: the committed samples, the broken files under tests/data and
//! row numbering.

use std::collections::BTreeSet;
use std::path::PathBuf;

use obs_manufacturing::{
    Format, ImportError, ImportOptions, SAMPLE_SEED, SegmentRecord, ValidationRules,
    generate_samples, open, read, sample_csv_path, warnings, write_csv,
};
use time::macros::date;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

type Split = (Vec<(u64, SegmentRecord)>, Vec<ImportError>);

fn split(items: impl Iterator<Item = Result<(u64, SegmentRecord), ImportError>>) -> Split {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(x) => ok.push(x),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

fn import_file(path: PathBuf, allow_extra: bool) -> Split {
    let options = ImportOptions {
        allow_extra,
        format: None,
    };
    split(open(path, &options).expect("open"))
}

fn import_text(text: &str, allow_extra: bool) -> Split {
    let options = ImportOptions {
        allow_extra,
        format: None,
    };
    split(read(text.as_bytes(), "upload.csv", Format::Csv, &options))
}

fn messages(errors: &[ImportError]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

fn sample_text() -> String {
    std::fs::read_to_string(sample_csv_path()).expect("read samples")
}

#[test]
fn committed_samples_import_and_validate() {
    let (records, errors) = import_file(sample_csv_path(), false);
    assert!(errors.is_empty(), "{:?}", messages(&errors));
    assert_eq!(records.len(), 66);
    let rows: Vec<u64> = records.iter().map(|(row, _)| *row).collect();
    assert_eq!(rows, (1..=66).collect::<Vec<u64>>());
    for rules in [
        ValidationRules::new(date!(2025 - 01 - 01)),
        ValidationRules::as_of_now(),
    ] {
        for (row, r) in &records {
            assert_eq!(r.validate(&rules), [], "row {row} {}", r.serial);
        }
    }
}

#[test]
fn samples_hold_three_telescopes_spares_batches_and_flagged_rejects() {
    let (records, _) = import_file(sample_csv_path(), false);
    let records: Vec<SegmentRecord> = records.into_iter().map(|(_, r)| r).collect();
    let accepted: Vec<&SegmentRecord> = records.iter().filter(|r| r.acceptance_passed).collect();
    let rejected: Vec<&SegmentRecord> = records.iter().filter(|r| !r.acceptance_passed).collect();
    assert_eq!(accepted.len(), 3 * 18 + 8);
    assert_eq!(rejected.len(), 4);
    for r in &rejected {
        assert!(r.acceptance_notes.starts_with("rejected: "), "{}", r.serial);
    }
    let count = |t: &str| accepted.iter().filter(|r| r.segment_type == t).count();
    assert_eq!((count("T1"), count("T2"), count("T3")), (20, 21, 21));
    for r in &records {
        let ring = if r.segment_type == "T1" { 1 } else { 2 };
        assert_eq!(r.ring, ring, "{}", r.serial);
        assert!(
            r.serial.contains(&format!("-{}-", r.segment_type)),
            "{}",
            r.serial
        );
    }
    let batches: BTreeSet<&str> = records.iter().map(|r| r.coating_batch.as_str()).collect();
    assert_eq!(batches.len(), 5);
    let rules = ValidationRules::new(date!(2025 - 01 - 01));
    let concessions: Vec<&str> = accepted
        .iter()
        .filter(|r| r.surface_figure_error_nm_rms > 15.0)
        .map(|r| r.serial.as_str())
        .collect();
    assert_eq!(concessions, ["CSOA-M1-T2-0030"]);
    let warned: Vec<String> = records
        .iter()
        .flat_map(|r| warnings(r, &rules))
        .map(|w| w.field)
        .collect();
    assert_eq!(
        warned,
        ["microroughness_angstrom_rms", "surface_figure_error_nm_rms"],
        "the rough reject and the concession"
    );
}

#[test]
fn committed_samples_are_what_the_generator_writes() {
    let records = generate_samples(SAMPLE_SEED);
    let csv = write_csv(Vec::new(), &records).expect("write");
    assert_eq!(
        String::from_utf8(csv).expect("utf8"),
        sample_text(),
        "rerun `cargo run -p obs-manufacturing --example generate_samples`"
    );
}

#[test]
fn wrong_header_reports_missing_and_unknown_columns_and_stops() {
    let (records, errors) = import_file(data("wrong_header.csv"), false);
    assert!(records.is_empty());
    let file = data("wrong_header.csv").display().to_string();
    assert_eq!(
        messages(&errors),
        [
            format!(
                "{file}: header: unknown column `operator` (allow_extra ignores unknown columns)"
            ),
            format!("{file}: header: missing column `mass_kg`"),
        ]
    );
    assert!(errors.iter().all(ImportError::is_fatal));
}

#[test]
fn wrong_unit_says_which_unit_is_expected() {
    let (records, errors) = import_file(data("wrong_unit.csv"), true);
    assert!(records.is_empty(), "allow_extra does not forgive a unit");
    let file = data("wrong_unit.csv").display().to_string();
    assert_eq!(
        messages(&errors),
        [format!(
            "{file}: header: column `surface_figure_error_um_rms` has unit `um_rms`, \
             expected `surface_figure_error_nm_rms` (nm RMS)"
        )]
    );
    match &errors[0] {
        ImportError::WrongUnit {
            column, expected, ..
        } => assert_eq!(
            (column.as_str(), expected.as_str()),
            ("surface_figure_error_um_rms", "surface_figure_error_nm_rms")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values_are_reported_per_row_and_the_import_goes_on() {
    let (records, errors) = import_file(data("bad_number.csv"), false);
    let rows: Vec<u64> = records.iter().map(|(row, _)| *row).collect();
    assert_eq!(rows, [1, 3, 5]);
    let file = data("bad_number.csv").display().to_string();
    assert_eq!(
        messages(&errors),
        [
            format!("{file}: row 2 (line 3): mass_kg: 1O5.2 is not a number (expected kg)"),
            format!(
                "{file}: row 4 (line 5): coating_kind: gold is not one of bare_aluminium, \
                 protected_aluminium, protected_silver"
            ),
            format!(
                "{file}: row 4 (line 5): coating_date: 2023-02-30 is not a date (expected YYYY-MM-DD)"
            ),
        ]
    );
    let wire: Vec<(u64, String, String)> = errors
        .iter()
        .map(|e| {
            let r = e.to_record_error();
            (r.row, r.serial, r.field)
        })
        .collect();
    assert_eq!(
        wire,
        [
            (2, "CSOA-M1-T1-0002".into(), "mass_kg".into()),
            (4, "CSOA-M1-T1-0004".into(), "coating_kind".into()),
            (4, "CSOA-M1-T1-0004".into(), "coating_date".into()),
        ]
    );
    assert!(errors.iter().all(|e| !e.is_fatal()));
}

#[test]
fn duplicate_serial_within_a_file_is_an_error_at_the_second_row() {
    let (records, errors) = import_file(data("duplicate_serial.csv"), false);
    let rows: Vec<u64> = records.iter().map(|(row, _)| *row).collect();
    assert_eq!(rows, [1, 2, 4]);
    let file = data("duplicate_serial.csv").display().to_string();
    assert_eq!(
        messages(&errors),
        [format!(
            "{file}: row 3 (line 4): serial: CSOA-M1-T1-0001 is a duplicate of row 1 in the same file"
        )]
    );
}

#[test]
fn extra_column_is_an_error_unless_allowed() {
    let (records, errors) = import_file(data("extra_column.csv"), false);
    assert!(records.is_empty());
    assert!(matches!(
        &errors[..],
        [ImportError::UnknownColumn { column, .. }] if column == "operator"
    ));
    let (records, errors) = import_file(data("extra_column.csv"), true);
    assert!(errors.is_empty(), "{:?}", messages(&errors));
    assert_eq!(records.len(), 3);
}

#[test]
fn columns_may_come_in_any_order_with_extra_wavelengths() {
    let mut records = generate_samples(1);
    records.truncate(3);
    records[1]
        .fresh_reflectivity
        .push(obs_manufacturing::Reflectivity {
            wavelength_nm: 1020,
            percent: 95.5,
        });
    let text = String::from_utf8(write_csv(Vec::new(), &records).expect("write")).expect("utf8");
    // Reverse the columns of every line (no quoted commas in these rows).
    let reversed: String = text
        .lines()
        .map(|l| l.split(',').rev().collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let (got, errors) = import_text(&reversed, false);
    assert!(errors.is_empty(), "{:?}", messages(&errors));
    let got: Vec<SegmentRecord> = got.into_iter().map(|(_, r)| r).collect();
    assert_eq!(got, records);
}

#[test]
fn rows_with_the_wrong_number_of_fields_are_skipped() {
    let text = sample_text();
    let mut lines: Vec<&str> = text.lines().take(4).collect();
    lines.insert(2, "CSOA-M1-T1-9999,T1,1");
    let (records, errors) = import_text(&(lines.join("\n") + "\n"), false);
    let rows: Vec<u64> = records.iter().map(|(row, _)| *row).collect();
    assert_eq!(rows, [1, 3, 4]);
    assert_eq!(
        messages(&errors),
        ["upload.csv: row 2 (line 3): has 3 fields, the header has 35"]
    );
}

#[test]
fn quoted_multiline_notes_keep_row_numbers_right() {
    let mut records = generate_samples(2);
    records.truncate(3);
    records[0].acceptance_notes = "line one,\nline \"two\"".into();
    records[1].blank_id = "BLANK-X".into();
    let mut text =
        String::from_utf8(write_csv(Vec::new(), &records).expect("write")).expect("utf8");
    text = text.replace(",1,BLANK-X,", ",x,BLANK-X,"); // ring of the second data row
    let (got, errors) = import_text(&text, false);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.acceptance_notes, "line one,\nline \"two\"");
    assert_eq!(got[1].0, 3);
    assert_eq!(
        messages(&errors),
        ["upload.csv: row 2 (line 4): ring: x is not a whole number"]
    );
}

#[test]
fn empty_files_header_only_files_and_a_bom() {
    let (records, errors) = import_text("", false);
    assert!(records.is_empty());
    assert_eq!(messages(&errors), ["upload.csv: the file is empty"]);
    let header = sample_text().lines().next().expect("header").to_owned();
    let (records, errors) = import_text(&format!("{header}\n"), false);
    assert!(records.is_empty() && errors.is_empty());
    let with_bom = format!("\u{feff}{}", sample_text());
    let (records, errors) = import_text(&with_bom, false);
    assert!(errors.is_empty(), "{:?}", messages(&errors));
    assert_eq!(records.len(), 66);
}

#[test]
fn invalid_utf8_in_a_cell_names_the_field() {
    let text = sample_text();
    let mut lines: Vec<Vec<u8>> = text
        .lines()
        .take(3)
        .map(|l| l.as_bytes().to_vec())
        .collect();
    let pos = lines[1]
        .windows(9)
        .position(|w| w == b"Zygo Veri")
        .expect("interferometer");
    lines[1][pos] = 0xff;
    let bytes = lines.join(&b'\n');
    let (records, errors) = split(read(
        &bytes[..],
        "upload.csv",
        Format::Csv,
        &ImportOptions::default(),
    ));
    assert_eq!(records.len(), 1);
    assert_eq!(
        messages(&errors),
        ["upload.csv: row 1 (line 2): interferometer: is not valid UTF-8"]
    );
}
