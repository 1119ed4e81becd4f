use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    obsctl::cli::run(obsctl::cli::Cli::parse()).await
}
