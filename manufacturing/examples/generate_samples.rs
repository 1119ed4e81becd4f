//! Writes the sample records to `samples/segments.{csv,json,jsonl}`.
//!
//! `cargo run -p obs-manufacturing --example generate_samples [-- <dir> [<seed>]]`
//! (defaults: the crate's `samples/` directory and `SAMPLE_SEED`). The output
//! is deterministic: rerunning it leaves the committed files unchanged.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::Context;
use obs_manufacturing::samples::sample_dir;
use obs_manufacturing::{SAMPLE_SEED, generate_samples, write_csv, write_json, write_json_lines};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(sample_dir, PathBuf::from);
    let seed = match args.next() {
        Some(s) => s
            .parse()
            .with_context(|| format!("seed `{s}` is not a number"))?,
        None => SAMPLE_SEED,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let records = generate_samples(seed);
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = dir.join(name);
        let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(BufWriter::new(file))
    };
    write_csv(create("segments.csv")?, &records)?;
    write_json(create("segments.json")?, &records)?;
    write_json_lines(create("segments.jsonl")?, &records)?;
    let rejected = records.iter().filter(|r| !r.acceptance_passed).count();
    println!(
        "wrote {} records ({rejected} rejected) to {}/segments.{{csv,json,jsonl}}",
        records.len(),
        dir.display()
    );
    Ok(())
}
