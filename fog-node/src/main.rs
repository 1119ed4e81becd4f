use clap::Parser;
use obs_common::logging::{self, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = fog_node::cli::Cli::parse();
    logging::init(LogFormat::Text, "info")?;
    fog_node::cli::run(cli).await
}
