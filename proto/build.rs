//! Generates the observatory.v1 code with the system `protoc` (Debian's
//! `protobuf-compiler` + `libprotobuf-dev`, installed by `scripts/setup.sh`).

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "protos/observatory/v1/common.proto",
    "protos/observatory/v1/telemetry.proto",
    "protos/observatory/v1/enrollment.proto",
    "protos/observatory/v1/manufacturing.proto",
    "protos/observatory/v1/fleet_health.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("observatory_v1_descriptor.bin"))
        .compile_protos(PROTOS, &["protos"])
        .map_err(|error| {
            format!(
                "compiling the observatory.v1 protos failed (is `protoc` installed? run scripts/setup.sh): {error}"
            )
        })?;
    Ok(())
}
