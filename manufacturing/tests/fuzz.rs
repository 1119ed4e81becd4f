//! Fuzz-style property tests: arbitrary bytes and mutated sample files never
//! make an importer panic or loop, and whatever they yield can be validated,
//! converted and written without panicking.

mod common;

use obs_manufacturing::{
    Format, ImportOptions, SegmentRecord, ValidationRules, read, sample_csv_path, sample_json_path,
    sample_jsonl_path, validate, warnings, write_csv, write_json,
};
use obs_proto::v1;
use proptest::prelude::*;
use time::macros::date;

const FORMATS: [Format; 3] = [Format::Csv, Format::Json, Format::JsonLines];

/// Imports `bytes` in every format and exercises whatever comes out.
fn exercise(bytes: &[u8], allow_extra: bool) -> Result<(), TestCaseError> {
    let rules = ValidationRules::new(date!(2025 - 06 - 01));
    for format in FORMATS {
        let options = ImportOptions {
            allow_extra,
            format: None,
        };
        let mut items = 0usize;
        for item in read(bytes, "fuzz", format, &options) {
            items += 1;
            // Each record or error consumes input, so the count is bounded.
            prop_assert!(items <= bytes.len() * 40 + 40, "{:?} does not end", format);
            match item {
                Ok((row, record)) => {
                    prop_assert!(row >= 1);
                    exercise_record(&record, &rules);
                }
                Err(e) => {
                    let _ = e.to_string();
                    let _ = e.to_record_error();
                }
            }
        }
    }
    Ok(())
}

fn exercise_record(record: &SegmentRecord, rules: &ValidationRules) {
    let _ = validate(record, rules);
    let _ = warnings(record, rules);
    let _ = SegmentRecord::try_from(v1::SegmentRecord::from(record));
    let _ = write_csv(Vec::new(), std::slice::from_ref(record));
    let _ = write_json(Vec::new(), std::slice::from_ref(record));
}

/// The first `lines` lines of a sample file.
fn sample_head(path: std::path::PathBuf, lines: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .take(lines)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        3 => prop::sample::select(b",;\"\n\r{}[]:-.e0123456789 \\".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Replace(i, b) if !bytes.is_empty() => bytes[i % len] = b,
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % len);
            }
            Mutation::Duplicate(i, n) if !bytes.is_empty() => {
                let start = i % len;
                let end = (start + n).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(start..start, copy);
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes, false)?;
    }

    #[test]
    fn arbitrary_rows_under_a_valid_header_never_panic(
        rows in prop::collection::vec(any::<u8>(), 0..2048),
        allow_extra in any::<bool>(),
    ) {
        let mut bytes = sample_head(sample_csv_path(), 1);
        bytes.extend(rows);
        exercise(&bytes, allow_extra)?;
    }

    #[test]
    fn mutated_csv_never_panics(
        mutations in prop::collection::vec(mutation(), 1..12),
        allow_extra in any::<bool>(),
    ) {
        let bytes = mutate(sample_head(sample_csv_path(), 4), &mutations);
        exercise(&bytes, allow_extra)?;
    }

    #[test]
    fn mutated_json_never_panics(
        mutations in prop::collection::vec(mutation(), 1..12),
        allow_extra in any::<bool>(),
    ) {
        // `[` and three records, the last without its comma, then `]`.
        let head = String::from_utf8(sample_head(sample_json_path(), 4)).unwrap_or_default();
        let mut bytes = head.trim_end().trim_end_matches(',').as_bytes().to_vec();
        bytes.extend_from_slice(b"\n]\n");
        prop_assert_eq!(
            read(&bytes[..], "base", Format::Json, &ImportOptions::default()).filter(Result::is_ok).count(),
            3
        );
        exercise(&mutate(bytes, &mutations), allow_extra)?;
        let lines = sample_head(sample_jsonl_path(), 3);
        exercise(&mutate(lines, &mutations), allow_extra)?;
    }

    #[test]
    fn validation_never_panics_on_any_record(r in common::record(false)) {
        let rules = ValidationRules::new(date!(2025 - 06 - 01));
        exercise_record(&r, &rules);
        let strict = rules.clone().for_segment_count(36).unwrap_or(rules);
        let _ = validate(&r, &strict);
    }
}

#[test]
fn mutated_samples_still_report_rows_in_order() {
    // A fixed mutation: the third data row loses a comma.
    let bytes = sample_head(sample_csv_path(), 6);
    let text = String::from_utf8(bytes).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen(',', "", 1);
    let joined = lines.join("\n");
    let (ok, errors) = common::split(read(
        joined.as_bytes(),
        "fuzz.csv",
        Format::Csv,
        &ImportOptions::default(),
    ));
    assert_eq!(
        ok.iter().map(|(row, _)| *row).collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["fuzz.csv: row 3 (line 4): has 34 fields, the header has 35"]
    );
}
