use clap::Parser;
use obs_common::logging::{self, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cloud_hub::cli::Cli::parse();
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    logging::init(format, "info")?;
    cloud_hub::cli::run(cli).await
}
