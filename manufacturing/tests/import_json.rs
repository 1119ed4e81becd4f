//! JSON and JSON Lines import: the committed samples, the broken files under
//! tests/data, and structural errors.

use std::path::PathBuf;

use obs_manufacturing::{
    Format, ImportError, ImportOptions, SAMPLE_SEED, SegmentRecord, generate_samples, open, read,
    record_to_json, sample_csv_path, sample_json_path, sample_jsonl_path, write_json,
    write_json_lines,
};

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

fn options(allow_extra: bool) -> ImportOptions {
    ImportOptions {
        allow_extra,
        format: None,
    }
}

fn import_file(path: PathBuf, allow_extra: bool) -> Split {
    split(open(path, &options(allow_extra)).expect("open"))
}

fn import_text(text: &str, format: Format, allow_extra: bool) -> Split {
    split(read(
        text.as_bytes(),
        "upload.json",
        format,
        &options(allow_extra),
    ))
}

fn messages(errors: &[ImportError]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

fn records(items: Vec<(u64, SegmentRecord)>) -> Vec<SegmentRecord> {
    items.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn committed_json_samples_hold_the_csv_records() {
    let (csv, errors) = import_file(sample_csv_path(), false);
    assert!(errors.is_empty());
    for path in [sample_json_path(), sample_jsonl_path()] {
        let (json, errors) = import_file(path.clone(), false);
        assert!(
            errors.is_empty(),
            "{}: {:?}",
            path.display(),
            messages(&errors)
        );
        assert_eq!(json, csv, "{}", path.display());
    }
}

#[test]
fn committed_json_samples_are_what_the_generator_writes() {
    let records = generate_samples(SAMPLE_SEED);
    let json = write_json(Vec::new(), &records).expect("write");
    let jsonl = write_json_lines(Vec::new(), &records).expect("write");
    assert_eq!(json, std::fs::read(sample_json_path()).expect("read"));
    assert_eq!(jsonl, std::fs::read(sample_jsonl_path()).expect("read"));
}

#[test]
fn a_key_with_the_wrong_unit_fails_that_record_only() {
    let (got, errors) = import_file(data("wrong_unit.json"), true);
    let rows: Vec<u64> = got.iter().map(|(row, _)| *row).collect();
    assert_eq!(rows, [1, 3]);
    let file = data("wrong_unit.json").display().to_string();
    assert_eq!(
        messages(&errors),
        [format!(
            "{file}: row 2 (line 3): mass_g: has unit `g`, expected `mass_kg` (kg)"
        )]
    );
    assert_eq!(errors[0].field(), Some("mass_g"));
}

#[test]
fn json_lines_report_every_bad_record_and_go_on() {
    let path = data("bad_values.jsonl");
    let file = path.display().to_string();
    let (got, errors) = import_file(path.clone(), false);
    let rows: Vec<(u64, String)> = got
        .iter()
        .map(|(row, r)| (*row, r.serial.clone()))
        .collect();
    assert_eq!(
        rows,
        [(1, "CSOA-M1-T1-0001".into()), (5, "CSOA-M1-T1-0005".into())]
    );
    assert_eq!(
        messages(&errors),
        [
            format!(
                "{file}: row 2 (line 2): invalid JSON at line 2 column 41: key must be a string"
            ),
            format!(
                "{file}: row 3 (line 4): operator: is not a known key (allow_extra ignores unknown keys)"
            ),
            format!(
                "{file}: row 3 (line 4): thickness_mm: 60.1 is a string, expected a number in mm"
            ),
            format!(
                "{file}: row 4 (line 5): serial: CSOA-M1-T1-0001 is a duplicate of row 1 in the same file"
            ),
        ]
    );
    let (_, errors) = import_file(path, true);
    assert_eq!(errors.len(), 3, "allow_extra forgives only the unknown key");
}

#[test]
fn missing_and_repeated_keys_are_errors() {
    let r = generate_samples(3).remove(0);
    let text = record_to_json(&r).expect("json");
    let without_mass = text.replace(r#""mass_kg":"#, r#""mass_kg_x":"#);
    let (got, errors) = import_text(&without_mass, Format::JsonLines, true);
    assert!(got.is_empty());
    assert_eq!(
        messages(&errors),
        ["upload.json: row 1 (line 1): mass_kg_x: has unit `kg_x`, expected `mass_kg` (kg)"]
    );
    let dropped = text.replace(r#""cgh_id":"CGH-T1-A","#, "");
    let (_, errors) = import_text(&dropped, Format::JsonLines, false);
    assert_eq!(
        messages(&errors),
        ["upload.json: row 1 (line 1): cgh_id: is missing"]
    );
    let repeated = text.replacen('{', r#"{"ring":2,"#, 1);
    let (_, errors) = import_text(&repeated, Format::JsonLines, false);
    assert_eq!(
        messages(&errors),
        ["upload.json: row 1 (line 1): ring: appears more than once"]
    );
}

#[test]
fn nulls_mean_empty_text_and_unmeasured_wavelengths() {
    let mut r = generate_samples(4).remove(0);
    r.cgh_id.clear();
    r.fresh_reflectivity.retain(|x| x.wavelength_nm != 880);
    let text = record_to_json(&r).expect("json");
    assert!(text.contains(r#""cgh_id":"""#));
    assert!(text.contains(r#""fresh_reflectivity_880nm_pct":null"#));
    let text = text.replace(r#""cgh_id":"""#, r#""cgh_id":null"#);
    let (got, errors) = import_text(&text, Format::Json, false);
    assert!(errors.is_empty(), "{:?}", messages(&errors));
    assert_eq!(records(got), [r]);
}

#[test]
fn array_elements_are_numbered_and_broken_arrays_stop() {
    let recs = generate_samples(5);
    let text = String::from_utf8(write_json(Vec::new(), &recs[..3]).expect("json")).expect("utf8");
    // Drop the comma after the second record: the array is broken there.
    let idx = text.match_indices(",\n").nth(1).expect("second comma").0;
    let broken = format!("{}\n{}", &text[..idx], &text[idx + 2..]);
    let (got, errors) = import_text(&broken, Format::Json, false);
    assert_eq!(got.iter().map(|(row, _)| *row).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        messages(&errors),
        ["upload.json: line 4: expected `,` or `]` after a record, found `{`"]
    );
    assert!(errors[0].is_fatal());

    let mut bad_element = text.replacen(r#""ring":1"#, r#""ring":"one""#, 2);
    bad_element = bad_element.replacen(r#""ring":"one""#, r#""ring":1"#, 1);
    let (got, errors) = import_text(&bad_element, Format::Json, false);
    assert_eq!(got.iter().map(|(row, _)| *row).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        messages(&errors),
        ["upload.json: row 2 (line 3): ring: one is not a whole number"]
    );

    let (got, errors) = import_text("[1, {\"serial\": 1}]", Format::Json, false);
    assert!(got.is_empty());
    assert_eq!(
        messages(&errors)[0],
        "upload.json: row 1 (line 1): is not a JSON object"
    );
}

#[test]
fn a_single_object_and_empty_inputs() {
    let r = generate_samples(6).remove(0);
    let text = record_to_json(&r).expect("json");
    let (got, errors) = import_text(&format!("  {text}  "), Format::Json, false);
    assert!(errors.is_empty());
    assert_eq!(records(got), [r]);
    for format in [Format::Json, Format::JsonLines] {
        let (got, errors) = import_text(" \n", format, false);
        assert!(got.is_empty());
        assert_eq!(messages(&errors), ["upload.json: the file is empty"]);
    }
    let (got, errors) = import_text("[]", Format::Json, false);
    assert!(got.is_empty() && errors.is_empty());
}
