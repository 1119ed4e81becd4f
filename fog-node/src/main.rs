use clap::Parser;
use obs_common::logging::{self, LogFormat};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = fog_node::cli::Cli::parse();
    let format = if cli.log_json {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    let result = match logging::init(format, "info") {
        Ok(()) => fog_node::cli::run(cli).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
