//! The subcommands `enroll`, `run`, `status` and `print-default-config`
//! (the CLI in [`crate::cli`] only parses arguments and calls these).

use std::path::PathBuf;

use anyhow::Context;

use crate::config::NodeConfig;
use crate::enroll::{self, EnrollOptions};

/// `fog-node enroll`.
pub async fn enroll(
    hub: String,
    token: String,
    ca_hash: String,
    state_dir: Option<PathBuf>,
    node_id: Option<String>,
) -> anyhow::Result<()> {
    let state_dir = match state_dir {
        Some(dir) => dir,
        None => NodeConfig::load(None)?.state_dir,
    };
    let identity = enroll::enroll(&EnrollOptions {
        hub,
        token,
        ca_hash,
        state_dir: state_dir.clone(),
        node_id,
    })
    .await?;
    let e = &identity.enrollment;
    println!(
        "enrolled site {} as node {}: certificate valid until {}, broker {}:{}, identity in {}",
        e.site,
        e.node_id,
        e.certificate_not_after,
        e.mqtt.host,
        e.mqtt.port,
        crate::identity::Identity::dir(&state_dir).display()
    );
    Ok(())
}

/// `fog-node run`.
pub async fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = NodeConfig::load(config.as_deref()).context("loading the configuration")?;
    let shutdown = obs_common::shutdown::on_signal();
    crate::node::run(config, shutdown).await?;
    Ok(())
}

/// `fog-node status`.
pub async fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = NodeConfig::load(config.as_deref()).context("loading the configuration")?;
    let report = tokio::task::spawn_blocking(move || crate::status::collect(&config)).await??;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::status::render_table(&report));
    }
    Ok(())
}

/// `fog-node print-default-config`.
pub fn print_default_config() -> anyhow::Result<()> {
    print!("{}", NodeConfig::default_toml()?);
    Ok(())
}
