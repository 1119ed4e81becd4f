//! The feature contract is the same everywhere: obs_ml::FEATURES, the columns
//! `fog-node simulate` writes, and the list stored in the shipped model.

mod common;

use obs_ml::{FEATURES, HealthModel, META_FEATURES};

/// The `FEATURE_COLUMNS` array of fog-node/src/simulate.rs, read as text
/// (obs-ml does not depend on fog-node).
fn simulate_columns() -> Vec<String> {
    let path = common::ml_dir().join("../fog-node/src/simulate.rs");
    let src = std::fs::read_to_string(&path).expect("fog-node/src/simulate.rs");
    let start = src
        .find("pub const FEATURE_COLUMNS")
        .expect("FEATURE_COLUMNS in simulate.rs");
    let body = &src[start..];
    let body = &body[body.find('[').expect("array type") + 1..];
    let body = &body[body.find('[').expect("array") + 1..body.find("];").expect("array end")];
    body.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn simulate_writes_the_contract_columns() {
    assert_eq!(simulate_columns(), FEATURES);
}

#[test]
fn the_model_was_trained_on_the_contract() {
    // HealthModel::load compares the metadata with FEATURES; also check that
    // the shipped model carries the list at all.
    let bytes = std::fs::read(common::model_path()).unwrap();
    let needle = FEATURES.join(",");
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "model metadata {META_FEATURES:?} lacks the feature list"
    );
    HealthModel::load(common::model_path(), &common::runtime()).unwrap();
}
